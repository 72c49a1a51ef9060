/**
 * Which metrics kernel runs a (T, m) batch on a device. `auto`: a subgroup lane kernel where the
 * device was opened with `subgroups` and a trajectory's lanes fit the smallest subgroup ('rows'
 * where m is a multiple of 4: H200 run 9 measured it at 2.03 ms for 10M trajectories against 2.43
 * for 'components'); else 'staged' where the staging fits; else 'general', which runs anything.
 * Asking for a kernel that cannot run is a UsageError, never a silent substitute.
 */
import { UsageError } from '../../core/errors.js';
import { lanesPerTrajectory, lanesUnfit, type LaneLayout } from './programs/lanes.js';
import { STAGED_MAX_M, STAGED_MAX_T, stagedWorkgroupSize } from './programs/staged.js';
import { TS_EMB_MAX_T, TS_EMB_TPT, tsEmbeddingsWorkgroupSize } from './programs/ts-embeddings.js';
import { METRICS_KERNEL_PREFERENCES, type MetricsKernelKind, type MetricsKernelPreference } from './tuning.js';

export interface KernelCaps {
  subgroups: boolean;
  subgroupMinSize: number;
  maxComputeWorkgroupSizeX: number;
  maxComputeWorkgroupStorageSize: number;
}

export function laneLayoutOf(kind: MetricsKernelKind): LaneLayout | null {
  if (kind === 'rows' || kind === 'rows-emulated') return 'rows';
  if (kind === 'components' || kind === 'components-emulated') return 'components';
  return null;
}

export function usesSubgroups(kind: MetricsKernelKind): boolean {
  return kind === 'rows' || kind === 'components';
}

/** Why `kind` cannot run (T, m) on a device with `caps`, or null. */
export function kernelUnfit(kind: MetricsKernelKind, t: number, m: number, caps: KernelCaps): string | null {
  if (kind === 'general') return null;
  // The fast paths take TS from embeddings from ts_embeddings.wgsl, whose accumulators are per step.
  if (t > TS_EMB_MAX_T || tsEmbeddingsWorkgroupSize(t, caps.maxComputeWorkgroupStorageSize, caps.maxComputeWorkgroupSizeX) < TS_EMB_TPT)
    return `T = ${t} exceeds the fast paths' ${TS_EMB_MAX_T} steps`;
  if (kind === 'staged') {
    if (m > STAGED_MAX_M) return `m = ${m} exceeds the staged kernel's ${STAGED_MAX_M}`;
    if (t > STAGED_MAX_T) return `T = ${t} exceeds the staged kernel's ${STAGED_MAX_T}`;
    if (stagedWorkgroupSize(t * m, caps.maxComputeWorkgroupStorageSize, caps.maxComputeWorkgroupSizeX) < 1)
      return `T*m = ${t * m} does not fit the workgroup storage`;
    return null;
  }
  const layout = laneLayoutOf(kind)!;
  const unfit = lanesUnfit(layout, t, m, caps.maxComputeWorkgroupSizeX);
  if (unfit) return unfit;
  if (usesSubgroups(kind)) {
    if (!caps.subgroups) return `'${kind}' needs a device with the 'subgroups' feature`;
    if (lanesPerTrajectory(m, layout) > caps.subgroupMinSize)
      return `${lanesPerTrajectory(m, layout)} lanes per trajectory exceed the minimum subgroup size ${caps.subgroupMinSize}`;
  }
  return null;
}

export function chooseMetricsKernel(pref: MetricsKernelPreference, t: number, m: number, caps: KernelCaps): MetricsKernelKind {
  if (!METRICS_KERNEL_PREFERENCES.includes(pref))
    throw new UsageError(`kernel must be one of ${METRICS_KERNEL_PREFERENCES.join(', ')}, got ${JSON.stringify(pref)}`);
  if (pref === 'auto') {
    for (const kind of ['rows', 'components', 'staged'] as const) if (!kernelUnfit(kind, t, m, caps)) return kind;
    return 'general';
  }
  const unfit = kernelUnfit(pref, t, m, caps);
  if (unfit) throw new UsageError(`kernel '${pref}' cannot run T = ${t}, m = ${m}: ${unfit}`);
  return pref;
}
