/** Calibration statistics against independent computations and hand-worked cases. */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  auroc,
  bootstrapInterval,
  brierScore,
  expectedCalibrationError,
  fitIsotonicMap,
  fitPlattMap,
  isotonicFit,
  prr,
  quantile,
  seededRandom,
} from '../src/calibration/statistics.js';
import { applyProbabilityMap } from '../src/core/probability-map.js';
import { admissionCurve, bestTauForFbeta, fbetaAt, parseObjective, ResampledTau, tauForAdmission } from '../src/calibration/tau-search.js';
import { simplexGrid, splitGroups } from '../src/calibration/weight-search.js';

/** Mann-Whitney U from the rank sum of the positives, ties given their mid-rank. */
function rankSumAuroc(scores: number[], labels: boolean[]): number {
  const idx = scores.map((_, i) => i).sort((a, b) => scores[a] - scores[b]);
  const rank = new Array<number>(scores.length);
  for (let i = 0; i < idx.length;) {
    let j = i;
    while (j < idx.length && scores[idx[j]] === scores[idx[i]]) j++;
    for (let k = i; k < j; k++) rank[idx[k]] = (i + 1 + j) / 2; // mean of ranks i+1..j
    i = j;
  }
  const nPos = labels.filter(Boolean).length;
  const nNeg = labels.length - nPos;
  const r = labels.reduce((s, l, i) => s + (l ? rank[i] : 0), 0);
  return (r - (nPos * (nPos + 1)) / 2) / (nPos * nNeg);
}

describe('AUROC', () => {
  it('matches the rank-sum formula on hand cases', () => {
    // Positive ranks 6, 5, 3: U = 14 - 6 = 8 of 3 * 3 pairs.
    expect(auroc([0.9, 0.8, 0.7, 0.6, 0.55, 0.5], [true, true, false, true, false, false]).value).toBeCloseTo(8 / 9, 15);
    // Ties: mid-ranks 4.5 and 2.5 for the positives: U = 7 - 3 = 4 of 6 pairs.
    expect(auroc([0.7, 0.7, 0.5, 0.5, 0.2], [true, false, true, false, false]).value).toBeCloseTo(2 / 3, 15);
    expect(auroc([0.1, 0.2], [true, false]).value).toBe(0);
    expect(auroc([0.3, 0.3, 0.3], [true, false, false]).value).toBe(0.5);
  });

  it('matches the rank-sum formula on random cases with ties', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 8 }), fc.boolean()), { minLength: 2, maxLength: 40 }), (rows) => {
        const scores = rows.map(([s]) => s / 8);
        const labels = rows.map(([, l]) => l);
        const a = auroc(scores, labels);
        if (labels.every((l) => l) || labels.every((l) => !l)) return a.value === null;
        return Math.abs(a.value! - rankSumAuroc(scores, labels)) < 1e-12;
      }),
      { seed: 13, numRuns: 300 },
    );
  });

  it('is undefined, with the reason, when all labels are equal', () => {
    const a = auroc([0.1, 0.5, 0.9], [true, true, true]);
    expect(a.value).toBeNull();
    expect('reason' in a && a.reason).toBe('AUROC is undefined: all 3 labels are true');
    expect(prr([0.1, 0.5], [false, false]).value).toBeNull();
  });
});

describe('PRR', () => {
  it('is 1 for the oracle ranking, 0-ish for a constant score, negative for the reversed ranking', () => {
    const labels = [true, true, false, true, false, false];
    expect(prr([6, 5, 2, 4, 1, 0], labels).value).toBeCloseTo(1, 12);
    expect(prr([1, 1, 1, 1, 1, 1], labels).value).toBeCloseTo(0, 12);
    expect(prr([0, 1, 5, 2, 4, 6], labels).value!).toBeCloseTo(-1, 12);
  });
});

