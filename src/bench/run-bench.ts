/**
 * Backend throughput on a synthetic batch: generate once (untimed), warm up, time several
 * repetitions of computeMetrics and report the median. Stage times come from the backend's
 * optional profile() hook.
 */
import { performance } from 'node:perf_hooks';
import { allocMetrics, type Batch } from '../core/batch.js';
import { checkConfigAgainstShape, toResolvedConfig, type EcrConfig, type ResolvedConfig } from '../core/config.js';
import type { BackendChoice, BackendName, ComputeOptions } from '../backends/backend.js';
import { chooseBackend, getBackend, type BackendOptions } from '../backends/registry.js';
import { syntheticBatch } from '../testing/synthetic-batch.js';
import { allocateSharedMetrics, type FloatDType } from '../backends/cpu/shared.js';

export interface BenchOptions {
  backend: BackendChoice;
  n: number;
  t: number;
  m: number;
  d?: number;
  a?: number;
  /** Untimed runs before timing (default 1). */
  warmup?: number;
  /** Timed runs (default 5). */
  reps?: number;
  config?: EcrConfig | ResolvedConfig;
  /** Element type of the generated inputs (default float64). */
  dtype?: FloatDType;
  /**
   * Allocate the inputs in SharedArrayBuffer memory. Default: true for the cpu backend (its
   * workers then read the batch in place, the documented way to use every core), false otherwise.
   */
  shared?: boolean;
  seed?: number;
  /** Also request covariance matrices. */
  covariance?: boolean;
  /** Upload E as unorm16 (webgpu only). */
  compact?: 'unorm16';
  /**
   * Allocate the output arrays once and pass them to every call (ComputeOptions.out), as a
   * caller scoring batch after batch would; default false: every call allocates fresh outputs.
   */
  reuseOutputs?: boolean;
  /** Options of the backend instance (the adapter, its report); default: the defaults. */
  backendOptions?: BackendOptions;
}

export interface BenchResult {
  backend: BackendName;
  n: number;
  t: number;
  m: number;
  d: number | null;
  a: number | null;
  dtype: FloatDType;
  shared: boolean;
  reuseOutputs: boolean;
  warmup: number;
  reps: number;
  /** Median wall time of one computeMetrics call. */
  msPerBatch: number;
  /** n / median time. */
  trajPerSec: number;
  /** Every timed repetition, ms. */
  samplesMs: number[];
  minMs: number;
  maxMs: number;
  /** From the backend's profile() hook, when it has one: ms per stage of one run. */
  stages?: Record<string, number>;
  kernelMs?: number;
  kernelTrajPerSec?: number;
}

function median(xs: number[]): number {
  const s = [...xs].sort((p, q) => p - q);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

export async function runBench(opts: BenchOptions): Promise<BenchResult> {
  const warmup = opts.warmup ?? 1;
  const reps = opts.reps ?? 5;
  if (reps < 1) throw new RangeError('reps must be at least 1');
  const dtype = opts.dtype ?? 'float64';
  const config: ResolvedConfig = toResolvedConfig(opts.config);
  checkConfigAgainstShape(config, opts.m);
  const name = await chooseBackend(opts.backend, { n: opts.n, t: opts.t, m: opts.m, d: opts.d, a: opts.a }, opts.backendOptions);
  const shared = opts.shared ?? name === 'cpu';
  const batch: Batch = syntheticBatch({ n: opts.n, t: opts.t, m: opts.m, d: opts.d, a: opts.a, dtype, shared, seed: opts.seed });
  const backend = await getBackend(name, opts.backendOptions);
  const covariance = opts.covariance ?? false;
  const reuseOutputs = opts.reuseOutputs ?? false;
  const computeOptions: ComputeOptions = { covariance, ...(opts.compact ? { compact: opts.compact } : {}) };
  if (reuseOutputs) {
    computeOptions.out = shared ? allocateSharedMetrics(opts.n, covariance ? opts.m : undefined) : allocMetrics(opts.n);
    if (covariance && !shared) computeOptions.out.covariance = new Float64Array(opts.n * opts.m * opts.m);
  }

  for (let w = 0; w < warmup; w++) await backend.computeMetrics(batch, config, computeOptions);
  const samplesMs: number[] = [];
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    await backend.computeMetrics(batch, config, computeOptions);
    samplesMs.push(performance.now() - t0);
  }
  const msPerBatch = median(samplesMs);
  const result: BenchResult = {
    backend: name,
    n: opts.n,
    t: opts.t,
    m: opts.m,
    d: opts.d ?? null,
    a: opts.a ?? null,
    dtype,
    shared,
    reuseOutputs,
    warmup,
    reps,
    msPerBatch,
    trajPerSec: opts.n / (msPerBatch / 1000),
    samplesMs,
    minMs: Math.min(...samplesMs),
    maxMs: Math.max(...samplesMs),
  };
  if (backend.profile) {
    const prof = await backend.profile(batch, config, computeOptions);
    result.stages = prof.stages;
    if (prof.kernelMs !== undefined) {
      result.kernelMs = prof.kernelMs;
      result.kernelTrajPerSec = prof.kernelMs > 0 ? opts.n / (prof.kernelMs / 1000) : undefined;
    }
  }
  return result;
}
