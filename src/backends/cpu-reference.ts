/**
 * `cpu-reference`: the float64 oracle. One trajectory at a time, each formula of ECR-SPEC
 * section 3 written out plainly on ml-matrix, with the full covariance matrices. Slow on
 * purpose: clarity is its job; the `cpu` and `webgpu` backends are checked against it.
 */
import { Matrix, covariance } from 'ml-matrix';
import type { Batch, FloatArray, MetricArrays } from '../core/batch.js';
import { allocMetrics } from '../core/batch.js';
import { checkComputeOptions } from './backend.js';
import { effectiveDmax, type ResolvedConfig } from '../core/config.js';
import type { BackendOutput, ComputeOptions, ScoreBackend } from './backend.js';

const NORM_EPS = 1e-12;
const KL_EPS = 1e-10;

/** Rows [t][w] of trajectory i from a packed [n][T][w] array, as a T x w matrix. */
function trajectoryMatrix(data: FloatArray, i: number, t: number, w: number): Matrix {
  const rows: number[][] = [];
  for (let s = 0; s < t; s++) rows.push(Array.from(data.subarray((i * t + s) * w, (i * t + s + 1) * w)));
  return new Matrix(rows);
}

/** scikit-learn's ledoit_wolf(X) (assume_centered = false): shrunk covariance. */
export function ledoitWolf(x: Matrix): Matrix {
  const t = x.rows;
  const m = x.columns;
  const xc = x.clone().center('column');
  const empCov = xc.transposeMultiply(xc).div(t);
  if (m === 1) return empCov; // sklearn returns the plain variance with shrinkage 0
  const mu = empCov.trace() / m;
  const x2 = xc.clone().apply(function (this: Matrix, r: number, c: number) {
    this.set(r, c, this.get(r, c) ** 2);
  });
  const betaSum = x2.transposeMultiply(x2).sum();
  const deltaSum =
    xc
      .transposeMultiply(xc)
      .apply(function (this: Matrix, r: number, c: number) {
        this.set(r, c, this.get(r, c) ** 2);
      })
      .sum() /
    (t * t);
  let beta = (1 / (m * t)) * (betaSum / t - deltaSum);
  const delta = (deltaSum - 2 * mu * empCov.trace() + m * mu * mu) / m;
  beta = Math.min(beta, delta);
  const shrinkage = beta === 0 || delta === 0 ? 0 : beta / delta;
  return empCov.mul(1 - shrinkage).add(Matrix.eye(m, m).mul(shrinkage * mu));
}

/** The shrunk covariance C of ECR-SPEC section 3 (EVB). */
export function shrunkCovariance(x: Matrix, config: ResolvedConfig): Matrix {
  if (config.lambda === 'ledoit-wolf') return ledoitWolf(x);
  const s = covariance(x); // sample covariance, divides by T-1
  const m = x.columns;
  const target = config.shrinkTarget === 'identity' ? Matrix.eye(m, m) : Matrix.eye(m, m).mul(s.trace() / m);
  return s.mul(1 - config.lambda).add(target.mul(config.lambda));
}

/** Rank of each component in a row: largest first, ties to the lower index. */
export function ranksLargestFirst(row: readonly number[]): number[] {
  const order = row.map((_, j) => j).sort((a, b) => row[b] - row[a] || a - b);
  const rank = new Array<number>(row.length);
  order.forEach((j, r) => {
    rank[j] = r;
  });
  return rank;
}

function populationVariance(v: readonly number[]): number {
  const mean = v.reduce((a, b) => a + b, 0) / v.length;
  return v.reduce((a, b) => a + (b - mean) ** 2, 0) / v.length;
}

function clamp01(x: number): number {
  return Math.min(1, Math.max(0, x));
}

function evb(e: Matrix, c: Matrix | null, config: ResolvedConfig): number {
  if (config.evbMode === 'max-abs-change') {
    const first = e.getRow(0);
    const last = e.getRow(e.rows - 1);
    return Math.min(1, Math.max(...first.map((v, j) => Math.abs(v - last[j]))));
  }
  return Math.min(1, c!.trace() / e.columns);
}

