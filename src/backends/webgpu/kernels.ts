/**
 * Host descriptions of the ECR kernels: which WGSL file and entry point, the override constants,
 * the binding layout, and how many workgroups a given size needs. No device code here.
 */
import { UsageError } from '../../errors.js';
import { ShaderStage } from '../../gpu/usage.js';
import type { PipelineSpec } from '../../gpu/pipeline-cache.js';

const uniform = (binding: number): GPUBindGroupLayoutEntry => ({ binding, visibility: ShaderStage.COMPUTE, buffer: { type: 'uniform' } });
const readOnly = (binding: number): GPUBindGroupLayoutEntry => ({ binding, visibility: ShaderStage.COMPUTE, buffer: { type: 'read-only-storage' } });
const readWrite = (binding: number): GPUBindGroupLayoutEntry => ({ binding, visibility: ShaderStage.COMPUTE, buffer: { type: 'storage' } });

/** Workgroup-memory words per invocation of the metrics kernel besides staging: admissible word and 6 selection arrays. */
const METRICS_WORDS_PER_LANE = 7;
/** Default trajectories per workgroup of the metrics kernel (benchmarks may ask for 64 or 256). */
export const METRICS_DEFAULT_WG = 128;
/** The kernel packs admissibility 4 bytes per word per workgroup, so a workgroup needs 4 lanes. */
const METRICS_MIN_WG = 4;

/** Staging stride per trajectory: odd, so lanes reading their own trajectory hit distinct banks. */
export function stagingStride(tm: number): number {
  return tm | 1;
}

/**
 * Trajectories per workgroup of the metrics kernel: `preferred` (a power of two), halved until the
 * staged E of the whole workgroup fits the device's workgroup storage. 0 when not even 4 fit.
 */
export function metricsWorkgroupSize(tm: number, maxWorkgroupStorage: number, maxWorkgroupSizeX: number, preferred = METRICS_DEFAULT_WG): number {
  let wg = Math.min(preferred, maxWorkgroupSizeX);
  const perLane = (stagingStride(tm) + METRICS_WORDS_PER_LANE) * 4;
  while (wg >= METRICS_MIN_WG && wg * perLane > maxWorkgroupStorage) wg >>= 1;
  return wg >= METRICS_MIN_WG ? wg : 0;
}

/** Shapes up to this many values per trajectory get T and m compiled in (unrolled loops). */
export const UNROLL_MAX_TM = 64;
/** T and m up to this keep a whole trajectory in registers (the kernel's SMALL path). */
export const SMALL_MAX = 8;

export function metricsKernel(t: number, m: number, wg: number, unorm16: boolean, registerPath = true): PipelineSpec {
  const small = registerPath && t <= SMALL_MAX && m <= SMALL_MAX;
  const fixed = small || t * m <= UNROLL_MAX_TM;
  return {
    file: 'ecr_metrics.wgsl',
    includes: ['metrics_shared.wgsl'],
    entryPoint: 'main',
    constants: {
      WG: wg, TM: t * m, SW: stagingStride(t * m), T_FIXED: fixed ? t : 0, M_FIXED: fixed ? m : 0,
      SMALL: small ? 1 : 0, E_UNORM16: unorm16 ? 1 : 0,
    },
    layout: metricsLayout(),
    label: 'ecr.metrics',
  };
}

/**
 * Which metrics kernel runs: 'staged' (ecr_metrics.wgsl, one invocation per trajectory, E staged
 * through workgroup memory), or the lane kernel (ecr_lanes.wgsl, one lane per component) with
 * subgroup shuffles ('subgroups') or with workgroup-memory exchanges ('emulated': slow, for tests
 * and comparisons on adapters without subgroups).
 */
export type MetricsKernelKind = 'staged' | 'subgroups' | 'emulated';
/** `auto` (default): the subgroup lane kernel where the device has subgroups and the shape fits, else staged. */
export type MetricsKernelPreference = 'auto' | MetricsKernelKind;
export const METRICS_KERNEL_PREFERENCES: readonly MetricsKernelPreference[] = ['auto', 'staged', 'subgroups', 'emulated'];

/** Invocations per workgroup of the lane kernel (at most; lowered to the device's limit). */
export const LANES_WG = 256;

/** Lanes per trajectory of the lane kernel: m rounded up to a power of two. */
export function lanesPerTrajectory(m: number): number {
  let lp = 1;
  while (lp < m) lp <<= 1;
  return lp;
}

export interface KernelCaps {
  subgroups: boolean;
  subgroupMinSize: number;
  maxComputeWorkgroupSizeX: number;
}

/** Why the lane kernel cannot run this shape on this device (without regard to subgroups), or null. */
function lanesUnfit(t: number, m: number, caps: KernelCaps): string | null {
  const lp = lanesPerTrajectory(m);
  if (lp > 32) return `m = ${m} needs ${lp} lanes per trajectory (at most 32)`;
  if (t > 16) return `T = ${t} exceeds 16`;
  if (Math.min(LANES_WG, caps.maxComputeWorkgroupSizeX) < 4 * lp) return `a workgroup cannot hold 4 trajectories of ${lp} lanes`;
  return null;
}

