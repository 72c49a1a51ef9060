/** The pipeline's pieces that need no LLM: packing survivors into a Batch, and what the caches served. */
import { describe, expect, it } from 'vitest';
import type { TokenLogprob } from '../src/llm/provider.js';
import { cacheResultOf } from '../src/pipeline/caches.js';
import { pack } from '../src/pipeline/packing.js';
import type { StepData, Survivor } from '../src/pipeline/trajectory-types.js';

const lp = (widths: number[]): TokenLogprob[] =>
  widths.map((w) => ({ token: 't', logprob: -0.1, top: Array.from({ length: w }, (_, j) => ({ token: `a${j}`, logprob: -0.1 - j })) }));
function survivor(index: number, t: number, d: number, logprobs: (h: number) => TokenLogprob[] | null): Survivor {
  const steps: StepData[] = Array.from({ length: t }, (_, h) => ({ text: `c${index} s${h}`, logprobs: logprobs(h) }));
  return {
    index,
    ok: true,
    steps,
    cached: steps.map(() => false),
    vectors: steps.map((_, h) => Float64Array.from([0.1 * h, 0.2, 0.3, 0.4, 0.5 + 0.01 * index])),
    embeddings: steps.map((_, h) => Float32Array.from({ length: d }, (_, j) => index + h + j / 8)),
  };
}

describe('pack', () => {
  it('lays survivors out candidate-major, step-minor, with policy rows as wide as the widest list asked for', () => {
    const s = [survivor(0, 3, 2, () => lp([2, 4])), survivor(2, 3, 2, () => lp([7]))];
    const { batch, signals } = pack(s, 2, 5);
    expect(signals).toEqual({ logprobs: true, policy: true, policyWidth: 5, expectedRealized: true });
    expect([batch.n, batch.t, batch.m, batch.d, batch.a]).toEqual([2, 3, 5, 2, 5]);
    expect(Array.from(batch.steps.subarray(5 * 4, 5 * 5))).toEqual(Array.from(s[1].vectors[1]));
    expect(Array.from(batch.embeddings!.subarray(2 * 5, 2 * 6))).toEqual(Array.from(s[1].embeddings[2]));
    expect(batch.expected![4]).toBe(s[1].vectors[1][0]);
    expect(batch.realized![4]).toBe(s[1].vectors[1][4]);
  });

  it('falls back to E (no policy, no expected/realized) when one step has no logprobs', () => {
    const { batch, signals } = pack([survivor(0, 2, 3, () => lp([3])), survivor(1, 2, 3, (h) => (h === 1 ? null : lp([3])))], 1, 5);
    expect(signals).toEqual({ logprobs: false, policy: false, policyWidth: null, expectedRealized: false });
    expect(batch.policy === undefined && batch.expected === undefined && batch.realized === undefined).toBe(true);
  });

  it('refuses an embedding width that changes, or a component that is not finite', () => {
    const narrow = survivor(1, 2, 3, () => null);
    narrow.embeddings[1] = new Float32Array(2);
    expect(() => pack([survivor(0, 2, 3, () => null), narrow], 1, 5)).toThrow(expect.objectContaining({ code: 'ECR_EMBEDDING_SHAPE' }));
    const nan = survivor(1, 2, 3, () => null);
    nan.embeddings[1][2] = NaN;
    expect(() => pack([nan], 1, 5)).toThrow(
      expect.objectContaining({ code: 'ECR_EMBEDDING_VALUE', message: 'candidate 1 step 1: embedding component 2 is NaN' }),
    );
  });
});

describe('cacheResultOf', () => {
  const c = (hits: number, misses: number, joined = 0) => ({ hits, misses, joined });
  it('judges a request on its candidates and review steps only', () => {
    expect(cacheResultOf({ candidates: c(1, 0), steps: c(4, 0), embeddings: c(0, 9) }, false)).toBe('hit');
    expect(cacheResultOf({ candidates: c(0, 1), steps: c(0, 4) }, false)).toBe('miss');
    expect(cacheResultOf({ candidates: c(0, 0, 1), steps: c(2, 2) }, false)).toBe('partial');
    // Sampled without a cache (non-deterministic sampling): never a full hit.
    expect(cacheResultOf({ steps: c(4, 0) }, true)).toBe('partial');
    expect(cacheResultOf({}, false)).toBe('miss');
  });
});
