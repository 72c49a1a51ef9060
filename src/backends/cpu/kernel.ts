/**
 * The `cpu` backend's compute kernel: ECR-SPEC section 3 over packed typed arrays, float64
 * arithmetic, for a range of trajectories. It runs on the main thread and, unchanged, inside the
 * worker threads, so everything it needs travels in one plain `KernelJob` (typed arrays and
 * numbers, no class instances) that structured clone can post; SharedArrayBuffer-backed arrays
 * cross without a copy.
 *
 * The range is processed in blocks of BLOCK trajectories, one metric at a time per block: each
 * metric loop stays small and monomorphic while the block's inputs stay in cache. Scratch arrays
 * are allocated once per call to `scoreRange`; the loops allocate nothing. Job fields used inside
 * the loops are read into locals first: V8 does not hoist those property loads past the
 * typed-array stores, and hoisting them took a third off the single-thread time.
 */
import type { FloatArray, MetricArrays } from '../../core/batch.js';

/** A block's E (BLOCK * T * m * 8 bytes, 160 KiB at T=5, m=8) stays in L2 across the metric passes; 512 measured a few % faster than 32 or 128. */
const BLOCK = 512;
const NORM_EPS = 1e-12;
const KL_EPS = 1e-10;

export const EVB_TRACE = 0;
export const EVB_MAX_ABS_CHANGE = 1;
/** EVB shrinkage: fixed lambda toward I, fixed lambda toward (tr S / m) I, or scikit-learn's Ledoit-Wolf. */
export const SHRINK_IDENTITY = 0;
export const SHRINK_SCALED_IDENTITY = 1;
export const SHRINK_LEDOIT_WOLF = 2;

/** Everything one kernel run needs; every option already resolved to a number. */
/** One slice of work; outputs (MetricArrays' fields) are indexed by trajectory index - outputStart. */
export interface KernelJob extends Omit<MetricArrays, 'covariance'> {
  t: number;
  m: number;
  /** First trajectory index held by the input arrays (non-zero when a worker got a copied slice). */
  inputStart: number;
  /** First trajectory index held by the output arrays (non-zero when a worker writes a staged slice). */
  outputStart: number;
  steps: FloatArray;
  /** Embedding width, 0 without embeddings. */
  d: number;
  embeddings: FloatArray | null;
  expected: FloatArray | null;
  realized: FloatArray | null;
  /** Policy width, 0 without a policy (E stands in). */
  a: number;
  policy: FloatArray | null;
  evbMode: number;
  shrink: number;
  /** Fixed lambda (ignored for Ledoit-Wolf). */
  lambda: number;
  /** Per-component CR weights, or null for all ones. */
  crWeights: Float64Array | null;
  confIndex: number;
  vmax: number;
  dmax: number;
  weights: Float64Array;
  /** Shrunk covariance matrices [n][m][m], or null when not requested. */
  covariance: Float64Array | null;
}

/** Scratch reused across all blocks of one call. */
interface Scratch {
  mean: Float64Array;
  centered: Float64Array;
  perm: Int32Array;
  prevPerm: Int32Array;
  vals: Float64Array;
  probPrev: Float64Array;
  probCur: Float64Array;
}

function allocScratch(job: KernelJob): Scratch {
  const pw = job.a > 0 ? job.a : job.m;
  return {
    mean: new Float64Array(job.m),
    centered: new Float64Array(job.t * job.m),
    perm: new Int32Array(job.m),
    prevPerm: new Int32Array(job.m),
    vals: new Float64Array(job.m),
    probPrev: new Float64Array(pw),
    probCur: new Float64Array(pw),
  };
}

/** Computes all metrics and CCI for trajectories [start, end). */
export function scoreRange(job: KernelJob, start: number, end: number): void {
  const scratch = allocScratch(job);
  for (let s = start; s < end; s += BLOCK) {
    const e = Math.min(end, s + BLOCK);
    if (job.evbMode === EVB_TRACE) evbTrace(job, s, e, scratch);
    else evbMaxAbsChange(job, s, e);
    if (job.covariance) shrunkCovariances(job, s, e, scratch);
    contradictionRate(job, s, e, scratch);
    if (job.embeddings) smoothnessEmbeddings(job, s, e);
    else smoothnessProxy(job, s, e);
    expectationStability(job, s, e);
    policyDivergence(job, s, e, scratch);
    cci(job, s, e);
  }
}

