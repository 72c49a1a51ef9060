/**
 * The `auto` backend choice: estimated milliseconds on the CPU backend versus the WebGPU backend
 * for a batch shape. Constants are measurements (see src/backends/webgpu/README.md for where and
 * how); a software adapter (llvmpipe and kin) never wins against the CPU backend, so it is never
 * chosen automatically.
 */

import { machine } from '../../core/machine.js';

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

// Measured on the H200 machine (16 cores), T=5, m=8, float32 inputs, `ecr bench` medians
// (bench/results/h200/results-h200-run4.jsonl): cpu backend 1M trajectories 108-139 ms (~3 ns per value);
// webgpu 10K in 1.4 ms, 100K in 6.3 ms, 4M in 160 ms with fresh output arrays (104 ms reusing
// them): ~1 ns per value + ~1.3 ms. Host copies dominate (640 MB into staging at 10-12 GB/s, then
// the f32 -> f64 output conversion); embeddings cost ~0.4 ns per value, so this is conservative
// for them. The CPU figure scales with the worker count (cpuEstimateMs): on 2 cores it is 8x
// slower per value, on 64 cores 4x faster, where the CPU wins at every size.
export const CostModel = {
  /** CPU backend: ns per input value. */
  cpuNsPerValue: 3,
  /** WebGPU per-call fixed cost on a hardware adapter: submits, map round trips, selection passes. */
  gpuFixedMs: 1.3,
  /** WebGPU ns per input value end to end (host copy into staging and output conversion dominate). */
  gpuNsPerValue: 1,
  /** Below this many values the GPU is not even probed (keeps small runs free of Dawn's start-up). */
  minValuesToProbe: 1 << 20,
};

/** Worker threads of the cpu backend when `cpuNsPerValue` was measured (the H200 machine's cores). */
export const MEASURED_CPUS = 16;

/**
 * The cpu backend's time on this machine: the measured rate scaled by its worker count (the CPUs
 * this process may use, core/machine.ts), as the kernel work divides evenly over the workers.
 */
export function cpuEstimateMs(s: WorkShape, cpus: number = machine().cpus): number {
  return (s.n * valuesPerTrajectory(s) * CostModel.cpuNsPerValue * MEASURED_CPUS) / Math.max(1, cpus) / 1e6;
}

export function gpuEstimateMs(s: WorkShape): number {
  return CostModel.gpuFixedMs + (s.n * valuesPerTrajectory(s) * CostModel.gpuNsPerValue) / 1e6;
}

/**
 * Shapes the measurements above cover: the fast-path kernels (T <= 16, m <= 32). Beyond them the
 * general kernel runs (one workgroup per trajectory), which has no hardware measurement yet (on
 * the software adapter it ran at a tenth of the cpu backend's rate at T = 24, m = 40), so `auto`
 * does not send such batches to the GPU; `--backend webgpu` still runs them.
 */
export function measuredShape(s: WorkShape): boolean {
  return s.t <= 16 && s.m <= 32;
}

/** True when the batch is large enough, and of a measured shape, that probing for a GPU can pay off. */
export function worthProbing(s: WorkShape, cpus: number = machine().cpus): boolean {
  return measuredShape(s) && s.n * valuesPerTrajectory(s) >= CostModel.minValuesToProbe && gpuEstimateMs(s) < cpuEstimateMs(s, cpus);
}

/** Software rasterizers run WGSL on the CPU, slower than the CPU backend itself. */
export function isSoftwareAdapter(description: string): boolean {
  return /llvmpipe|lavapipe|softpipe|swiftshader|software/i.test(description);
}
