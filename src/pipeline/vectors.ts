/** The evaluative vector of a step (SIGNAL_NAMES order), through the vectors cache. */
import { createHash } from 'node:crypto';
import { tupleKey } from '../cache/canonical-json.js';
import { cosine } from '../llm/embedder.js';
import type { TokenLogprob } from '../llm/provider.js';
import type { RequestContext } from './request-context.js';
import { SIGNAL_COUNT as M, clamp01, lexicalConfidence, lexicalUncertainty, logprobConfidence, logprobUncertainty, similarity01 } from './signals.js';
import type { StepData } from './trajectory-types.js';

export function vector(ctx: RequestContext, steps: StepData[], embeddings: Promise<Float32Array>[], t: number): Promise<Float64Array> {
  const { embedder, safety, shared } = ctx.settings;
  const step = steps[t];
  // Step 0 has no predecessor; it shares the 0-1 pair's consistency (see signals.ts).
  const neighbour = t === 0 ? 1 : t - 1;
  const key = tupleKey(
    'vector',
    'signals-v1',
    embedder.id,
    safety.id,
    ctx.contextText,
    step.text,
    steps[neighbour].text,
    step.logprobs ? logprobsDigest(step.logprobs) : null,
  );
  return shared.tiers.vectors.getOrCompute(
    key,
    async () => {
      const [self, other, contextEmb] = await Promise.all([embeddings[t], embeddings[neighbour], ctx.contextEmbedding]);
      const lp = step.logprobs;
      const v = new Float64Array(M);
      v[0] = lp ? logprobConfidence(lp) : lexicalConfidence(step.text);
      v[1] = similarity01(cosine(self, contextEmb));
      v[2] = lp ? logprobUncertainty(lp) : lexicalUncertainty(step.text);
      v[3] = clamp01(await safety.score(step.text, ctx.prompt));
      v[4] = similarity01(cosine(self, other));
      return v;
    },
    ctx.cache,
    (o) => ctx.stats.onCache('vectors', o),
    ctx.signal,
  );
}

/** SHA-256 of the tokens and numbers of a logprobs list; far cheaper than canonical JSON of the objects. */
function logprobsDigest(lp: readonly TokenLogprob[]): string {
  let count = 0;
  for (const t of lp) count += 2 + t.top.length;
  const nums = new Float64Array(count);
  const tokens: string[] = [];
  let k = 0;
  for (const t of lp) {
    nums[k++] = t.logprob;
    nums[k++] = t.top.length;
    tokens.push(t.token);
    for (const x of t.top) {
      nums[k++] = x.logprob;
      tokens.push(x.token);
    }
  }
  return createHash('sha256').update(new Uint8Array(nums.buffer)).update(JSON.stringify(tokens)).digest('hex');
}
