/** The shrunk covariance matrices C (shaders/covariance.wgsl), only on request; any m. */
import { Bind } from './bindings.js';
import type { Program } from './program.js';

export const COVARIANCE_WG = 64;

export function covarianceProgram(unorm16: boolean): Program {
  return {
    label: 'covariance',
    files: ['covariance.wgsl'],
    entryPoint: 'main',
    bindings: [Bind.params, Bind.eWords, Bind.cov],
    constants: { WG: COVARIANCE_WG, E_UNORM16: unorm16 ? 1 : 0 },
  };
}
