/**
 * The `cpu` backend's compute kernel: ECR-SPEC section 3 over packed typed arrays, float64
 * arithmetic, for a range of trajectories. It runs on the main thread and, unchanged, inside the
 * worker threads, so everything it needs travels in one plain `KernelJob` (typed arrays and
 * numbers, no class instances) that structured clone can post; SharedArrayBuffer-backed arrays
 * cross without a copy.
 *
 * The range is processed in blocks of BLOCK trajectories, one metric at a time per block: each
 * metric loop stays small and monomorphic while the block's inputs stay in cache. Scratch arrays
 * are allocated once per call to `scoreRange`; the loops allocate nothing.
 */
import type { FloatArray } from '../../batch.js';

/** A block's inputs (BLOCK * T * m * 8 bytes, 40 KiB at T=5, m=8) stay in L1/L2 across the metric passes. */
const BLOCK = 128;
const NORM_EPS = 1e-12;
const KL_EPS = 1e-10;

export const EVB_TRACE = 0;
export const EVB_MAX_ABS_CHANGE = 1;
/** EVB shrinkage: fixed lambda toward I, fixed lambda toward (tr S / m) I, or scikit-learn's Ledoit-Wolf. */
export const SHRINK_IDENTITY = 0;
export const SHRINK_SCALED_IDENTITY = 1;
export const SHRINK_LEDOIT_WOLF = 2;

/** Everything one kernel run needs; every option already resolved to a number. */
export interface KernelJob {
  t: number;
  m: number;
  /** First trajectory index held by the input arrays (non-zero when a worker got a copied slice). */
  inputStart: number;
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
  /** Outputs, indexed by global trajectory index. */
  evb: Float64Array;
  cr: Float64Array;
  ts: Float64Array;
  es: Float64Array;
  pd: Float64Array;
  cci: Float64Array;
  /** Shrunk covariance matrices [n][m][m], or null when not requested. */
  covariance: Float64Array | null;
}

/** Scratch reused across all blocks of one call. */
interface Scratch {
  mean: Float64Array;
  centered: Float64Array;
  permA: Int32Array;
  permB: Int32Array;
  probPrev: Float64Array;
  probCur: Float64Array;
  logPrev: Float64Array;
  logCur: Float64Array;
}

