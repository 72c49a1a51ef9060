/**
 * The lane metrics kernel (shaders/lanes.wgsl + a layout + an exchange): LP lanes per trajectory,
 * the fast path where the device has subgroups (T <= 16, LP <= the smallest subgroup). Layouts:
 * 'rows' (4 consecutive components per lane, 16-byte loads; m a multiple of 4) and 'components'
 * (one lane per component, any m <= 32). Exchanges: subgroup shuffles, or workgroup memory
 * ('-emulated': slow; it runs the same logic on adapters without subgroups, for tests).
 */
import { UsageError } from '../../../core/errors.js';
import { Bind } from './bindings.js';
import type { Program } from './program.js';

export type LaneLayout = 'rows' | 'components';

/** Invocations per workgroup (at most; lowered to the device's limit). */
export const LANES_WG = 256;
export const LANES_MAX_T = 16;

function nextPow2(x: number): number {
  let p = 1;
  while (p < x) p <<= 1;
  return p;
}

/** Lanes per trajectory: m (one component per lane) or m/4 (rows), rounded up to a power of two. */
export function lanesPerTrajectory(m: number, layout: LaneLayout): number {
  return nextPow2(layout === 'rows' ? Math.ceil(m / 4) : m);
}

/** Why this layout cannot run (T, m) with at most `maxWorkgroupSizeX` invocations, or null (subgroup sizes aside). */
export function lanesUnfit(layout: LaneLayout, t: number, m: number, maxWorkgroupSizeX: number): string | null {
  if (layout === 'rows' && m % 4 !== 0) return `the rows layout needs m to be a multiple of 4, got ${m}`;
  const lp = lanesPerTrajectory(m, layout);
  if (lp > 32) return `m = ${m} needs ${lp} lanes per trajectory (at most 32)`;
  if (t > LANES_MAX_T) return `T = ${t} exceeds ${LANES_MAX_T}`;
  if (Math.min(LANES_WG, maxWorkgroupSizeX) < 4 * lp) return `a workgroup cannot hold 4 trajectories of ${lp} lanes`;
  return null;
}

/**
 * Invocations per workgroup (WG / LP trajectories): `preferred` within the device's limit, at
 * least 4 and at most 256 trajectories per workgroup.
 */
export function lanesWorkgroupSize(maxComputeWorkgroupSizeX: number, lanesPerTraj = 1, preferred = LANES_WG): number {
  if (!Number.isInteger(preferred) || preferred < 1 || (preferred & (preferred - 1)) !== 0)
    throw new UsageError(`laneWorkgroupSize must be a power of two, got ${preferred}`);
  let wg = Math.min(preferred, maxComputeWorkgroupSizeX);
  while (wg / lanesPerTraj > 256) wg >>= 1;
  if (wg < 4 * lanesPerTraj) throw new UsageError(`laneWorkgroupSize ${preferred} holds fewer than 4 trajectories of ${lanesPerTraj} lanes`);
  return wg;
}

/**
 * `crUniform` (all CR weights equal) compiles only the order-change path of CR, otherwise only
 * the per-component rank path: a runtime switch between the two cost the H200 1.1 of 1.8 ms at
 * 10M trajectories (register pressure of the untaken path, run 13).
 */
export function lanesProgram(t: number, m: number, wg: number, unorm16: boolean, layout: LaneLayout, subgroups: boolean, crUniform: boolean): Program {
  return {
    label: `metrics.lanes.${layout}${subgroups ? '' : '-emulated'}`,
    // The shuffles all run in uniform control flow by construction (every lane executes every one).
    directives: subgroups ? ['enable subgroups;', 'diagnostic(off, subgroup_uniformity);'] : [],
    files: [
      'formulas.wgsl',
      'metrics_io.wgsl',
      'lanes.wgsl',
      subgroups ? 'lanes_subgroup.wgsl' : 'lanes_emulated.wgsl',
      layout === 'rows' ? 'lanes_rows.wgsl' : 'lanes_components.wgsl',
    ],
    entryPoint: 'main',
    bindings: [Bind.params, layout === 'rows' ? Bind.eVec4 : Bind.eWords, Bind.policy, Bind.rewardDiff, Bind.tsEmbIn, Bind.outWords],
    constants: { WG: wg, LP: lanesPerTrajectory(m, layout), T_FIXED: t, M_FIXED: m, E_UNORM16: unorm16 ? 1 : 0, CR_UNIFORM: crUniform ? 1 : 0 },
  };
}