function contradictionRate(e: Matrix, config: ResolvedConfig): number {
  const h = e.rows - 1;
  let total = 0;
  let prev = ranksLargestFirst(e.getRow(0));
  for (let k = 1; k <= h; k++) {
    const cur = ranksLargestFirst(e.getRow(k));
    let penalty = 0;
    for (let j = 0; j < cur.length; j++) {
      if (cur[j] !== prev[j]) penalty = Math.max(penalty, config.crWeights ? config.crWeights[j] : 1);
    }
    total += penalty;
    prev = cur;
  }
  return total / h;
}

function smoothness(e: Matrix, emb: Matrix | null): number {
  const h = e.rows - 1;
  let total = 0;
  for (let k = 1; k <= h; k++) {
    if (emb) {
      const a = Matrix.rowVector(emb.getRow(k));
      const b = Matrix.rowVector(emb.getRow(k - 1));
      const na = a.norm();
      const nb = b.norm();
      total += na < NORM_EPS || nb < NORM_EPS ? 1 : clamp01(1 - a.dot(b) / (na * nb));
    } else {
      const diff = Matrix.rowVector(e.getRow(k)).sub(Matrix.rowVector(e.getRow(k - 1)));
      total += Math.min(1, diff.norm() / Math.sqrt(e.columns));
    }
  }
  return 1 - total / h;
}

function expectationStability(e: Matrix, expected: number[] | null, realized: number[] | null, config: ResolvedConfig): number {
  const series = expected && realized ? realized.map((r, t) => r - expected[t]) : e.getColumn(config.confIndex);
  return clamp01(1 - populationVariance(series) / config.vmax);
}

function policyDivergence(p: Matrix, dmax: number): number {
  const rows = p.to2DArray().map((row) => {
    const sum = row.reduce((a, b) => a + b, 0) + KL_EPS;
    return row.map((x) => x / sum);
  });
  const h = rows.length - 1;
  let total = 0;
  for (let k = 1; k <= h; k++) {
    let kl = 0;
    for (let j = 0; j < rows[k].length; j++) kl += rows[k][j] * Math.log((rows[k][j] + KL_EPS) / (rows[k - 1][j] + KL_EPS));
    total += Math.max(kl, 0);
  }
  return Math.min(1, total / h / dmax);
}

export class CpuReferenceBackend implements ScoreBackend {
  readonly name = 'cpu-reference' as const;

  async computeMetrics(batch: Batch, config: ResolvedConfig, options: ComputeOptions = {}): Promise<BackendOutput> {
    const { n, t, m } = batch;
    checkComputeOptions(options, n, m);
    const given = options.out;
    // The caller's arrays when given (ComputeOptions.out), every entry overwritten below.
    const out: MetricArrays = given ? { evb: given.evb, cr: given.cr, ts: given.ts, es: given.es, pd: given.pd, cci: given.cci } : allocMetrics(n);
    if (options.covariance) out.covariance = given?.covariance ?? new Float64Array(n * m * m);
    const dmax = effectiveDmax(config, batch.policy ? batch.a : undefined);
    const [wa, wb, wg, wd, we] = config.weights;
    for (let i = 0; i < n; i++) {
      const e = trajectoryMatrix(batch.steps, i, t, m);
      const needC = config.evbMode === 'trace' || options.covariance;
      const c = needC ? shrunkCovariance(e, config) : null;
      if (out.covariance) out.covariance.set(c!.to1DArray(), i * m * m);
      const emb = batch.embeddings ? trajectoryMatrix(batch.embeddings, i, t, batch.d!) : null;
      const expected = batch.expected ? Array.from(batch.expected.subarray(i * t, (i + 1) * t)) : null;
      const realized = batch.realized ? Array.from(batch.realized.subarray(i * t, (i + 1) * t)) : null;
      const policy = batch.policy ? trajectoryMatrix(batch.policy, i, t, batch.a!) : e;

      out.evb[i] = evb(e, c, config);
      out.cr[i] = contradictionRate(e, config);
      out.ts[i] = smoothness(e, emb);
      out.es[i] = expectationStability(e, expected, realized, config);
      out.pd[i] = policyDivergence(policy, dmax);
      out.cci[i] = wa * (1 - out.evb[i]) + wb * (1 - out.cr[i]) + wg * out.ts[i] + wd * out.es[i] + we * (1 - out.pd[i]);
    }
    return out;
  }
}
