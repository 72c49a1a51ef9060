/** The contract every scoring backend implements. */
import { describeValue, type Batch, type MetricArrays } from '../core/batch.js';
import { UsageError } from '../core/errors.js';
import type { ResolvedConfig } from '../core/config.js';

export type BackendName = 'cpu' | 'cpu-reference' | 'webgpu';
export type BackendChoice = BackendName | 'auto';
export const BACKEND_CHOICES: readonly BackendChoice[] = ['auto', 'webgpu', 'cpu', 'cpu-reference'];

export interface ComputeOptions {
  /** Also return the shrunk covariance matrices C, [n][m][m] (trace mode only). */
  covariance?: boolean;
  /**
   * Upload E compactly (webgpu only): 'unorm16' quantizes each value to round(x * 65535) / 65535,
   * error <= 7.7e-6 per value; metrics then agree with float32 within the tolerance stated in
   * src/backends/webgpu/README.md. Other backends ignore it.
   */
  compact?: 'unorm16';
  /**
   * Write the metrics into these arrays (each of length n; covariance n*m*m when requested)
   * instead of allocating new ones, so a caller scoring batch after batch reuses memory (on a
   * VM, first-touching fresh pages can cost as much as the metrics). Every backend checks it
   * first with checkComputeOptions (src/batch.ts): an array of the wrong type or length is a
   * UsageError on all of them. The cpu backend's workers write SharedArrayBuffer-backed arrays in
   * place (see allocateSharedMetrics); read the arrays the call returns all the same.
   */
  out?: MetricArrays;
}

/**
 * A backend computes the five metrics and CCI for a validated batch whose config has been
 * checked against its shape. Admissibility and the per-group selection are the host's
 * (GroupSelector over the CCIs, across windows and shape buckets); no backend computes them now.
 */
export interface ScoreBackend {
  readonly name: BackendName;
  computeMetrics(batch: Batch, config: ResolvedConfig, options?: ComputeOptions): Promise<BackendOutput>;
  /**
   * Optional: run the batch once and report time per stage in milliseconds (for `ecr bench`),
   * e.g. {upload, kernel, readback}. `kernelMs` is device time by timestamp queries when available.
   */
  profile?(batch: Batch, config: ResolvedConfig, options?: ComputeOptions): Promise<{ stages: Record<string, number>; kernelMs?: number }>;
  /**
   * Optional: start now what the first call would start (the cpu backend's worker threads), so
   * that it boots while the caller opens its input. Nothing else changes.
   */
  warmUp?(): void;
  /** Releases devices, workers, pools. Safe to call twice. */
  dispose?(): Promise<void> | void;
}

/** What computeMetrics returns: the metric arrays, nothing else (admissibility and selection are the host's). */
export type BackendOutput = MetricArrays;

const METRIC_KEYS = ['evb', 'cr', 'ts', 'es', 'pd', 'cci'] as const;

/**
 * Checks a backend call's options against its batch: every backend's computeMetrics calls this
 * first, so a wrong-length `out` array is the same UsageError on every backend instead of being
 * written past, reallocated or ignored depending on which one runs.
 */
export function checkComputeOptions(options: ComputeOptions | undefined, n: number, m: number): void {
  if (options === undefined) return;
  if (typeof options !== 'object' || options === null) throw new UsageError(`compute options must be an object, got ${describeValue(options)}`);
  const out = options.out;
  if (out === undefined) return;
  if (typeof out !== 'object' || out === null)
    throw new UsageError(`ComputeOptions.out must be an object of Float64Arrays {evb, cr, ts, es, pd, cci}, got ${describeValue(out)}`);
  for (const key of METRIC_KEYS) {
    const a: unknown = out[key];
    if (!(a instanceof Float64Array) || a.length !== n) {
      throw new UsageError(
        `ComputeOptions.out.${key} must be a Float64Array of length n = ${n}, got ${a instanceof Float64Array ? `length ${a.length}` : describeValue(a)}`,
      );
    }
  }
  if (options.covariance === true) {
    const c: unknown = out.covariance;
    if (!(c instanceof Float64Array) || c.length !== n * m * m) {
      throw new UsageError(
        `ComputeOptions.out.covariance must be a Float64Array of length n*m*m = ${n * m * m} when covariance is requested, got ${c instanceof Float64Array ? `length ${c.length}` : describeValue(c)}`,
      );
    }
  }
}
