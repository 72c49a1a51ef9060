/** The contract every scoring backend implements. */
import type { Batch, MetricArrays } from '../batch.js';
import type { ResolvedConfig } from '../config.js';

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
  /**
   * The calling thread has other work to do meanwhile (reading and checking the next block of a
   * file): the cpu backend then runs the whole batch on its worker threads, one per configured
   * thread, and the call returns to the event loop at once instead of computing a share on the
   * calling thread. Results are the same either way. Other backends ignore it (they never compute
   * on the calling thread).
   */
  offload?: boolean;
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

export interface BackendOutput extends MetricArrays {
  /** 1 where CCI >= tau, [n]; optional. */
  admissible?: Uint8Array;
  /** Selected trajectory index per group index, -1 for a group with no members; optional. */
  groupSelected?: Int32Array;
}