/**
 * Scores chunks of [start, end) claimed one at a time from a shared counter until none is left.
 * Threads that share inputs and outputs all run this on the same counter, so a thread slowed by
 * anything (page faults, JIT warm-up, another process) simply claims fewer chunks.
 */
export function scoreClaimed(job: KernelJob, counter: Int32Array, start: number, end: number, chunk: number): void {
  for (;;) {
    const s = start + Atomics.add(counter, 0, 1) * chunk;
    if (s >= end) return;
    scoreRange(job, s, Math.min(end, s + chunk));
  }
}

/**
 * EVB = min(1, tr(C)/m) needs only the trace of the shrunk covariance, and every shrinkage keeps
 * the trace simple: identity target (1-l) tr(S) + l m, scaled-identity tr(S), Ledoit-Wolf tr(S')
 * (its target mu I has trace tr(S'), so the shrinkage cancels). tr(S) is the sum of per-component
 * squared deviations, taken in one pass as sum(x^2) - sum_j (column sum_j)^2 / T: with E in
 * [0, 1] the cancellation costs at most about T*m ulps of 1, far inside the 1e-9 tolerance, and
 * saves the second pass. Computing EVB this way also when covariances are requested keeps EVB
 * bit-identical whether or not they are.
 */
function evbTrace(job: KernelJob, s: number, e: number, scratch: Scratch): void {
  const inStart = job.inputStart;
  const outStart = job.outputStart;
  const { t, m, steps, evb, shrink, lambda } = job;
  const tm = t * m;
  const colSum = scratch.mean;
  const divisor = shrink === SHRINK_LEDOIT_WOLF ? t : t - 1;
  for (let i = s; i < e; i++) {
    const base = (i - inStart) * tm;
    let sumSq = 0;
    for (let j = 0; j < m; j++) {
      const x = steps[base + j];
      colSum[j] = x;
      sumSq += x * x;
    }
    for (let k = 1, row = base + m; k < t; k++, row += m) {
      for (let j = 0; j < m; j++) {
        const x = steps[row + j];
        colSum[j] += x;
        sumSq += x * x;
      }
    }
    let colSq = 0;
    for (let j = 0; j < m; j++) colSq += colSum[j] * colSum[j];
    const ss = sumSq - colSq / t;
    // Rounding can leave a constant trajectory's zero spread a hair below 0.
    const traceS = (ss > 0 ? ss : 0) / divisor;
    const traceC = shrink === SHRINK_IDENTITY ? (1 - lambda) * traceS + lambda * m : traceS;
    const v = traceC / m;
    evb[i - outStart] = v < 1 ? v : 1;
  }
}

function evbMaxAbsChange(job: KernelJob, s: number, e: number): void {
  const inStart = job.inputStart;
  const outStart = job.outputStart;
  const { t, m, steps, evb } = job;
  const tm = t * m;
  const lastRow = (t - 1) * m;
  for (let i = s; i < e; i++) {
    const base = (i - inStart) * tm;
    let mx = 0;
    for (let j = 0; j < m; j++) {
      const dv = Math.abs(steps[base + j] - steps[base + lastRow + j]);
      if (dv > mx) mx = dv;
    }
    evb[i - outStart] = mx < 1 ? mx : 1;
  }
}

/**
 * The full shrunk covariance C per trajectory (only on request). Ledoit-Wolf follows
 * scikit-learn's ledoit_wolf / ledoit_wolf_shrinkage (assume_centered=False) term by term.
 * In max-abs-change mode this is still the trace-mode C of the configured shrinkage (as the
 * cpu-reference oracle returns it): the matrix describes the trajectory's spread whatever EVB
 * summarises it with.
 */