describe('isotonic regression', () => {
  it('gives the pool-adjacent-violators result on hand cases', () => {
    // 3 > 2 pool to 2.5; 4 > 3 pool to 3.5.
    expect([...isotonicFit([1, 2, 3, 4, 5, 6], [1, 3, 2, 4, 3, 5])]).toEqual([1, 2.5, 2.5, 3.5, 3.5, 5]);
    expect([...isotonicFit([1, 2, 3, 4], [4, 3, 2, 1])]).toEqual([2.5, 2.5, 2.5, 2.5]);
    // Input order does not matter; tied x share one value: (1 + 0 + 0) / 3.
    const tied = isotonicFit([2, 1, 1], [0, 1, 0]);
    for (const v of tied) expect(v).toBeCloseTo(1 / 3, 15);
    // Weights: pooling 3 (weight 3) with 1 (weight 1) gives 2.5.
    expect([...isotonicFit([1, 2], [3, 1], [3, 1])]).toEqual([2.5, 2.5]);
  });

  it('as a calibration map: block knots, linear between, clipped outside', () => {
    // y = 0 1 0 1 1 0: PAV gives 0, .5, .5, 2/3, 2/3, 2/3.
    const map = fitIsotonicMap([0.1, 0.2, 0.3, 0.4, 0.5, 0.6], [false, true, false, true, true, false]);
    expect(map.cci).toEqual([0.1, 0.2, 0.3, 0.4, 0.6]);
    expect(map.p[0]).toBe(0);
    expect(map.p[1]).toBe(0.5);
    expect(map.p[2]).toBe(0.5);
    expect(map.p[3]).toBeCloseTo(2 / 3, 15);
    expect(map.p[4]).toBeCloseTo(2 / 3, 15);
    expect(applyProbabilityMap(map, 0.35)).toBeCloseTo(0.5 + 0.5 * (2 / 3 - 0.5), 12);
    expect(applyProbabilityMap(map, 0.5)).toBeCloseTo(2 / 3, 12);
    expect(applyProbabilityMap(map, 0.01)).toBe(0);
    expect(applyProbabilityMap(map, 0.99)).toBeCloseTo(2 / 3, 15);
  });
});

describe('Platt scaling', () => {
  it('recovers the logistic curve the labels were drawn from', () => {
    const rnd = seededRandom(7);
    const scores: number[] = [];
    const labels: boolean[] = [];
    for (let i = 0; i < 20000; i++) {
      const x = rnd();
      scores.push(x);
      labels.push(rnd() < 1 / (1 + Math.exp(-(8 * x - 4))));
    }
    const map = fitPlattMap(scores, labels);
    expect(map.a).toBeGreaterThan(7.4);
    expect(map.a).toBeLessThan(8.6);
    expect(map.b).toBeGreaterThan(-4.3);
    expect(map.b).toBeLessThan(-3.7);
  });
});

describe('ECE and Brier', () => {
  it('match hand computations', () => {
    const p = [0.15, 0.15, 0.85, 0.85];
    const y = [false, true, true, true];
    // bins [0.1, 0.2): gap |0.5 - 0.15| = 0.35; [0.8, 0.9): |1 - 0.85| = 0.15; two answers each.
    expect(expectedCalibrationError(p, y)).toBeCloseTo(0.25, 15);
    expect(brierScore(p, y)).toBeCloseTo((3 * 0.15 ** 2 + 0.85 ** 2) / 4, 15);
  });
});

