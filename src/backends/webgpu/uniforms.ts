/**
 * The uniform block every ECR kernel reads, described once: `PARAMS_FIELDS` generates both the
 * WGSL declaration (`struct Params`, prepended to every kernel by programs/program.ts) and the
 * packing into bytes, so the two cannot drift apart. The flags are generated the same way.
 * WGSL uniform layout rules are applied by `layoutOf` (u32/f32: 4 bytes, aligned 4;
 * array<vec4<f32>, N>: 16 N bytes, aligned 16); test/webgpu-program.test.ts checks the offsets
 * against those rules field by field.
 */
import { effectiveDmax, type ResolvedConfig } from '../../core/config.js';

type FieldType = 'u32' | 'f32' | { vec4Array: number };

/** Name, WGSL type, and what the field holds (the generated WGSL carries the comment). */
export const PARAMS_FIELDS = [
  ['n', 'u32', 'trajectories in this chunk'],
  ['t', 'u32', 'steps per trajectory'],
  ['m', 'u32', 'components of E'],
  ['a', 'u32', 'policy width A (0 without a policy)'],
  ['d', 'u32', 'embedding width d (0 without embeddings)'],
  ['chunkStart', 'u32', "batch index of the chunk's first trajectory"],
  ['confIndex', 'u32', 'the component ES reads without rewards'],
  ['flags', 'u32', 'Flag bits (below)'],
  ['wgPerRow', 'u32', 'workgroups along x of a refolded 2D dispatch'],
  ['lambda', 'f32', 'shrinkage intensity (fixed lambda)'],
  ['vmax', 'f32', 'ES scale'],
  ['dmax', 'f32', 'PD scale'],
  ['w', { vec4Array: 2 }, 'CCI weights alpha..epsilon in w[0].xyzw, w[1].x'],
  ['crW', { vec4Array: 8 }, 'CR component weights for m <= 32 (fast paths); the general kernel reads crWeights'],
] as const satisfies readonly (readonly [string, FieldType, string])[];

export type ParamName = (typeof PARAMS_FIELDS)[number][0];

/** Bits of Params.flags: which optional inputs are present and which formula variant applies. */
export const Flag = {
  POLICY: 1,
  REWARDS: 2,
  TS_EMB: 4,
  EVB_MAXABS: 32,
  SHRINK_SCALED: 64,
  SHRINK_LW: 128,
} as const;

export interface FieldLayout {
  name: ParamName;
  type: FieldType;
  offset: number;
  size: number;
}

function wgslType(t: FieldType): string {
  return typeof t === 'string' ? t : `array<vec4<f32>, ${t.vec4Array}>`;
}

/** Offsets by the WGSL uniform address space rules, in declaration order; total rounded to 16. */
export function layoutOf(fields: readonly (readonly [string, FieldType, string])[]): { fields: FieldLayout[]; bytes: number } {
  let offset = 0;
  const out: FieldLayout[] = [];
  for (const [name, type] of fields) {
    const align = typeof type === 'string' ? 4 : 16;
    const size = typeof type === 'string' ? 4 : 16 * type.vec4Array;
    offset = Math.ceil(offset / align) * align;
    out.push({ name: name as ParamName, type, offset, size });
    offset += size;
  }
  return { fields: out, bytes: Math.ceil(offset / 16) * 16 };
}

export const PARAMS_LAYOUT = layoutOf(PARAMS_FIELDS);
export const PARAMS_BYTES = PARAMS_LAYOUT.bytes;

/** The WGSL text of `struct Params` and the FLAG_* constants, from the descriptions above. */
export function paramsWgsl(): string {
  const fields = PARAMS_FIELDS.map(([name, type, note]) => `  ${name}: ${wgslType(type)}, // ${note}`);
  const flags = Object.entries(Flag).map(([k, v]) => `const FLAG_${k}: u32 = ${v}u;`);
  return [`// Generated from src/backends/webgpu/uniforms.ts (PARAMS_FIELDS, Flag): do not edit here.`, 'struct Params {', ...fields, '}', ...flags, ''].join(
    '\n',
  );
}

export type ParamValues = { [K in ParamName]: K extends 'w' | 'crW' ? ArrayLike<number> : number };

/** Writes one Params block at `at`, each field with the type the WGSL declares; arrays zero-padded. */
export function packParams(p: ParamValues, into: DataView = new DataView(new ArrayBuffer(PARAMS_BYTES)), at = 0): DataView {
  for (const f of PARAMS_LAYOUT.fields) {
    const v = p[f.name];
    if (f.type === 'u32') into.setUint32(at + f.offset, v as number, true);
    else if (f.type === 'f32') into.setFloat32(at + f.offset, v as number, true);
    else {
      const arr = v as ArrayLike<number>;
      for (let k = 0; k < f.size / 4; k++) into.setFloat32(at + f.offset + 4 * k, k < arr.length ? arr[k] : 0, true);
    }
  }
  return into;
}

/** True when the first m CR weights are all equal (null: the default equal weights). */
export function crWeightsUniform(crWeights: ArrayLike<number> | null, m: number): boolean {
  if (!crWeights) return true;
  for (let j = 1; j < m; j++) if (crWeights[j] !== crWeights[0]) return false;
  return true;
}

export interface ShapeFlags {
  t: number;
  m: number;
  a: number;
  d: number;
  rewards: boolean;
}

/** The config in kernel form: the Params every chunk of this batch shares (n, chunkStart, wgPerRow filled per dispatch). */
export function baseParams(shape: ShapeFlags, config: ResolvedConfig): ParamValues {
  let flags = 0;
  if (shape.a) flags |= Flag.POLICY;
  if (shape.rewards) flags |= Flag.REWARDS;
  if (shape.d) flags |= Flag.TS_EMB;
  if (config.evbMode === 'max-abs-change') flags |= Flag.EVB_MAXABS;
  if (config.lambda === 'ledoit-wolf') flags |= Flag.SHRINK_LW;
  else if (config.shrinkTarget === 'scaled-identity') flags |= Flag.SHRINK_SCALED;
  const crW = new Float64Array(32).fill(1);
  if (config.crWeights) for (let j = 0; j < 32; j++) crW[j] = j < config.crWeights.length ? config.crWeights[j] : 0;
  return {
    n: 0,
    t: shape.t,
    m: shape.m,
    a: shape.a,
    d: shape.d,
    chunkStart: 0,
    confIndex: config.confIndex,
    flags,
    wgPerRow: 0,
    lambda: typeof config.lambda === 'number' ? config.lambda : 0,
    vmax: config.vmax,
    dmax: effectiveDmax(config, shape.a ? shape.a : undefined),
    w: config.weights,
    crW,
  };
}