function shrunkCovariances(job: KernelJob, s: number, e: number, scratch: Scratch): void {
  const inStart = job.inputStart;
  const outStart = job.outputStart;
  const { t, m, steps, shrink, lambda } = job;
  const out = job.covariance!;
  const tm = t * m;
  const mm = m * m;
  const { mean, centered } = scratch;
  for (let i = s; i < e; i++) {
    const base = (i - inStart) * tm;
    for (let j = 0; j < m; j++) mean[j] = 0;
    for (let k = 0; k < t; k++) for (let j = 0; j < m; j++) mean[j] += steps[base + k * m + j];
    for (let j = 0; j < m; j++) mean[j] /= t;
    for (let k = 0; k < t; k++) for (let j = 0; j < m; j++) centered[k * m + j] = steps[base + k * m + j] - mean[j];
    const o = (i - outStart) * mm;
    const divisor = shrink === SHRINK_LEDOIT_WOLF ? t : t - 1;
    let traceS = 0;
    for (let a = 0; a < m; a++) {
      for (let b = a; b < m; b++) {
        let sum = 0;
        for (let k = 0; k < t; k++) sum += centered[k * m + a] * centered[k * m + b];
        const v = sum / divisor;
        out[o + a * m + b] = v;
        out[o + b * m + a] = v;
      }
      traceS += out[o + a * m + a];
    }
    let keep: number;
    let diagonalAdd: number;
    if (shrink === SHRINK_LEDOIT_WOLF) {
      const mu = traceS / m;
      const shrinkage = ledoitWolfShrinkage(centered, t, m, out, o, mu, traceS);
      keep = 1 - shrinkage;
      diagonalAdd = shrinkage * mu;
    } else {
      keep = 1 - lambda;
      diagonalAdd = shrink === SHRINK_IDENTITY ? lambda : lambda * (traceS / m);
    }
    for (let q = 0; q < mm; q++) out[o + q] *= keep;
    for (let a = 0; a < m; a++) out[o + a * m + a] += diagonalAdd;
  }
}

/**
 * scikit-learn's ledoit_wolf_shrinkage for centered X (T x m) whose empirical covariance
 * X'X/T is at out[o..o+m*m). beta_ = sum of (X2' X2) = sum_t (sum_j x_tj^2)^2; delta_ = ||X'X||_F^2 / T^2.
 */
function ledoitWolfShrinkage(centered: Float64Array, t: number, m: number, empCov: Float64Array, o: number, mu: number, traceS: number): number {
  if (m === 1) return 0; // scikit-learn: one feature, no shrinkage
  let betaSum = 0;
  for (let k = 0; k < t; k++) {
    let rowSq = 0;
    for (let j = 0; j < m; j++) rowSq += centered[k * m + j] * centered[k * m + j];
    betaSum += rowSq * rowSq;
  }
  let deltaSum = 0;
  for (let q = 0; q < m * m; q++) deltaSum += empCov[o + q] * empCov[o + q];
  let beta = (1 / (m * t)) * (betaSum / t - deltaSum);
  const delta = (deltaSum - 2 * mu * traceS + m * mu * mu) / m;
  beta = Math.min(beta, delta);
  // S' = mu I gives delta = 0: no shrinkage (scikit-learn's beta == 0 case; also guards 0/0).
  return beta === 0 || delta === 0 ? 0 : beta / delta;
}

/**
 * Re-sorts `perm` (component indices) into rank order for the row at `off`: larger value first,
 * ties to the lower index. Insertion sort starting from the previous row's order: consecutive
 * steps are usually nearly sorted already, so this is O(m) plus one move per inversion, and the
 * compares run on gathered values in `vals`, not through the permutation. Returns whether
 * anything moved, i.e. whether the rank order differs from the one `perm` held (the order is a
 * strict total order, so the sorted result is unique).
 */
function resortRanks(steps: FloatArray, off: number, m: number, perm: Int32Array, vals: Float64Array): boolean {
  for (let p = 0; p < m; p++) vals[p] = steps[off + perm[p]];
  let moved = false;
  for (let p = 1; p < m; p++) {
    const v = vals[p];
    const j = perm[p];
    const before = vals[p - 1];
    if (before > v || (before === v && perm[p - 1] < j)) continue;
    let q = p;
    do {
      vals[q] = vals[q - 1];
      perm[q] = perm[q - 1];
      q--;
    } while (q > 0 && !(vals[q - 1] > v || (vals[q - 1] === v && perm[q - 1] < j)));
    vals[q] = v;
    perm[q] = j;
    moved = true;
  }
  return moved;
}

