/** The surviving candidates of a request packed into the one Batch that scoreBatch scores. */
import type { Batch } from '../core/batch.js';
import { EcrError } from '../core/errors.js';
import { SIGNAL_COUNT as M, policyRow } from './signals.js';
import type { Survivor } from './trajectory-types.js';

/** Which optional signals the batch carries (they go into the request's stats). */
export interface PackedSignals {
  logprobs: boolean;
  policy: boolean;
  policyWidth: number | null;
  expectedRealized: boolean;
}

/**
 * Packs survivors into one Batch. Policy rows (A = widest top-logprob list returned, at most the
 * number asked for) and expected/realized (expected = mean token probability, realized = the
 * step's consistency with its neighbour) are included only when every step of every survivor has
 * logprobs; otherwise PD and ES fall back to E as the spec prescribes.
 */
export function pack(survivors: Survivor[], horizon: number, topLogprobs: number): { batch: Batch; signals: PackedSignals } {
  const n = survivors.length,
    t = horizon + 1;
  const steps = new Float64Array(n * t * M);
  const d = survivors[0].embeddings[0].length;
  const embeddings = d > 0 ? new Float64Array(n * t * d) : undefined;
  const allLogprobs = survivors.every((s) => s.steps.every((st) => st.logprobs !== null));
  let a = 0;
  if (allLogprobs) for (const s of survivors) for (const st of s.steps) for (const tok of st.logprobs!) a = Math.max(a, tok.top.length);
  a = Math.min(a, topLogprobs);
  const policy = allLogprobs && a >= 2 ? new Float64Array(n * t * a) : undefined;
  const expected = allLogprobs ? new Float64Array(n * t) : undefined;
  const realized = allLogprobs ? new Float64Array(n * t) : undefined;
  survivors.forEach((s, i) => {
    for (let k = 0; k < t; k++) {
      steps.set(s.vectors[k], (i * t + k) * M);
      if (embeddings) {
        const e = s.embeddings[k];
        if (e.length !== d) throw new EcrError('ECR_EMBEDDING_SHAPE', `embedding width changed within one request (${e.length} vs ${d})`);
        for (let j = 0; j < d; j++) {
          // A provider could send NaN or Infinity; the batch is scored as trusted, so check here.
          if (!Number.isFinite(e[j])) throw new EcrError('ECR_EMBEDDING_VALUE', `candidate ${s.index} step ${k}: embedding component ${j} is ${e[j]}`);
        }
        embeddings.set(e, (i * t + k) * d);
      }
      if (policy) policy.set(policyRow(s.steps[k].logprobs!, a), (i * t + k) * a);
      if (expected && realized) {
        expected[i * t + k] = s.vectors[k][0];
        realized[i * t + k] = s.vectors[k][4];
      }
    }
  });
  const batch: Batch = {
    n,
    t,
    m: M,
    steps,
    ...(embeddings ? { d, embeddings } : {}),
    ...(policy ? { a, policy } : {}),
    ...(expected ? { expected, realized } : {}),
  };
  return { batch, signals: { logprobs: allLogprobs, policy: policy !== undefined, policyWidth: policy ? a : null, expectedRealized: expected !== undefined } };
}
