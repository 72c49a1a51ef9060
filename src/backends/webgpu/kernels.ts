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

/** Workgroup-memory words per invocation of the metrics kernel besides staging: admissible word and select_runs.wgsl's slot (group, 2 candidates of 5 words, 2 run ends). */
const METRICS_WORDS_PER_LANE = 14;
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
    includes: ['metrics_shared.wgsl', 'select_runs.wgsl'],
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
 * through workgroup memory), or the lane kernel (ecr_lanes.wgsl) in one of two layouts, with
 * subgroup shuffles or with workgroup-memory exchanges (the '-emulated' kinds and 'emulated': slow,
 * for tests and comparisons on adapters without subgroups):
 * - 'subgroups' / 'emulated': one lane per component (lanes_components.wgsl), any m;
 * - 'rows' / 'rows-emulated': one lane per 4 consecutive components (lanes_rows.wgsl), m a multiple of 4.
 */
export type MetricsKernelKind = 'staged' | 'subgroups' | 'emulated' | 'rows' | 'rows-emulated';
/** `auto` (default): see chooseMetricsKernel. */
export type MetricsKernelPreference = 'auto' | MetricsKernelKind;
export const METRICS_KERNEL_PREFERENCES: readonly MetricsKernelPreference[] = ['auto', 'staged', 'subgroups', 'emulated', 'rows', 'rows-emulated'];

/** Invocations per workgroup of the lane kernel (at most; lowered to the device's limit). */
export const LANES_WG = 256;

const isRows = (kind: MetricsKernelKind) => kind === 'rows' || kind === 'rows-emulated';
const usesSubgroups = (kind: MetricsKernelKind) => kind === 'subgroups' || kind === 'rows';

function nextPow2(x: number): number {
  let p = 1;
  while (p < x) p <<= 1;
  return p;
}

/** Lanes per trajectory of a lane kernel: m (one component per lane) or m/4 (rows) rounded up to a power of two. */
export function lanesPerTrajectory(m: number, kind: MetricsKernelKind = 'subgroups'): number {
  return nextPow2(isRows(kind) ? Math.ceil(m / 4) : m);
}

export interface KernelCaps {
  subgroups: boolean;
  subgroupMinSize: number;
  maxComputeWorkgroupSizeX: number;
}

/** Why a lane kernel of this kind cannot run this shape on this device (without regard to subgroups), or null. */
function lanesUnfit(kind: MetricsKernelKind, t: number, m: number, caps: KernelCaps): string | null {
  if (isRows(kind) && m % 4 !== 0) return `the rows layout needs m to be a multiple of 4, got ${m}`;
  const lp = lanesPerTrajectory(m, kind);
  if (lp > 32) return `m = ${m} needs ${lp} lanes per trajectory (at most 32)`;
  if (t > 16) return `T = ${t} exceeds 16`;
  const wg = Math.min(LANES_WG, caps.maxComputeWorkgroupSizeX);
  if (wg < 4 * lp) return `a workgroup cannot hold 4 trajectories of ${lp} lanes`;
  return null;
}

/**
 * The metrics kernel for a (T, m) batch. `auto` takes a subgroup lane kernel only where the device
 * was opened with `subgroups` and a trajectory's lanes fit in the smallest subgroup: 'rows' where m
 * is a multiple of 4 (AUTO_ROWS), else 'subgroups'; without that, 'staged'. Asking for a kernel
 * that cannot run is a UsageError, never a silent substitute.
 */
export function chooseMetricsKernel(pref: MetricsKernelPreference, t: number, m: number, caps: KernelCaps): MetricsKernelKind {
  if (!METRICS_KERNEL_PREFERENCES.includes(pref)) throw new UsageError(`metricsKernel must be one of ${METRICS_KERNEL_PREFERENCES.join(', ')}, got ${JSON.stringify(pref)}`);
  if (pref === 'staged') return 'staged';
  const runnable = (kind: MetricsKernelKind) => !lanesUnfit(kind, t, m, caps)
    && (!usesSubgroups(kind) || (caps.subgroups && lanesPerTrajectory(m, kind) <= caps.subgroupMinSize));
  if (pref === 'auto') {
    if (AUTO_ROWS && runnable('rows')) return 'rows';
    return runnable('subgroups') ? 'subgroups' : 'staged';
  }
  const unfit = lanesUnfit(pref, t, m, caps);
  if (unfit) throw new UsageError(`metricsKernel '${pref}' cannot run T = ${t}, m = ${m}: ${unfit}`);
  if (usesSubgroups(pref) && !runnable(pref)) {
    throw new UsageError(caps.subgroups
      ? `metricsKernel '${pref}': ${lanesPerTrajectory(m, pref)} lanes per trajectory exceed the minimum subgroup size ${caps.subgroupMinSize}`
      : `metricsKernel '${pref}' needs a device with the 'subgroups' feature`);
  }
  return pref;
}

