/**
 * Unrolling one candidate into its H review steps, and evaluating each step as soon as it and its
 * neighbour exist. Candidate i's step h waits only for its own step h-1.
 */
import { tupleKey } from '../cache/canonical-json.js';
import { approxBytes } from './byte-estimates.js';
import { unlessForeignCancel } from './caches.js';
import { embed } from './embedding.js';
import type { RequestContext } from './request-context.js';
import type { CandidateOutcome, StepData, Trajectory } from './trajectory-types.js';
import { UNROLL_PROMPT_VERSION, conversationUnrollMessages, unrollMessages } from './unroll.js';
import { vector } from './vectors.js';

/**
 * Unrolls candidate i step by step. Each step's evaluative vector is computed as soon as the
 * step and its neighbour exist (vector 0 needs step 1), so evaluation overlaps the wait for the
 * next step instead of piling up at the end. Never rejects.
 */
export async function trajectory(ctx: RequestContext, index: number, candidate: Promise<CandidateOutcome>): Promise<Trajectory> {
  // The embedding round this candidate takes part in next; on any exit it leaves the rest.
  const progress = { round: 0 };
  try {
    return await unrollAndEvaluate(ctx, candidate, index, progress);
  } finally {
    ctx.rounds?.leave(progress.round);
  }
}

async function unrollAndEvaluate(ctx: RequestContext, candidate: Promise<CandidateOutcome>, index: number, progress: { round: number }): Promise<Trajectory> {
  const horizon = ctx.settings.horizon;
  const outcome = await candidate;
  if (!outcome.ok) return { index, ok: false, failure: { stage: 'generate', error: outcome.error } };
  const first: StepData = {
    text: outcome.choice.text,
    logprobs: outcome.choice.logprobs,
    finishReason: outcome.choice.finishReason,
    systemFingerprint: outcome.choice.systemFingerprint,
  };
  const steps: StepData[] = [first];
  const cached: boolean[] = [outcome.via === 'cache'];
  const embeddings: Promise<Float32Array>[] = [];
  const vectors: Promise<Float64Array>[] = [];
  const quiet = (p: Promise<unknown>) => {
    p.catch(() => {});
  };
  const unrollStart = performance.now();
  // Step h+1 is requested before step h is embedded and evaluated: with many candidates in
  // flight the event loop is busy, and local work done first would delay every next call.
  // A candidate just generated (not from a cache, not given) has no review steps in the shared
  // tier: its steps skip the Redis lookup, one serial round trip per step on every cold request.
  const inherited = outcome.via === 'cache' || outcome.via === 'given';
  const request = (h: number) => {
    const hit = { value: true };
    return {
      hit,
      step: reviewStep(
        ctx,
        first.text,
        steps[h - 1].text,
        h,
        () => {
          hit.value = false;
        },
        inherited,
      ),
    };
  };
  let next = horizon >= 1 ? request(1) : null;
  if (next) quiet(next.step);
  embeddings.push(embed(ctx, first.text, 0));
  progress.round = 1;
  quiet(embeddings[0]);
  for (let h = 1; h <= horizon; h++) {
    const pending = next!;
    try {
      steps.push(await pending.step);
      cached.push(pending.hit.value);
    } catch (error) {
      return { index, ok: false, text: first.text, failure: { stage: 'unroll', step: h, error } };
    }
    if (h < horizon) {
      next = request(h + 1);
      quiet(next.step);
    }
    const e = embed(ctx, steps[h].text, h);
    progress.round = h + 1;
    quiet(e);
    embeddings.push(e);
    if (h === 1) vectors.push(vector(ctx, steps, embeddings, 0));
    vectors.push(vector(ctx, steps, embeddings, h));
    vectors.forEach(quiet);
  }
  ctx.stats.span('unroll', unrollStart);
  const evalStart = performance.now();
  try {
    const [embs, vecs] = await Promise.all([Promise.all(embeddings), Promise.all(vectors)]);
    ctx.stats.span('evaluate', evalStart);
    ctx.stats.addMemory(approxBytes(steps) + approxBytes(embs) + approxBytes(vecs));
    return { index, ok: true, steps, cached, vectors: vecs, embeddings: embs };
  } catch (error) {
    return { index, ok: false, text: first.text, failure: { stage: 'evaluate', error } };
  }
}

function reviewStep(ctx: RequestContext, candidateText: string, previous: string, h: number, onMiss: () => void, readShared: boolean): Promise<StepData> {
  const { provider, system, unrollSampling, unrollSamplingKey, topLogprobs, shared } = ctx.settings;
  const messages = ctx.conversation ? conversationUnrollMessages(ctx.conversation, previous) : unrollMessages(ctx.prompt, previous, system);
  // Everything that changes the review: the conversation (prompt, system, previous step, instruction
  // version), the candidate it descends from, the step index, model, base URL and sampling.
  const key = tupleKey('step', UNROLL_PROMPT_VERSION, provider.id, JSON.stringify(messages), candidateText, h, unrollSamplingKey, topLogprobs);
  const load = () =>
    shared.tiers.steps.getOrCompute(
      key,
      async () => {
        const r = await ctx.schedule(() =>
          provider.chat({ kind: 'unroll', messages, n: 1, sampling: unrollSampling, topLogprobs }, { signal: ctx.signal, observer: ctx.observer }),
        );
        const choice = r.choices[0];
        if (choice.text === null) throw choice.error; // a refused review fails this candidate at this step
        return { text: choice.text, logprobs: choice.logprobs };
      },
      ctx.cache,
      (o) => {
        ctx.stats.onCache('steps', o);
        if (o !== 'hit' && o !== 'l2-hit') onMiss();
      },
      ctx.signal,
      readShared,
    );
  return unlessForeignCancel(load, ctx.signal);
}
