/**
 * The statistics calibration rests on: discrimination (AUROC, PRR, risk-coverage), probability
 * calibration (isotonic regression by pool-adjacent-violators, Platt scaling, ECE, Brier),
 * quantiles and a seeded bootstrap. Scores are CCIs (higher = more trusted), labels are
 * "the answer was correct".
 */
import { type IsotonicMap, type PlattMap } from '../core/probability-map.js';

/** A seeded generator (mulberry32), so that bootstrap intervals and splits are reproducible. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Quantile with linear interpolation between order statistics (numpy's default, "type 7"). */
export function quantile(values: ArrayLike<number>, q: number): number {
  if (values.length === 0) return Number.NaN;
  const s = Float64Array.from(values).sort();
  const h = (s.length - 1) * q;
  const lo = Math.floor(h);
  const hi = Math.min(s.length - 1, lo + 1);
  return s[lo] + (h - lo) * (s[hi] - s[lo]);
}

export const median = (values: ArrayLike<number>) => quantile(values, 0.5);

/** Undefined statistics carry the reason instead of a number that would look plausible. */
export type Maybe = { value: number } | { value: null; reason: string };

function labelCounts(labels: readonly boolean[]): { pos: number; neg: number } {
  let pos = 0;
  for (const l of labels) if (l) pos++;
  return { pos, neg: labels.length - pos };
}

/** Why a statistic that needs both label classes is undefined on `labels`, or null when it is defined. */
export function bothClassesOrReason(labels: readonly boolean[]): string | null {
  const { pos, neg } = labelCounts(labels);
  if (labels.length === 0) return 'no labelled records';
  const all = labels.length === 1 ? 'the only label is' : `all ${labels.length} labels are`;
  if (pos === 0) return `${all} false`;
  if (neg === 0) return `${all} true`;
  return null;
}

/** Indices sorted by score, highest first (ties by index, so the order is deterministic). */
function byScoreDescending(scores: ArrayLike<number>): number[] {
  return Array.from({ length: scores.length }, (_, i) => i).sort((a, b) => scores[b] - scores[a] || a - b);
}

/**
 * AUROC: the probability that a random correct answer scores above a random incorrect one,
 * ties counting one half. Computed by one sweep over the scores in descending order, counting
 * for each block of tied scores the incorrect answers below it.
 */
export function auroc(scores: ArrayLike<number>, labels: readonly boolean[]): Maybe {
  const reason = bothClassesOrReason(labels);
  if (reason) return { value: null, reason: `AUROC is undefined: ${reason}` };
  const order = byScoreDescending(scores);
  const { pos, neg } = labelCounts(labels);
  let negAbove = 0;
  let wins = 0;
  for (let i = 0; i < order.length;) {
    let j = i;
    let p = 0;
    let n = 0;
    while (j < order.length && scores[order[j]] === scores[order[i]]) {
      if (labels[order[j]]) p++;
      else n++;
      j++;
    }
    // Each correct answer in the block beats every incorrect answer below the block, and ties
    // with the block's incorrect answers.
    wins += p * (neg - negAbove - n) + 0.5 * p * n;
    negAbove += n;
    i = j;
  }
  return { value: wins / (pos * neg) };
}

export interface RiskCoveragePoint {
  coverage: number;
  risk: number;
}

/**
 * Risk (error rate among the answers kept) against coverage (share kept), keeping answers in
 * descending score. Within a block of tied scores the errors are spread evenly, since a
 * threshold cannot separate them.
 */
export function riskCoverage(scores: ArrayLike<number>, labels: readonly boolean[]): RiskCoveragePoint[] {
  const order = byScoreDescending(scores);
  const points: RiskCoveragePoint[] = [];
  let errors = 0;
  for (let i = 0; i < order.length;) {
    let j = i;
    let blockErrors = 0;
    while (j < order.length && scores[order[j]] === scores[order[i]]) {
      if (!labels[order[j]]) blockErrors++;
      j++;
    }
    for (let k = i; k < j; k++) {
      const kept = k + 1;
      const e = errors + (blockErrors * (k - i + 1)) / (j - i);
      points.push({ coverage: kept / order.length, risk: e / kept });
    }
    errors += blockErrors;
    i = j;
  }
  return points;
}