/**
 * Whether `auto` prefers the rows layout where it can run: H200 run 9 measured it at 2.03 ms for
 * 10M trajectories with selection against 2.43 ms for one lane per component (equal without).
 */
export const AUTO_ROWS = true;

/**
 * Invocations per workgroup of the lane kernel (WG / lanesPerTrajectory(m, kind) trajectories):
 * `preferred` (default LANES_WG) within the device's limit, and at least 4 and at most 256
 * trajectories per workgroup (the admissible words of one workgroup fill at most 64 u32).
 */
export function lanesWorkgroupSize(maxComputeWorkgroupSizeX: number, lanesPerTraj = 1, preferred = LANES_WG): number {
  if (!Number.isInteger(preferred) || preferred < 1 || (preferred & (preferred - 1)) !== 0) throw new UsageError(`laneWorkgroupSize must be a power of two, got ${preferred}`);
  let wg = Math.min(preferred, maxComputeWorkgroupSizeX);
  while (wg / lanesPerTraj > 256) wg >>= 1;
  if (wg < 4 * lanesPerTraj) throw new UsageError(`laneWorkgroupSize ${preferred} holds fewer than 4 trajectories of ${lanesPerTraj} lanes`);
  return wg;
}

/**
 * Where pass 1 of the selection runs for a lane kernel: 'fused' at the end of the metrics kernel,
 * over its WG / LP trajectories per workgroup; 'separate' in select_runs_main.wgsl right after it,
 * one invocation per trajectory over the CCIs just written (the staged kernel always fuses).
 */
export type SelectionKernel = 'fused' | 'separate';
export const SELECTION_KERNELS: readonly SelectionKernel[] = ['fused', 'separate'];

/**
 * Benchmark probes of the lane kernels (their outputs are not metrics): see PROBE in ecr_lanes.wgsl.
 * The skip-* probes (rows layout) leave one metric's arithmetic out, to apportion the kernel's time.
 */
export type KernelProbe = 'loads-only' | 'no-loads' | 'skip-cr' | 'skip-pd' | 'skip-ts';
export const KERNEL_PROBES: readonly KernelProbe[] = ['loads-only', 'no-loads', 'skip-cr', 'skip-pd', 'skip-ts'];
const PROBE_CODES: Record<KernelProbe, number> = { 'loads-only': 1, 'no-loads': 2, 'skip-cr': 3, 'skip-pd': 4, 'skip-ts': 5 };
/** Probes that only the rows layout implements. */
export const ROWS_ONLY_PROBES: readonly KernelProbe[] = KERNEL_PROBES.filter((p) => p !== 'loads-only' && p !== 'no-loads');

/**
 * The lane kernel. `crUniform` (all CR weights equal, crWeightsUniform) compiles only the
 * order-change path of CR; otherwise only the per-component rank path. A runtime switch between
 * the two cost the H200 1.1 of 1.8 ms at 10M trajectories (register pressure of the untaken path).
 */
export function lanesKernel(t: number, m: number, wg: number, unorm16: boolean, kind: Exclude<MetricsKernelKind, 'staged'>, selFused = true, probe?: KernelProbe, crUniform = true): PipelineSpec {
  const subgroups = usesSubgroups(kind);
    return {
    file: 'ecr_lanes.wgsl',
    prelude: subgroups ? ['enable_subgroups.wgsl'] : [],
    includes: ['metrics_shared.wgsl', 'select_runs.wgsl', subgroups ? 'lanes_subgroup.wgsl' : 'lanes_emulated.wgsl', isRows(kind) ? 'lanes_rows.wgsl' : 'lanes_components.wgsl'],
    entryPoint: 'main',
    constants: { WG: wg, LP: lanesPerTrajectory(m, kind), T_FIXED: t, M_FIXED: m, E_UNORM16: unorm16 ? 1 : 0, SEL_FUSED: selFused ? 1 : 0, PROBE: probe ? PROBE_CODES[probe] : 0, CR_UNIFORM: crUniform ? 1 : 0 },
    layout: metricsLayout(),
    label: `ecr.lanes.${kind}`,
  };
}

/** Invocations (= trajectories) per workgroup of the separate selection kernel. */
export const SELECT_RUNS_WG = 256;

/** Pass 1 of the selection as its own kernel, bound like the metrics kernels (MetricsBinding). */
export function selectRunsKernel(): PipelineSpec {
  return {
    file: 'select_runs_main.wgsl',
    includes: ['select_runs.wgsl'],
    entryPoint: 'main',
    constants: { WG: SELECT_RUNS_WG },
    layout: metricsLayout(),
    label: 'ecr.select.runs',
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
