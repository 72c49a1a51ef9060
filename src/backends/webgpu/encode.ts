/**
 * Host-side encoding of one chunk's inputs straight into a mapped staging range: E as float32 or
 * unorm16, the ES reward differences, float64 order keys of base scores. Plain typed-array loops,
 * no per-element objects.
 */
import type { FloatArray } from '../../batch.js';

/**
 * Writes values in [0, 1] as unorm16 (round(x * 65535)), element 2k in the low half of word k:
 * the layout WGSL's unpack2x16unorm reads. Quantization error is at most 1/131070 per value.
 */
export function encodeUnorm16(src: FloatArray, from: number, count: number, dst: Uint16Array): void {
  // x in [0, 1]: adding 0.5 and truncating is round-half-up, as Math.round, without the call.
  for (let i = 0; i < count; i++) dst[i] = (src[from + i] * 65535 + 0.5) | 0;
  // An odd count leaves half a word: zero it (the pooled buffer may hold older data).
  if (count & 1) dst[count] = 0;
}

/** Decodes unorm16 back to numbers (tests and tolerance derivation). */
export function decodeUnorm16(src: Uint16Array, count: number): Float64Array {
  const out = new Float64Array(count);
  for (let i = 0; i < count; i++) out[i] = src[i] / 65535;
  return out;
}

/** realized - expected in float64, then float32: the difference loses less than the two floats would. */
export function encodeRewardDiff(expected: FloatArray, realized: FloatArray, from: number, count: number, dst: Float32Array): void {
  for (let i = 0; i < count; i++) dst[i] = realized[from + i] - expected[from + i];
}

const f64 = new Float64Array(1);
const f64Words = new Uint32Array(f64.buffer);

/**
 * Order-preserving 64-bit keys (hi, lo) of float64 base scores, so unsigned comparison on the GPU
 * ranks them exactly as float64 comparison does. NaN (= "use CCI") is written as (0, 0), which the
 * kernel replaces by the key of the CCI; -0 is written as +0 (they compare equal).
 */
export function encodeBaseKeys(base: Float64Array, from: number, count: number, dst: Uint32Array): void {
  for (let i = 0; i < count; i++) {
    const x = base[from + i];
    if (Number.isNaN(x)) {
      dst[2 * i] = 0;
      dst[2 * i + 1] = 0;
      continue;
    }
    f64[0] = x === 0 ? 0 : x;
    const lo = f64Words[0];
    const hi = f64Words[1];
    if (hi & 0x80000000) {
      dst[2 * i] = ~hi >>> 0;
      dst[2 * i + 1] = ~lo >>> 0;
    } else {
      dst[2 * i] = (hi | 0x80000000) >>> 0;
      dst[2 * i + 1] = lo;
    }
  }
}