function allocScratch(job: KernelJob): Scratch {
  const pw = job.a > 0 ? job.a : job.m;
  return {
    mean: new Float64Array(job.m),
    centered: new Float64Array(job.t * job.m),
    permA: new Int32Array(job.m),
    permB: new Int32Array(job.m),
    probPrev: new Float64Array(pw),
    probCur: new Float64Array(pw),
    logPrev: new Float64Array(pw),
    logCur: new Float64Array(pw),
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
 * EVB = min(1, tr(C)/m) needs only the trace of the shrunk covariance, and every shrinkage keeps
 * the trace simple: identity target (1-l) tr(S) + l m, scaled-identity tr(S), Ledoit-Wolf tr(S')
 * (its target mu I has trace tr(S'), so the shrinkage cancels). tr(S) is the sum of per-component
 * variances. Computing EVB this way also when covariances are requested keeps EVB bit-identical
 * whether or not they are.
 */
function evbTrace(job: KernelJob, s: number, e: number, scratch: Scratch): void {
  const { t, m, steps, evb, shrink, lambda } = job;
  const tm = t * m;
  const mean = scratch.mean;
  const divisor = shrink === SHRINK_LEDOIT_WOLF ? t : t - 1;
  for (let i = s; i < e; i++) {
    const base = (i - job.inputStart) * tm;
    for (let j = 0; j < m; j++) mean[j] = 0;
    for (let k = 0, row = base; k < t; k++, row += m) {
      for (let j = 0; j < m; j++) mean[j] += steps[row + j];
    }
    for (let j = 0; j < m; j++) mean[j] /= t;
    let ss = 0;
    for (let k = 0, row = base; k < t; k++, row += m) {
      for (let j = 0; j < m; j++) {
        const dv = steps[row + j] - mean[j];
        ss += dv * dv;
      }
    }
    const traceS = ss / divisor;
    const traceC = shrink === SHRINK_IDENTITY ? (1 - lambda) * traceS + lambda * m : traceS;
    const v = traceC / m;
    evb[i] = v < 1 ? v : 1;
  }
}

function evbMaxAbsChange(job: KernelJob, s: number, e: number): void {
  const { t, m, steps, evb } = job;
  const tm = t * m;
  const lastRow = (t - 1) * m;
  for (let i = s; i < e; i++) {
    const base = (i - job.inputStart) * tm;
    let mx = 0;
    for (let j = 0; j < m; j++) {
      const dv = Math.abs(steps[base + j] - steps[base + lastRow + j]);
      if (dv > mx) mx = dv;
    }
    evb[i] = mx < 1 ? mx : 1;
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
  const { t, m, steps, shrink, lambda } = job;
  const out = job.covariance!;
  const tm = t * m;
  const mm = m * m;
  const { mean, centered } = scratch;
  for (let i = s; i < e; i++) {
    const base = (i - job.inputStart) * tm;
    for (let j = 0; j < m; j++) mean[j] = 0;
    for (let k = 0; k < t; k++) for (let j = 0; j < m; j++) mean[j] += steps[base + k * m + j];
    for (let j = 0; j < m; j++) mean[j] /= t;
    for (let k = 0; k < t; k++) for (let j = 0; j < m; j++) centered[k * m + j] = steps[base + k * m + j] - mean[j];
    const o = i * mm;
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

/** True when component a sorts before component b: larger value first, ties to the lower index. */
function sortsBefore(va: number, a: number, vb: number, b: number): boolean {
  return va > vb || (va === vb && a < b);
}

/** Writes the components of row `off` into `perm` in rank order (insertion sort: m is small). */
function rankOrder(steps: FloatArray, off: number, m: number, perm: Int32Array): void {
  for (let j = 0; j < m; j++) {
    const v = steps[off + j];
    let pos = j;
    // Components enter in index order, so stopping at an equal value keeps ties lower-index first.
    while (pos > 0 && steps[off + perm[pos - 1]] < v) {
      perm[pos] = perm[pos - 1];
      pos--;
    }
    perm[pos] = j;
  }
}

/**
 * CR. The rank order is a strict total order, so step k has the same ranks as step k-1 exactly
 * when the previous order is still sorted under step k's values: an O(m) check that skips the
 * sort for steps whose ordering did not change. A component's rank changed iff the component now
 * at its position differs from the one there before.
 */
function contradictionRate(job: KernelJob, s: number, e: number, scratch: Scratch): void {
  const { t, m, steps, cr, crWeights } = job;
  const tm = t * m;
  const h = t - 1;
  let prev = scratch.permA;
  let cur = scratch.permB;
  for (let i = s; i < e; i++) {
    const base = (i - job.inputStart) * tm;
    rankOrder(steps, base, m, prev);
    let total = 0;
    for (let k = 1; k <= h; k++) {
      const off = base + k * m;
      let same = true;
      for (let p = 0; p + 1 < m; p++) {
        const a = prev[p];
        const b = prev[p + 1];
        if (!sortsBefore(steps[off + a], a, steps[off + b], b)) { same = false; break; }
      }
      if (same) continue;
      rankOrder(steps, off, m, cur);
      if (crWeights === null) {
        total += 1;
      } else {
        let penalty = 0;
        for (let p = 0; p < m; p++) {
          if (cur[p] !== prev[p]) {
            const w = crWeights[cur[p]];
            if (w > penalty) penalty = w;
          }
        }
        total += penalty;
      }
      const swap = prev; prev = cur; cur = swap;
    }
    cr[i] = total / h;
  }
}

function smoothnessProxy(job: KernelJob, s: number, e: number): void {
  const { t, m, steps, ts } = job;
  const tm = t * m;
  const h = t - 1;
  const sqrtM = Math.sqrt(m);
  for (let i = s; i < e; i++) {
    const base = (i - job.inputStart) * tm;
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
    ts[i] = 1 - total / h;
  }
}

function smoothnessEmbeddings(job: KernelJob, s: number, e: number): void {
  const { t, d, ts } = job;
  const emb = job.embeddings!;
  const td = t * d;
  const h = t - 1;
  for (let i = s; i < e; i++) {
    const base = (i - job.inputStart) * td;
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
    ts[i] = 1 - total / h;
  }
}

/** ES: population variance of realized - expected, else of E[.][confIndex]. */
function expectationStability(job: KernelJob, s: number, e: number): void {
  const { t, m, steps, es, expected, realized, confIndex } = job;
  const invVmax = 1 / job.vmax;
  for (let i = s; i < e; i++) {
    const li = i - job.inputStart;
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
    es[i] = x < 0 ? 0 : x > 1 ? 1 : x;
  }
}

/**
 * PD: each row normalized, KL(p_k || p_{k-1}) with the spec's epsilons. ln(p + eps) is taken
 * once per row (T*w logarithms, not 2*H*w); the KL term is the difference of the two logs.
 */
function policyDivergence(job: KernelJob, s: number, e: number, scratch: Scratch): void {
  const { t, pd, dmax } = job;
  const data = job.policy ?? job.steps;
  const w = job.policy ? job.a : job.m;
  const tw = t * w;
  const h = t - 1;
  let pPrev = scratch.probPrev;
  let pCur = scratch.probCur;
  let lPrev = scratch.logPrev;
  let lCur = scratch.logCur;
  for (let i = s; i < e; i++) {
    const base = (i - job.inputStart) * tw;
    let total = 0;
    for (let k = 0; k <= h; k++) {
      const off = base + k * w;
      let sum = 0;
      for (let j = 0; j < w; j++) sum += data[off + j];
      const denom = sum + KL_EPS;
      for (let j = 0; j < w; j++) {
        const p = data[off + j] / denom;
        pCur[j] = p;
        lCur[j] = Math.log(p + KL_EPS);
      }
      if (k > 0) {
        let kl = 0;
        for (let j = 0; j < w; j++) kl += pCur[j] * (lCur[j] - lPrev[j]);
        if (kl > 0) total += kl;
      }
      let swap = pPrev; pPrev = pCur; pCur = swap;
      swap = lPrev; lPrev = lCur; lCur = swap;
    }
    const v = total / h / dmax;
    pd[i] = v < 1 ? v : 1;
  }
}

function cci(job: KernelJob, s: number, e: number): void {
  const { weights, evb, cr, ts, es, pd, cci: out } = job;
  const wa = weights[0], wb = weights[1], wg = weights[2], wd = weights[3], we = weights[4];
  for (let i = s; i < e; i++) {
    out[i] = wa * (1 - evb[i]) + wb * (1 - cr[i]) + wg * ts[i] + wd * es[i] + we * (1 - pd[i]);
  }
}