/** Whether `perm` is still the rank order of the row at `off` (the last step needs no new order). */
function stillRanked(steps: FloatArray, off: number, m: number, perm: Int32Array): boolean {
  for (let p = 1; p < m; p++) {
    const a = perm[p - 1];
    const b = perm[p];
    const va = steps[off + a];
    const vb = steps[off + b];
    if (!(va > vb || (va === vb && a < b))) return false;
  }
  return true;
}

/**
 * CR. A component's rank changed iff the component at its position in the new order differs
 * from the one there before, so the weighted penalty compares the two orders position by position.
 */
function contradictionRate(job: KernelJob, s: number, e: number, scratch: Scratch): void {
  const inStart = job.inputStart;
  const outStart = job.outputStart;
  const { t, m, steps, cr, crWeights } = job;
  const tm = t * m;
  const h = t - 1;
  const { perm, prevPerm, vals } = scratch;
  for (let i = s; i < e; i++) {
    const base = (i - inStart) * tm;
    for (let j = 0; j < m; j++) perm[j] = j;
    resortRanks(steps, base, m, perm, vals);
    let total = 0;
    for (let k = 1; k <= h; k++) {
      if (crWeights === null) {
        const changed = k === h ? !stillRanked(steps, base + k * m, m, perm) : resortRanks(steps, base + k * m, m, perm, vals);
        if (changed) total += 1;
        continue;
      }
      prevPerm.set(perm);
      if (!resortRanks(steps, base + k * m, m, perm, vals)) continue;
      let penalty = 0;
      for (let p = 0; p < m; p++) {
        if (perm[p] !== prevPerm[p]) {
          const w = crWeights[perm[p]];
          if (w > penalty) penalty = w;
        }
      }
      total += penalty;
    }
    cr[i - outStart] = total / h;
  }
}

function smoothnessProxy(job: KernelJob, s: number, e: number): void {
  const inStart = job.inputStart;
  const outStart = job.outputStart;
  const { t, m, steps, ts } = job;
  const tm = t * m;
  const h = t - 1;
  const sqrtM = Math.sqrt(m);
  for (let i = s; i < e; i++) {
    const base = (i - inStart) * tm;
    let total = 0;
    for (let k = 1; k <= h; k++) {
      const off = base + k * m;
      let ss = 0;
      for (let j = 0; j < m; j++) {
        const dv = steps[off + j] - steps[off - m + j];
        ss += dv * dv;
      }
      const dist = Math.sqrt(ss) / sqrtM;
      total += dist < 1 ? dist : 1;
    }
    ts[i - outStart] = 1 - total / h;
  }
}

function smoothnessEmbeddings(job: KernelJob, s: number, e: number): void {
  const inStart = job.inputStart;
  const outStart = job.outputStart;
  const { t, d, ts } = job;
  const emb = job.embeddings!;
  const td = t * d;
  const h = t - 1;
  for (let i = s; i < e; i++) {
    const base = (i - inStart) * td;
    let prevSq = 0;
    for (let q = 0; q < d; q++) prevSq += emb[base + q] * emb[base + q];
    let prevNorm = Math.sqrt(prevSq);
    let total = 0;
    for (let k = 1; k <= h; k++) {
      const off = base + k * d;
      let dot = 0;
      let sq = 0;
      for (let q = 0; q < d; q++) {
        const x = emb[off + q];
        dot += x * emb[off - d + q];
        sq += x * x;
      }
      const norm = Math.sqrt(sq);
      let dist: number;
      if (norm < NORM_EPS || prevNorm < NORM_EPS) dist = 1;
      else {
        dist = 1 - dot / (norm * prevNorm);
        dist = dist < 0 ? 0 : dist > 1 ? 1 : dist;
      }
      total += dist;
      prevNorm = norm;
    }
    ts[i - outStart] = 1 - total / h;
  }
}

