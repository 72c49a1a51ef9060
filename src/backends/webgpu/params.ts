/**
 * The uniform block `Params` of shaders/common.wgsl, byte for byte. Every field is written with
 * the type the WGSL declares (u32 via setUint32, f32 via setFloat32).
 */
export const PARAMS_BYTES = 208;

export const Flag = {
  POLICY: 1,
  REWARDS: 2,
  TS_EMB: 4,
  BASE: 8,
  GROUPS: 16,
  EVB_MAXABS: 32,
  SHRINK_SCALED: 64,
  SHRINK_LW: 128,
  SELECT: 256,
  /** Every group is one contiguous run of the batch (lane kernel only: whole groups skip the records). */
  CONTIGUOUS: 512,
  /** The chunk ends the batch. */
  LAST_CHUNK: 1024,
} as const;

/** True when the first m CR weights are all equal (null: the default equal weights). */
export function crWeightsUniform(crWeights: ArrayLike<number> | null, m: number): boolean {
  if (!crWeights) return true;
  for (let j = 1; j < m; j++) if (crWeights[j] !== crWeights[0]) return false;
  return true;
}

export interface Params {
  n: number;
  t: number;
  m: number;
  /** Policy width A (metrics kernel) or embedding width d (TS kernel). */
  a: number;
  chunkStart: number;
  confIndex: number;
  flags: number;
  wgPerRow: number;
  lambda: number;
  /** Already rounded up to f32 (see tauForF32). */
  tau: number;
  vmax: number;
  dmax: number;
  weights: readonly number[];
  crWeights: ArrayLike<number> | null;
}

export function packParams(p: Params, into: DataView = new DataView(new ArrayBuffer(PARAMS_BYTES)), at = 0): DataView {
  const u = (off: number, v: number) => into.setUint32(at + off, v, true);
  const f = (off: number, v: number) => into.setFloat32(at + off, v, true);
  u(0, p.n); u(4, p.t); u(8, p.m); u(12, p.a); u(16, p.chunkStart); u(20, p.confIndex); u(24, p.flags); u(28, p.wgPerRow);
  f(32, p.lambda); f(36, p.tau); f(40, p.vmax); f(44, p.dmax);
  for (let k = 0; k < 8; k++) f(48 + 4 * k, k < p.weights.length ? p.weights[k] : 0);
  for (let j = 0; j < 32; j++) f(80 + 4 * j, p.crWeights ? (j < p.crWeights.length ? p.crWeights[j] : 0) : 1);
  return into;
}

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/**
 * The smallest float32 >= tau. For every float32 CCI c, c >= that value exactly when c >= tau
 * in float64, so the kernel's admissibility agrees with the host's GroupSelector.
 */
export function tauForF32(tau: number): number {
  f32Scratch[0] = tau;
  if (f32Scratch[0] < tau) {
    // tau is in [0, 1]: positive, so the next float32 up is the next bit pattern.
    u32Scratch[0] += 1;
  }
  return f32Scratch[0];
}