describe('tau for a target admission', () => {
  it('is the exact order statistic: 75 of 100 distinct CCIs admitted', () => {
    const rnd = seededRandom(3);
    const values = Array.from({ length: 100 }, () => rnd());
    const ascending = [...values].sort((a, b) => a - b);
    const tau = tauForAdmission(values, 0.75);
    expect(tau).toBe(ascending[25]);
    expect(values.filter((v) => v >= tau).length).toBe(75);
  });

  it('admits at least the target when it is not a whole number of records', () => {
    const values = [0.9, 0.1, 0.5, 0.3, 0.7, 0.2, 0.8, 0.6, 0.4, 0.05];
    // ceil(7.5) = 8: the 8th largest, 0.2, admits 0.9 .. 0.2.
    expect(tauForAdmission(values, 0.75)).toBe(0.2);
    expect(values.filter((v) => v >= 0.2).length).toBe(8);
  });

  it('on a group resample equals pooling the resampled groups and taking the order statistic', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 20 }), fc.integer({ min: 0, max: 5 })), { minLength: 1, maxLength: 30 }),
        fc.array(fc.integer({ min: 0, max: 5 }), { minLength: 1, maxLength: 8 }),
        fc.double({ min: 0.05, max: 1, noNaN: true }),
        (rows, sample, target) => {
          const cci = rows.map(([c]) => c / 20);
          const group = rows.map(([, g]) => g);
          const pooled = sample.flatMap((g) => cci.filter((_, i) => group[i] === g));
          const got = new ResampledTau(cci, group, 6).tau(sample, target);
          return pooled.length === 0 ? Number.isNaN(got) : got === tauForAdmission(pooled, target);
        },
      ),
      { seed: 5, numRuns: 300 },
    );
  });

  it('admission and fallback curves count by hand', () => {
    // Group 0: 0.9, 0.5; group 1: 0.4, 0.3.
    const curve = admissionCurve([0.9, 0.5, 0.4, 0.3], [0, 0, 1, 1], 2, [0, 0.45, 0.5, 0.95]);
    expect(curve.map((p) => p.admission)).toEqual([1, 0.5, 0.5, 0]);
    expect(curve.map((p) => p.fallback)).toEqual([0, 0.5, 0.5, 1]);
  });
});

describe('F-beta tau search', () => {
  it('finds the best threshold and agrees with fbetaAt', () => {
    const cci = [0.9, 0.8, 0.7, 0.6, 0.5];
    const labels = [true, true, false, true, false];
    const best = bestTauForFbeta(cci, labels, 1);
    // Admitting the top 4: TP 3, FP 1 -> F1 = 6/7, better than the top 2 (F1 = 0.8).
    expect(best.tau).toBe(0.6);
    expect(best.value).toBeCloseTo(6 / 7, 15);
    expect(fbetaAt(cci, labels, 0.6, 1)).toBeCloseTo(6 / 7, 15);
    expect(fbetaAt(cci, labels, 0.8, 1)).toBeCloseTo(0.8, 15);
    // Precision-weighted (beta 0.25) prefers the clean top 2.
    expect(bestTauForFbeta(cci, labels, 0.25).tau).toBe(0.8);
  });

  it('parses objectives and rejects others', () => {
    expect(parseObjective('fbeta:0.5')).toEqual({ kind: 'fbeta', beta: 0.5, name: 'fbeta:0.5' });
    expect(() => parseObjective('fbeta:-1')).toThrow(/positive number/);
    expect(() => parseObjective('accuracy')).toThrow(/f1, fbeta:B, prr or auroc/);
  });
});

describe('split, grid and bootstrap', () => {
  it('splits groups with at least one on each side, reproducibly', () => {
    const s = splitGroups(10, 0.3, 5);
    expect(s.reduce((a, b) => a + b, 0)).toBe(3);
    expect([...splitGroups(10, 0.3, 5)]).toEqual([...s]);
    expect([...splitGroups(2, 0.01, 1)].sort()).toEqual([0, 1]);
  });

  it('covers the simplex', () => {
    const g = simplexGrid(10);
    expect(g).toHaveLength(1001);
    for (const w of g) expect(Math.abs(w.reduce((a, b) => a + b, 0) - 1)).toBeLessThan(1e-12);
  });

  it('bootstrap interval brackets the mean and needs two clusters', () => {
    const xs = Array.from({ length: 50 }, (_, i) => i);
    const iv = bootstrapInterval(
      50,
      (s) => {
        let t = 0;
        for (const i of s) t += xs[i];
        return t / s.length;
      },
      500,
      1,
    )!;
    expect(iv.low).toBeLessThan(24.5);
    expect(iv.high).toBeGreaterThan(24.5);
    expect(bootstrapInterval(1, () => 0, 10, 1)).toBeNull();
    expect(quantile([1, 2, 3, 4], 0.5)).toBe(2.5);
  });
});