/** ES: population variance of realized - expected, else of E[.][confIndex]. */
function expectationStability(job: KernelJob, s: number, e: number): void {
  const inStart = job.inputStart;
  const outStart = job.outputStart;
  const { t, m, steps, es, expected, realized, confIndex } = job;
  const invVmax = 1 / job.vmax;
  for (let i = s; i < e; i++) {
    const li = i - inStart;
    let sum = 0;
    let v: number;
    if (expected !== null && realized !== null) {
      const base = li * t;
      for (let k = 0; k < t; k++) sum += realized[base + k] - expected[base + k];
      const mu = sum / t;
      let ss = 0;
      for (let k = 0; k < t; k++) {
        const dv = realized[base + k] - expected[base + k] - mu;
        ss += dv * dv;
      }
      v = ss / t;
    } else {
      const base = li * t * m + confIndex;
      for (let k = 0; k < t; k++) sum += steps[base + k * m];
      const mu = sum / t;
      let ss = 0;
      for (let k = 0; k < t; k++) {
        const dv = steps[base + k * m] - mu;
        ss += dv * dv;
      }
      v = ss / t;
    }
    const x = 1 - v * invVmax;
    es[i - outStart] = x < 0 ? 0 : x > 1 ? 1 : x;
  }
}

/** |s| below which ln((1+s)/(1-s)) comes from its series (ratios within about [0.78, 1.29]). */
const SERIES_LIMIT = 0.125;

/**
 * ln(a/b) for positive a, b. With s = (a-b)/(a+b), ln(a/b) = 2 atanh(s) = 2s (1 + s^2/3 + s^4/5 + ...);
 * for |s| <= 1/8 nine terms leave a relative error below 1e-17 and cost well under a Math.log.
 * Consecutive rows of a stable trajectory keep their ratios near 1, so that is the common case
 * (95% of the ratios in the synthetic bench batch); other ratios go to Math.log.
 */
function logRatio(a: number, b: number): number {
  const s = (a - b) / (a + b);
  if (s < SERIES_LIMIT && s > -SERIES_LIMIT) {
    const s2 = s * s;
    return 2 * s * (1 + s2 * (1 / 3 + s2 * (1 / 5 + s2 * (1 / 7 + s2 * (1 / 9 + s2 * (1 / 11 + s2 * (1 / 13 + s2 * (1 / 15 + s2 * (1 / 17)))))))));
  }
  return Math.log(a / b);
}

/** PD: each row normalized, mean of max(KL(p_k || p_{k-1}), 0) with the spec's epsilons, over dmax. */
function policyDivergence(job: KernelJob, s: number, e: number, scratch: Scratch): void {
  const inStart = job.inputStart;
  const outStart = job.outputStart;
  const { t, pd, dmax } = job;
  const data = job.policy ?? job.steps;
  const w = job.policy ? job.a : job.m;
  const tw = t * w;
  const h = t - 1;
  let pPrev = scratch.probPrev;
  let pCur = scratch.probCur;
  for (let i = s; i < e; i++) {
    const base = (i - inStart) * tw;
    let total = 0;
    for (let k = 0; k <= h; k++) {
      const off = base + k * w;
      let sum = 0;
      for (let j = 0; j < w; j++) sum += data[off + j];
      // One division per row; the products differ from p / (sum + eps) by at most an ulp.
      const inv = 1 / (sum + KL_EPS);
      for (let j = 0; j < w; j++) pCur[j] = data[off + j] * inv;
      if (k > 0) {
        let kl = 0;
        for (let j = 0; j < w; j++) {
          const p = pCur[j];
          kl += p * logRatio(p + KL_EPS, pPrev[j] + KL_EPS);
        }
        if (kl > 0) total += kl;
      }
      const swap = pPrev;
      pPrev = pCur;
      pCur = swap;
    }
    const v = total / h / dmax;
    pd[i - outStart] = v < 1 ? v : 1;
  }
}

function cci(job: KernelJob, s: number, e: number): void {
  const { weights, evb, cr, ts, es, pd, cci: out } = job;
  const wa = weights[0],
    wb = weights[1],
    wg = weights[2],
    wd = weights[3],
    we = weights[4];
  const outStart = job.outputStart;
  for (let q = s - outStart; q < e - outStart; q++) {
    out[q] = wa * (1 - evb[q]) + wb * (1 - cr[q]) + wg * ts[q] + wd * es[q] + we * (1 - pd[q]);
  }
}