/** Area under a risk-coverage curve (mean risk over the coverages 1/N .. 1). */
function aurc(points: readonly RiskCoveragePoint[]): number {
  let s = 0;
  for (const p of points) s += p.risk;
  return s / points.length;
}

/**
 * Prediction-rejection ratio: how much of the oracle's reduction of the risk-coverage area the
 * score achieves, relative to rejecting at random. 1 = oracle, 0 = random, negative = worse.
 */
export function prr(scores: ArrayLike<number>, labels: readonly boolean[]): Maybe {
  const reason = bothClassesOrReason(labels);
  if (reason) return { value: null, reason: `PRR is undefined: ${reason}` };
  const random = 1 - labelCounts(labels).pos / labels.length;
  const oracle = aurc(
    riskCoverage(
      labels.map((l) => (l ? 1 : 0)),
      labels,
    ),
  );
  const model = aurc(riskCoverage(scores, labels));
  return { value: (random - model) / (random - oracle) };
}

/**
 * Isotonic (non-decreasing) least-squares fit of y on x by pool-adjacent-violators. Returns the
 * fitted value for each input, in input order.
 */
export function isotonicFit(x: ArrayLike<number>, y: ArrayLike<number>, weight?: ArrayLike<number>): Float64Array {
  const n = x.length;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => x[a] - x[b] || a - b);
  // Blocks on a stack: mean, total weight, count of points. Equal x start in one block, so
  // tied inputs always get one fitted value.
  const mean: number[] = [];
  const wsum: number[] = [];
  const count: number[] = [];
  for (let k = 0; k < n;) {
    let j = k;
    let sw = 0;
    let swy = 0;
    while (j < n && x[order[j]] === x[order[k]]) {
      const w = weight ? weight[order[j]] : 1;
      sw += w;
      swy += w * y[order[j]];
      j++;
    }
    mean.push(swy / sw);
    wsum.push(sw);
    count.push(j - k);
    while (mean.length > 1 && mean[mean.length - 2] > mean[mean.length - 1]) {
      const w2 = wsum.pop()!,
        m2 = mean.pop()!,
        c2 = count.pop()!;
      const w1 = wsum.pop()!,
        m1 = mean.pop()!,
        c1 = count.pop()!;
      mean.push((w1 * m1 + w2 * m2) / (w1 + w2));
      wsum.push(w1 + w2);
      count.push(c1 + c2);
    }
    k = j;
  }
  const fitted = new Float64Array(n);
  let pos = 0;
  mean.forEach((m, b) => {
    for (let c = 0; c < count[b]; c++) fitted[order[pos++]] = m;
  });
  return fitted;
}

/**
 * Isotonic calibration map: the PAV fit, kept as the first and last input of each constant
 * block, interpolated linearly between blocks and held constant outside the data (as
 * scikit-learn's IsotonicRegression predicts with out_of_bounds="clip").
 */
export function fitIsotonicMap(scores: ArrayLike<number>, labels: readonly boolean[]): IsotonicMap {
  const y = labels.map((l) => (l ? 1 : 0));
  const fitted = isotonicFit(scores, y);
  const order = Array.from({ length: scores.length }, (_, i) => i).sort((a, b) => scores[a] - scores[b] || a - b);
  const cci: number[] = [];
  const p: number[] = [];
  for (let k = 0; k < order.length; k++) {
    const xi = scores[order[k]],
      fi = fitted[order[k]];
    const prevSame = k > 0 && fitted[order[k - 1]] === fi;
    const nextSame = k + 1 < order.length && fitted[order[k + 1]] === fi;
    if ((prevSame && nextSame) || (cci.length > 0 && cci[cci.length - 1] === xi)) continue;
    cci.push(xi);
    p.push(fi);
  }
  return { method: 'isotonic', cci, p };
}

/**
 * Platt scaling: logistic regression of the label on the score, fitted by Newton's method on
 * Platt's smoothed targets ((N+ + 1)/(N+ + 2) and 1/(N- + 2)), which keeps the fit finite when
 * the classes separate.
 */
