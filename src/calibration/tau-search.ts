/**
 * Choosing tau: the tau that admits a target share of trajectories (no labels needed), the
 * admission and fallback rates as functions of tau, and the tau that maximizes a labelled
 * objective (F-beta of "admitted" as a prediction of "correct").
 */
import { UsageError } from '../core/errors.js';

/**
 * The tau admitting the target share: with the CCIs sorted descending c(1) >= ... >= c(N) and
 * k = max(1, ceil(target * N)), tau = c(k), so that CCI >= tau admits k of N (more if c(k) is
 * tied). This is the exact order statistic, not an interpolated quantile.
 */
export function tauForAdmission(cci: ArrayLike<number>, target: number): number {
  if (cci.length === 0) return Number.NaN;
  const s = Float64Array.from(cci).sort().reverse();
  const k = Math.max(1, Math.ceil(target * s.length - 1e-9));
  return s[k - 1];
}

/**
 * `tauForAdmission` over group resamples without re-sorting: the CCIs are sorted once, and a
 * resample (group g drawn counts[g] times) is a weighting of that order, so each replicate is
 * one linear scan. Same result as pooling the resampled groups' CCIs and calling tauForAdmission.
 */
export class ResampledTau {
  private readonly order: Int32Array;
  private readonly sizes: Int32Array;
  private readonly counts: Int32Array;
  constructor(
    private readonly cci: ArrayLike<number>,
    private readonly groupIndex: ArrayLike<number>,
    groupCount: number,
  ) {
    this.order = Int32Array.from({ length: cci.length }, (_, i) => i).sort((a, b) => cci[b] - cci[a]);
    this.sizes = new Int32Array(groupCount);
    for (let i = 0; i < cci.length; i++) this.sizes[groupIndex[i]]++;
    this.counts = new Int32Array(groupCount);
  }

  /** The tau for `target` on the resample that draws the groups listed in `sample`. */
  tau(sample: ArrayLike<number>, target: number): number {
    const counts = this.counts;
    counts.fill(0);
    let total = 0;
    for (let i = 0; i < sample.length; i++) {
      counts[sample[i]]++;
      total += this.sizes[sample[i]];
    }
    if (total === 0) return Number.NaN;
    const k = Math.max(1, Math.ceil(target * total - 1e-9));
    let seen = 0;
    for (let r = 0; r < this.order.length; r++) {
      const i = this.order[r];
      seen += counts[this.groupIndex[i]];
      if (seen >= k) return this.cci[i];
    }
    return Number.NaN;
  }
}

export interface AdmissionPoint {
  tau: number;
  admission: number;
  fallback: number;
}

/** Admission rate (share of trajectories with CCI >= tau) and fallback rate (share of groups with none). */
export function admissionCurve(cci: ArrayLike<number>, groupIndex: ArrayLike<number>, groupCount: number, taus: readonly number[]): AdmissionPoint[] {
  const best = new Float64Array(groupCount).fill(-Infinity);
  for (let i = 0; i < cci.length; i++) best[groupIndex[i]] = Math.max(best[groupIndex[i]], cci[i]);
  const sorted = Float64Array.from(cci).sort();
  const sortedBest = Float64Array.from(best).sort();
  const countBelow = (a: Float64Array, t: number) => {
    let lo = 0,
      hi = a.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (a[mid] < t) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
  return taus.map((tau) => ({
    tau,
    admission: 1 - countBelow(sorted, tau) / sorted.length,
    fallback: countBelow(sortedBest, tau) / sortedBest.length,
  }));
}

export const TAU_GRID: readonly number[] = Array.from({ length: 101 }, (_, i) => i / 100);

export type Objective = { kind: 'fbeta'; beta: number; name: string } | { kind: 'prr' | 'auroc'; name: string };

export function parseObjective(text: string): Objective {
  if (text === 'f1') return { kind: 'fbeta', beta: 1, name: 'f1' };
  const m = /^fbeta:(.+)$/.exec(text);
  if (m) {
    const beta = Number(m[1]);
    if (!Number.isFinite(beta) || beta <= 0) throw new UsageError(`--objective fbeta:B needs a positive number B, got "${m[1]}"`);
    return { kind: 'fbeta', beta, name: text };
  }
  if (text === 'prr' || text === 'auroc') return { kind: text, name: text };
  throw new UsageError(`--objective must be f1, fbeta:B, prr or auroc, got "${text}"`);
}

/** F-beta of admission (CCI >= tau) as a prediction of correctness; 0 when nothing is admitted or nothing is correct. */
export function fbetaAt(cci: ArrayLike<number>, labels: readonly boolean[], tau: number, beta: number): number {
  let tp = 0,
    fp = 0,
    fn = 0;
  for (let i = 0; i < cci.length; i++) {
    const admitted = cci[i] >= tau;
    if (admitted && labels[i]) tp++;
    else if (admitted) fp++;
    else if (labels[i]) fn++;
  }
  const b2 = beta * beta;
  const denom = (1 + b2) * tp + b2 * fn + fp;
  return denom === 0 ? 0 : ((1 + b2) * tp) / denom;
}

/**
 * The tau maximizing F-beta over every threshold that changes the admitted set (each distinct
 * CCI). Ties go to the lower tau, which admits more.
 */
export function bestTauForFbeta(cci: ArrayLike<number>, labels: readonly boolean[], beta: number): { tau: number; value: number } {
  const order = Array.from({ length: cci.length }, (_, i) => i).sort((a, b) => cci[b] - cci[a]);
  let pos = 0;
  for (const l of labels) if (l) pos++;
  const b2 = beta * beta;
  let tp = 0,
    fp = 0;
  let best = { tau: order.length ? cci[order[0]] : Number.NaN, value: -1 };
  for (let i = 0; i < order.length;) {
    let j = i;
    while (j < order.length && cci[order[j]] === cci[order[i]]) {
      if (labels[order[j]]) tp++;
      else fp++;
      j++;
    }
    const denom = (1 + b2) * tp + b2 * (pos - tp) + fp;
    const value = denom === 0 ? 0 : ((1 + b2) * tp) / denom;
    if (value >= best.value) best = { tau: cci[order[i]], value };
    i = j;
  }
  return best;
}