/**
 * The metrics kernel for a (T, m) batch. `auto` takes the subgroup lane kernel only where the
 * device was opened with `subgroups` and a trajectory's lanes fit in the smallest subgroup;
 * asking for 'subgroups' where that does not hold is a UsageError, never a silent substitute.
 */
export function chooseMetricsKernel(pref: MetricsKernelPreference, t: number, m: number, caps: KernelCaps): MetricsKernelKind {
  if (!METRICS_KERNEL_PREFERENCES.includes(pref)) throw new UsageError(`metricsKernel must be one of ${METRICS_KERNEL_PREFERENCES.join(', ')}, got ${JSON.stringify(pref)}`);
  if (pref === 'staged') return 'staged';
  const unfit = lanesUnfit(t, m, caps);
  const subgroupsUsable = caps.subgroups && lanesPerTrajectory(m) <= caps.subgroupMinSize;
  if (pref === 'auto') return !unfit && subgroupsUsable ? 'subgroups' : 'staged';
  if (unfit) throw new UsageError(`metricsKernel '${pref}' cannot run T = ${t}, m = ${m}: ${unfit}`);
  if (pref === 'subgroups' && !subgroupsUsable) {
    throw new UsageError(caps.subgroups
      ? `metricsKernel 'subgroups': ${lanesPerTrajectory(m)} lanes per trajectory exceed the minimum subgroup size ${caps.subgroupMinSize}`
      : "metricsKernel 'subgroups' needs a device with the 'subgroups' feature");
  }
  return pref;
}

/** Invocations per workgroup of the lane kernel; WG / lanesPerTrajectory(m) trajectories. */
export function lanesWorkgroupSize(maxComputeWorkgroupSizeX: number): number {
  return Math.min(LANES_WG, maxComputeWorkgroupSizeX);
}

/**
 * How the lane kernel reduces each run of one group after its last barrier: 'scan' (default) a
 * log-step segmented reduction over the workgroup's trajectories in workgroup memory; 'serial'
 * the first trajectory of each run folds it alone (the previous design, kept for comparison).
 */
export type SelectionTail = 'serial' | 'scan';
export const SELECTION_TAILS: readonly SelectionTail[] = ['serial', 'scan'];

export interface LanesSelectionOptions {
  /** Default 'scan'. */
  tail?: SelectionTail;
  /** Load group ids and base keys at kernel start (default false) instead of after the last barrier. */
  prefetch?: boolean;
}

export function lanesKernel(t: number, m: number, wg: number, unorm16: boolean, kind: 'subgroups' | 'emulated', selection: LanesSelectionOptions = {}): PipelineSpec {
  const tail = selection.tail ?? 'scan';
  if (!SELECTION_TAILS.includes(tail)) throw new UsageError(`selectionTail must be one of ${SELECTION_TAILS.join(', ')}, got ${JSON.stringify(tail)}`);
  return {
    file: 'ecr_lanes.wgsl',
    prelude: kind === 'subgroups' ? ['enable_subgroups.wgsl'] : [],
    includes: ['metrics_shared.wgsl', kind === 'subgroups' ? 'lanes_subgroup.wgsl' : 'lanes_emulated.wgsl'],
    entryPoint: 'main',
    constants: {
      WG: wg, LP: lanesPerTrajectory(m), T_FIXED: t, M_FIXED: m, E_UNORM16: unorm16 ? 1 : 0,
      SEL_TAIL: tail === 'scan' ? 1 : 0, SEL_PREFETCH: (selection.prefetch ?? false) ? 1 : 0,
    },
    layout: metricsLayout(),
    label: `ecr.lanes.${kind}`,
  };
}

function metricsLayout(): GPUBindGroupLayoutEntry[] {
  return [uniform(0), readOnly(1), readOnly(2), readOnly(3), readOnly(4), readOnly(5), readOnly(6), readWrite(7), readWrite(8), readWrite(9)];
}

/** Binding numbers of the metrics kernels, by role. */
export const MetricsBinding = {
  params: 0, e: 1, policy: 2, rewardDiff: 3, tsEmb: 4, baseKey: 5, groups: 6, out: 7, selRec: 8, groupState: 9,
} as const;

/** Invocations cooperating on one trajectory's embeddings (a warp on NVIDIA, half a wave on AMD). */
export const TS_EMB_TPT = 32;

/** Invocations per workgroup of the TS-from-embeddings kernel: 256, halved until its reduction rows fit. */
export function tsEmbeddingsWorkgroupSize(t: number, maxWorkgroupStorage: number, maxWorkgroupSizeX: number): number {
  let wg = Math.min(256, maxWorkgroupSizeX);
  const bytes = (w: number) => (w / TS_EMB_TPT) * 2 * t * (TS_EMB_TPT + 2) * 4;
  while (wg > TS_EMB_TPT && bytes(wg) > maxWorkgroupStorage) wg >>= 1;
  return wg;
}

export function tsEmbeddingsKernel(t: number, d: number, wg: number): PipelineSpec {
  return {
    file: 'ts_embeddings.wgsl',
    entryPoint: 'main',
    constants: { WG: wg, TPT: TS_EMB_TPT, T_FIXED: t <= 8 ? t : 0, NV: 2 * t, VEC4: d % 4 === 0 ? 1 : 0 },
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
/** Bytes per selection record (group, admHi, admLo, anyKey, admIdx, anyIdx). */
export const SEL_REC_BYTES = 24;
