/**
 * Host descriptions of the ECR kernels: which WGSL file and entry point, the override constants,
 * the binding layout, and how many workgroups a given size needs. No device code here.
 */
import { ShaderStage } from '../../gpu/usage.js';
import type { PipelineSpec } from '../../gpu/pipeline-cache.js';

const uniform = (binding: number): GPUBindGroupLayoutEntry => ({ binding, visibility: ShaderStage.COMPUTE, buffer: { type: 'uniform' } });
const readOnly = (binding: number): GPUBindGroupLayoutEntry => ({ binding, visibility: ShaderStage.COMPUTE, buffer: { type: 'read-only-storage' } });
const readWrite = (binding: number): GPUBindGroupLayoutEntry => ({ binding, visibility: ShaderStage.COMPUTE, buffer: { type: 'storage' } });

/** Bytes of workgroup memory the metrics kernel uses besides its staging array. */
const METRICS_WORKGROUP_EXTRA = 16;
const METRICS_MAX_WG = 128;

/**
 * Trajectories per workgroup of the metrics kernel: 128, halved until the staged E of the whole
 * workgroup fits the device's workgroup storage. 0 when a single trajectory does not fit.
 */
export function metricsWorkgroupSize(tm: number, maxWorkgroupStorage: number, maxWorkgroupSizeX: number): number {
  let wg = Math.min(METRICS_MAX_WG, maxWorkgroupSizeX);
  // (wg + 1) lanes per value: the staging array is padded against bank conflicts.
  while (wg >= 1 && (wg + 1) * tm * 4 + METRICS_WORKGROUP_EXTRA > maxWorkgroupStorage) wg >>= 1;
  return wg;
}

/** Shapes up to this many values per trajectory get T and m compiled in (unrolled loops). */
export const UNROLL_MAX_TM = 64;

export function metricsKernel(t: number, m: number, wg: number, unorm16: boolean): PipelineSpec {
  const fixed = t * m <= UNROLL_MAX_TM;
  return {
    file: 'ecr_metrics.wgsl',
    entryPoint: 'main',
    constants: { WG: wg, TM: t * m, T_FIXED: fixed ? t : 0, M_FIXED: fixed ? m : 0, E_UNORM16: unorm16 ? 1 : 0 },
    layout: [uniform(0), readOnly(1), readOnly(2), readOnly(3), readOnly(4), readOnly(5), readOnly(6), readWrite(7), readWrite(8), readWrite(9)],
    label: 'ecr.metrics',
  };
}

/** Binding numbers of the metrics kernel, by role. */
export const MetricsBinding = {
  params: 0, e: 1, policy: 2, rewardDiff: 3, tsEmb: 4, baseKey: 5, groups: 6, out: 7, selRec: 8, groupState: 9,
} as const;

/** Invocations cooperating on one trajectory's embeddings. */
export const TS_EMB_WG = 64;

export function tsEmbeddingsKernel(t: number): PipelineSpec {
  return {
    file: 'ts_embeddings.wgsl',
    entryPoint: 'main',
    constants: { WG: TS_EMB_WG, T_FIXED: t <= 8 ? t : 0 },
    layout: [uniform(0), readOnly(1), readWrite(2)],
    label: 'ecr.tsEmbeddings',
  };
}

export const COVARIANCE_WG = 64;

export function covarianceKernel(unorm16: boolean): PipelineSpec {
  return {
    file: 'covariance.wgsl',
    entryPoint: 'main',
    constants: { WG: COVARIANCE_WG, E_UNORM16: unorm16 ? 1 : 0 },
    layout: [uniform(0), readOnly(1), readWrite(2)],
    label: 'ecr.covariance',
  };
}

export const SELECT_WG = 128;
export type SelectPass = 'refine' | 'index' | 'finish';

export function selectKernel(pass: SelectPass): PipelineSpec {
  return {
    file: 'select_groups.wgsl',
    entryPoint: pass,
    constants: { WG: SELECT_WG },
    layout: [uniform(0), readOnly(1), readWrite(2), readWrite(3)],
    label: `ecr.select.${pass}`,
  };
}

/** u32 words per GroupState (admHi, admLo, anyKey, admIdx, anyIdx). */
export const GROUP_STATE_WORDS = 5;
