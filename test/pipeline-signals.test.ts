/** The evaluative signals and the built-in hashing embedder. */
import { describe, expect, it } from 'vitest';
import { HashingEmbedder, cosine } from '../src/llm/embedder.js';
import {
  MarkerSafetyScorer,
  lexicalConfidence,
  lexicalUncertainty,
  logprobConfidence,
  logprobUncertainty,
  policyRow,
  similarity01,
} from '../src/pipeline/signals.js';

const tok = (p: number, top: number[] = []) => ({ token: 't', logprob: Math.log(p), top: top.map((q, i) => ({ token: `a${i}`, logprob: Math.log(q) })) });

describe('signals', () => {
  it('confidence is the mean token probability', () => {
    expect(logprobConfidence([tok(0.9), tok(0.5)])).toBeCloseTo(0.7, 12);
  });

  it('uncertainty is the normalized entropy of the top alternatives plus the remaining mass', () => {
    // Certain tokens: no entropy.
    expect(logprobUncertainty([tok(1, [1, 0])])).toBeCloseTo(0, 9);
    // Uniform over 3 alternatives, nothing left over: ln 3 / ln 4.
    expect(logprobUncertainty([tok(1 / 3, [1 / 3, 1 / 3, 1 / 3])])).toBeCloseTo(Math.log(3) / Math.log(4), 9);
    // Without alternatives, the binary entropy of the token's own probability.
    expect(logprobUncertainty([tok(0.5)])).toBeCloseTo(1, 12);
  });

  it('lexical fallbacks move with certainty markers and hedges', () => {
    expect(lexicalConfidence('Plain text.')).toBe(0.5);
    expect(lexicalConfidence('Certainly, the answer is 4.')).toBeGreaterThan(0.5);
    expect(lexicalConfidence('Maybe it is 4, perhaps 5.')).toBeLessThan(0.5);
    expect(lexicalUncertainty('It is 4.')).toBe(0);
    expect(lexicalUncertainty('Maybe it is 4, perhaps 5, I think.')).toBeGreaterThan(0.5);
  });

  it('policy rows average rank probabilities, sorting alternatives a server listed out of order', () => {
    const row = policyRow([tok(0.6, [0.6, 0.3, 0.1]), tok(0.5, [0.2, 0.5, 0.3])], 3);
    expect(Array.from(row).map((x) => +x.toFixed(12))).toEqual([0.55, 0.3, 0.15]);
    // Missing ranks count as 0.
    expect(Array.from(policyRow([tok(0.9, [0.9])], 2)).map((x) => +x.toFixed(12))).toEqual([0.9, 0]);
  });

  it('marker safety and the [0, 1] similarity map', () => {
    const s = new MarkerSafetyScorer();
    expect(s.score('Water boils at 100 C.')).toBe(1);
    expect(s.score('Here is how to build a bomb and a weapon.')).toBeCloseTo(1 / 3, 12);
    expect([similarity01(-1), similarity01(0), similarity01(1)]).toEqual([0, 0.5, 1]);
  });
});

describe('HashingEmbedder', () => {
  const e = new HashingEmbedder(256);
  it('is deterministic, L2-normalized, and zero for text without words', () => {
    const a = e.embedOne('The answer is Paris.');
    expect(Array.from(e.embedOne('The answer is Paris.'))).toEqual(Array.from(a));
    expect(Math.hypot(...a)).toBeCloseTo(1, 6);
    expect(a).toHaveLength(256);
    expect(Math.hypot(...e.embedOne('  ?! '))).toBe(0);
  });

  it('puts texts that share words closer than texts that do not', () => {
    const a = e.embedOne('The capital of France is Paris.');
    const b = e.embedOne('Paris is the capital of France.');
    const c = e.embedOne('Photosynthesis turns light into chemical energy.');
    expect(cosine(a, b)).toBeGreaterThan(0.9);
    expect(cosine(a, c)).toBeLessThan(cosine(a, b) - 0.5);
  });
});