export function fitPlattMap(scores: ArrayLike<number>, labels: readonly boolean[]): PlattMap {
  const { pos, neg } = labelCounts(labels);
  const tPos = (pos + 1) / (pos + 2);
  const tNeg = 1 / (neg + 2);
  let a = 0;
  let b = Math.log((pos + 1) / (neg + 1));
  for (let iter = 0; iter < 100; iter++) {
    let ga = 0,
      gb = 0,
      haa = 0,
      hab = 0,
      hbb = 0;
    for (let i = 0; i < scores.length; i++) {
      const p = 1 / (1 + Math.exp(-(a * scores[i] + b)));
      const d = p - (labels[i] ? tPos : tNeg);
      const w = Math.max(p * (1 - p), 1e-12);
      ga += d * scores[i];
      gb += d;
      haa += w * scores[i] * scores[i];
      hab += w * scores[i];
      hbb += w;
    }
    // Levenberg damping keeps the step finite when the Hessian is near singular.
    haa += 1e-9;
    hbb += 1e-9;
    const det = haa * hbb - hab * hab;
    const da = (hbb * ga - hab * gb) / det;
    const db = (haa * gb - hab * ga) / det;
    a -= da;
    b -= db;
    if (Math.abs(da) < 1e-10 && Math.abs(db) < 1e-10) break;
  }
  return { method: 'platt', a, b };
}

export interface ReliabilityBin {
  lower: number;
  upper: number;
  count: number;
  meanPredicted: number;
  accuracy: number;
}

/** Equal-width bins over [0, 1]; a prediction of exactly 1 falls in the last bin. */
export function reliabilityBins(predicted: ArrayLike<number>, labels: readonly boolean[], bins = 10): ReliabilityBin[] {
  const out = Array.from({ length: bins }, (_, b) => ({ lower: b / bins, upper: (b + 1) / bins, count: 0, sumP: 0, sumY: 0 }));
  for (let i = 0; i < predicted.length; i++) {
    const b = Math.min(bins - 1, Math.floor(predicted[i] * bins));
    out[b].count++;
    out[b].sumP += predicted[i];
    out[b].sumY += labels[i] ? 1 : 0;
  }
  return out.map((o) => ({
    lower: o.lower,
    upper: o.upper,
    count: o.count,
    meanPredicted: o.count ? o.sumP / o.count : Number.NaN,
    accuracy: o.count ? o.sumY / o.count : Number.NaN,
  }));
}

/** Expected calibration error: the count-weighted mean gap between accuracy and confidence. */
export function expectedCalibrationError(predicted: ArrayLike<number>, labels: readonly boolean[], bins = 10): number {
  let s = 0;
  for (const b of reliabilityBins(predicted, labels, bins)) if (b.count) s += b.count * Math.abs(b.accuracy - b.meanPredicted);
  return s / predicted.length;
}

export function brierScore(predicted: ArrayLike<number>, labels: readonly boolean[]): number {
  let s = 0;
  for (let i = 0; i < predicted.length; i++) s += (predicted[i] - (labels[i] ? 1 : 0)) ** 2;
  return s / predicted.length;
}

export interface Interval {
  low: number;
  high: number;
  replicates: number;
}

/**
 * Percentile bootstrap over clusters (groups): resamples `clusters` indices with replacement
 * and takes the 2.5 and 97.5 percentiles of `statistic`. Replicates where the statistic is
 * undefined (NaN) are dropped and the count kept says how many were used.
 */
export function bootstrapInterval(clusters: number, statistic: (sample: Int32Array) => number, replicates: number, seed: number): Interval | null {
  if (clusters < 2) return null;
  const rnd = seededRandom(seed);
  const values: number[] = [];
  const sample = new Int32Array(clusters);
  for (let r = 0; r < replicates; r++) {
    for (let i = 0; i < clusters; i++) sample[i] = Math.floor(rnd() * clusters);
    const v = statistic(sample);
    if (!Number.isNaN(v)) values.push(v);
  }
  if (values.length === 0) return null;
  return { low: quantile(values, 0.025), high: quantile(values, 0.975), replicates: values.length };
}
