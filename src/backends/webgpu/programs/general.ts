/**
 * The general metrics kernel (shaders/general.wgsl): one workgroup per trajectory reading storage
 * buffers, so every shape the CPU backends accept runs (T > 16, m > 32, large d and A); it
 * computes TS from embeddings itself. CR weights come from a storage buffer (any m).
 */
import { Bind } from './bindings.js';
import type { Program } from './program.js';

/** Invocations per workgroup (= per trajectory): within every adapter's default limits. */
export const GENERAL_WG = 64;

export function generalProgram(unorm16: boolean, crUniform: boolean): Program {
  return {
    label: 'metrics.general',
    files: ['formulas.wgsl', 'metrics_io.wgsl', 'general.wgsl'],
    entryPoint: 'main',
    bindings: [Bind.params, Bind.eWords, Bind.policy, Bind.rewardDiff, Bind.embeddings, Bind.crWeights, Bind.outWords],
    constants: { GWG: GENERAL_WG, E_UNORM16: unorm16 ? 1 : 0, CR_UNIFORM: crUniform ? 1 : 0 },
  };
}
