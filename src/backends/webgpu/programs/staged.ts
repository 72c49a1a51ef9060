/**
 * The staged metrics kernel (shaders/staged.wgsl): one invocation per trajectory, the
 * workgroup's trajectories staged in workgroup memory; the fast path without subgroups, for
 * T <= 16, m <= 32 where the staging fits.
 */
import { Bind } from './bindings.js';
import type { Program } from './program.js';

/** Default trajectories per workgroup (64/128/256 measured within 3% on the H200). */
export const STAGED_DEFAULT_WG = 128;
/** The store of admissibility words is gone, but fewer than 4 trajectories per workgroup stays pointless. */
const STAGED_MIN_WG = 4;
/** Shapes up to this many values per trajectory get T and m compiled in (unrolled loops). */
export const UNROLL_MAX_TM = 64;
/** T and m up to this keep a whole trajectory in registers (the kernel's SMALL path). */
export const SMALL_MAX = 8;
/** The workgroup-memory path packs ranks 4 per u32 in 8 words: m <= 32; its rank words also bound T only through staging. */
export const STAGED_MAX_M = 32;
export const STAGED_MAX_T = 16;

/** Staging stride per trajectory: odd, so lanes reading their own trajectory hit distinct banks. */
export function stagingStride(tm: number): number {
  return tm | 1;
}

/**
 * Trajectories per workgroup: `preferred` (a power of two), halved until the staged E of the
 * whole workgroup fits the device's workgroup storage. 0 when not even 4 fit.
 */
export function stagedWorkgroupSize(tm: number, maxWorkgroupStorage: number, maxWorkgroupSizeX: number, preferred = STAGED_DEFAULT_WG): number {
  let wg = Math.min(preferred, maxWorkgroupSizeX);
  const perLane = stagingStride(tm) * 4;
  while (wg >= STAGED_MIN_WG && wg * perLane > maxWorkgroupStorage) wg >>= 1;
  return wg >= STAGED_MIN_WG ? wg : 0;
}

export function stagedProgram(t: number, m: number, wg: number, unorm16: boolean, registerPath = true): Program {
  const small = registerPath && t <= SMALL_MAX && m <= SMALL_MAX;
  const fixed = small || t * m <= UNROLL_MAX_TM;
  return {
    label: 'metrics.staged',
    files: ['formulas.wgsl', 'metrics_io.wgsl', 'staged.wgsl'],
    entryPoint: 'main',
    bindings: [Bind.params, Bind.eVec4, Bind.policy, Bind.rewardDiff, Bind.tsEmbIn, Bind.outWords],
    constants: {
      WG: wg,
      TM: t * m,
      SW: stagingStride(t * m),
      T_FIXED: fixed ? t : 0,
      M_FIXED: fixed ? m : 0,
      SMALL: small ? 1 : 0,
      E_UNORM16: unorm16 ? 1 : 0,
    },
  };
}
