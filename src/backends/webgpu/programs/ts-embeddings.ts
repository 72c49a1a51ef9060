/**
 * TS from embeddings for the fast paths (shaders/ts_embeddings.wgsl, T <= 16): TS_EMB_TPT
 * invocations per trajectory, 16-byte loads, padded reduction rows; its output feeds the
 * metrics kernel. The general kernel computes TS from embeddings itself.
 */
import { Bind } from './bindings.js';
import type { Program } from './program.js';

/** Invocations cooperating on one trajectory's embeddings (a warp on NVIDIA, half a wave on AMD). */
export const TS_EMB_TPT = 32;
export const TS_EMB_MAX_T = 16;

/** Invocations per workgroup: 256, halved until its reduction rows fit. */
export function tsEmbeddingsWorkgroupSize(t: number, maxWorkgroupStorage: number, maxWorkgroupSizeX: number): number {
  let wg = Math.min(256, maxWorkgroupSizeX);
  const bytes = (w: number) => (w / TS_EMB_TPT) * 2 * t * (TS_EMB_TPT + 2) * 4;
  while (wg > TS_EMB_TPT && bytes(wg) > maxWorkgroupStorage) wg >>= 1;
  return wg;
}

export function tsEmbeddingsProgram(t: number, d: number, wg: number): Program {
  return {
    label: 'tsEmbeddings',
    files: ['formulas.wgsl', 'ts_embeddings.wgsl'],
    entryPoint: 'main',
    bindings: [Bind.params, Bind.embeddingsVec4, Bind.tsEmbOut],
    constants: { WG: wg, TPT: TS_EMB_TPT, T_FIXED: t <= 8 ? t : 0, NV: 2 * t, VEC4: d % 4 === 0 ? 1 : 0 },
  };
}
