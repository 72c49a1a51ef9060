/**
 * The `auto` backend choice: estimated milliseconds on the CPU backend versus the WebGPU backend
 * for a batch shape. Constants are measurements (see src/backends/webgpu/README.md for where and
 * how); a software adapter (llvmpipe and kin) never wins against the CPU backend, so it is never
 * chosen automatically.
 */

export interface WorkShape {
  n: number;
  t: number;
  m: number;
  d?: number;
  a?: number;
}

/** Values (E, embeddings, policy) one trajectory carries. */
export function valuesPerTrajectory(s: WorkShape): number {
  return s.t * (s.m + (s.d ?? 0) + (s.a ?? 0));
}

export const CostModel = {
  /** CPU backend: ns per input value (T=5, m=8 measured on 2 cores: see README). */
  cpuNsPerValue: 4,
  /** WebGPU per-call fixed cost on a hardware adapter: submit, map round trips, selection passes. */
  gpuFixedMs: 3,
  /** WebGPU ns per input value end to end (upload at ~9 GB/s of float32 dominates). */
  gpuNsPerValue: 0.5,
  /** Below this many values the GPU is not even probed (keeps small runs free of Dawn's start-up). */
  minValuesToProbe: 1 << 20,
};

export function cpuEstimateMs(s: WorkShape): number {
  return (s.n * valuesPerTrajectory(s) * CostModel.cpuNsPerValue) / 1e6;
}

export function gpuEstimateMs(s: WorkShape): number {
  return CostModel.gpuFixedMs + (s.n * valuesPerTrajectory(s) * CostModel.gpuNsPerValue) / 1e6;
}

/** True when the batch is large enough that probing for a GPU can pay off. */
export function worthProbing(s: WorkShape): boolean {
  return s.n * valuesPerTrajectory(s) >= CostModel.minValuesToProbe && gpuEstimateMs(s) < cpuEstimateMs(s);
}

/** Software rasterizers run WGSL on the CPU, slower than the CPU backend itself. */
export function isSoftwareAdapter(description: string): boolean {
  return /llvmpipe|lavapipe|softpipe|swiftshader|software/i.test(description);
}
