/**
 * Kernel tuning: one internal object for benchmarks, tests and diagnostics, not part of the
 * package's public surface (src/index.ts does not export it; WebGpuBackendOptions holds what a
 * user needs). Every field is optional; `checkTuning` rejects malformed values with a UsageError.
 */
import { UsageError } from '../../core/errors.js';

/**
 * Metrics kernels. Fast paths (T <= 16, m <= 32): 'rows' / 'components' (lane kernels with
 * subgroup shuffles), their '-emulated' builds (workgroup-memory exchanges: slow; for tests on
 * adapters without subgroups), 'staged' (no subgroups needed). 'general': every shape.
 */
export type MetricsKernelKind = 'rows' | 'components' | 'rows-emulated' | 'components-emulated' | 'staged' | 'general';
export type MetricsKernelPreference = 'auto' | MetricsKernelKind;
export const METRICS_KERNEL_PREFERENCES: readonly MetricsKernelPreference[] = [
  'auto',
  'rows',
  'components',
  'rows-emulated',
  'components-emulated',
  'staged',
  'general',
];

export interface WebGpuTuning {
  /** Metrics kernel (default 'auto', see kernel-choice.ts). A kind that cannot run the shape is a UsageError, never a substitute. Env: ECR_WEBGPU_KERNEL. */
  kernel?: MetricsKernelPreference;
  /** Trajectories per workgroup of the staged kernel (a power of two; default 128, lowered to fit workgroup storage). */
  stagedWorkgroupSize?: number;
  /** Invocations per workgroup of the lane kernels (a power of two; default 256, lowered to the device and 256 trajectories). */
  laneWorkgroupSize?: number;
  /** Staged kernel: keep a small trajectory (T, m <= 8) in registers (default true). */
  registerPath?: boolean;
  /** Soft size of one chunk's buffers in bytes (default 256 MiB, measured best on the H200). */
  targetChunkBytes?: number;
  /** Chunks in flight (default 3). */
  slots?: number;
  /** profile(): back-to-back replays that time the kernels (default 3; kernelMs is their median). */
  replays?: number;
  /**
   * Dawn's disable_robustness toggle (no bounds clamps; every kernel guards its own tails):
   * default on for native adapters only. Env: ECR_WEBGPU_UNSAFE_FAST=1|0.
   */
  disableRobustness?: boolean;
}

function positiveInteger(name: string, v: number | undefined, min = 1, max = Number.MAX_SAFE_INTEGER): void {
  if (v !== undefined && (!Number.isSafeInteger(v) || v < min || v > max)) throw new UsageError(`${name} must be an integer in ${min}..${max}, got ${v}`);
}

export function checkTuning(t: WebGpuTuning): void {
  if (t.kernel !== undefined && !METRICS_KERNEL_PREFERENCES.includes(t.kernel)) {
    throw new UsageError(`kernel must be one of ${METRICS_KERNEL_PREFERENCES.join(', ')}, got ${JSON.stringify(t.kernel)}`);
  }
  positiveInteger('stagedWorkgroupSize', t.stagedWorkgroupSize);
  positiveInteger('laneWorkgroupSize', t.laneWorkgroupSize);
  positiveInteger('targetChunkBytes', t.targetChunkBytes, 0);
  positiveInteger('slots', t.slots);
  positiveInteger('replays', t.replays, 1, 100);
}
