/**
 * The list and number columns of a record batch read from their buffers: list offsets walked
 * once per row and step (not per value), every value range checked by one tight loop over the
 * flat child array, so that checking a block costs about one pass over its values.
 */
import { Precision, Type, util, type Data } from 'apache-arrow';
import type { FloatArray } from '../../core/batch.js';
import { InputError } from '../../core/errors.js';
import { knownWithin } from './value-bounds.js';

/** Offsets of a list's entries as numbers (LargeList's are BigInt64); null for a fixed-size list. */
export function offsetsOf(d: Data): ArrayLike<number> | null {
  if (d.typeId === Type.FixedSizeList) return null;
  const vo = d.valueOffsets as Int32Array | BigInt64Array;
  return vo instanceof BigInt64Array ? Float64Array.from(vo, Number) : vo;
}

export const fixedSize = (d: Data): number => (d.type as unknown as { listSize: number }).listSize;

/**
 * Entry i's validity as a plain bit test, or null when every entry is valid. (Data.getValid and
 * the nullCount getter are too slow to call once per row.)
 */
export function validOf(d: Data): ((i: number) => boolean) | null {
  if (d.nullCount === 0 || !d.nullBitmap) return null;
  const bits = d.nullBitmap,
    off = d.offset;
  return (i) => ((bits[(off + i) >> 3] >> ((off + i) & 7)) & 1) === 1;
}

/** An optional column with no value in this block is as good as absent. */
export const allNull = (d: Data) => d.nullCount === d.length && d.length > 0;

/**
 * The values of a number column as floats: float32 and float64 as they are (a view), any other
 * width (integers, signed or unsigned, up to 64 bits; float16) converted to float64, as JSONL
 * numbers are. A 64-bit integer beyond 2^53 is rounded here, but every such value is far outside
 * the range of every scored field (at most 1e15), so it is refused whichever way it rounds.
 */
export function floatValues(d: Data): FloatArray {
  const v = d.values as ArrayLike<number | bigint> & { length: number };
  if (d.typeId === Type.Float) {
    if ((d.type as unknown as { precision: Precision }).precision !== Precision.HALF) return v as unknown as FloatArray;
    const half = v as unknown as Uint16Array;
    const out = new Float64Array(half.length);
    for (let i = 0; i < half.length; i++) out[i] = util.uint16ToFloat64(half[i]);
    return out;
  }
  if (v instanceof BigInt64Array || v instanceof BigUint64Array) return Float64Array.from(v as ArrayLike<bigint>, Number);
  return Float64Array.from(v as ArrayLike<number>);
}

/** Where each row of a list-of-lists (or list) column lies in its flat value array. */
export interface ListRows {
  values: FloatArray;
  valueData: Data;
  /** Entries (steps) per row; -1 for a null row. */
  rows: Int32Array;
  /** Values per entry; -1 when ragged or an entry is null, 0 when empty. 1 for a plain list. */
  width: Int32Array;
  /** Index in `values` of each row's first value. */
  start: Float64Array;
}

/**
 * Checks that list entries [from, to) of `d` lie within its child (offsets non-decreasing, inside
 * the child's length), so that a damaged file is an error here, not a loop over garbage offsets.
 */
function checkListBounds(d: Data, from: number, to: number, column: string, firstRow: number, rowOf: (entry: number) => number): void {
  const O = offsetsOf(d);
  const childLength = d.children[0].length;
  const bad = (entry: number): never => {
    throw new InputError("the list offsets point outside the column's values (the file is damaged)", { row: firstRow + rowOf(entry) + 1, field: column });
  };
  if (!O) {
    if (to * fixedSize(d) > childLength) bad(Math.max(from, Math.floor(childLength / Math.max(1, fixedSize(d)))));
    return;
  }
  for (let e = from; e < to; e++) if (!(O[e] >= 0 && O[e + 1] >= O[e] && O[e + 1] <= childLength)) bad(e);
}

export function matrixRows(d: Data, n: number, column: string, firstRow: number): ListRows {
  checkListBounds(d, 0, n, column, firstRow, (i) => i);
  const O = offsetsOf(d);
  const outerFixed = O ? 0 : fixedSize(d);
  const inner = d.children[0];
  if (n > 0) {
    const first = O ? O[0] : 0,
      last = O ? O[n] : n * outerFixed;
    const rowOf = (e: number) => {
      let i = 0;
      while (i < n - 1 && (O ? O[i + 1] : (i + 1) * outerFixed) <= e) i++;
      return i;
    };
    checkListBounds(inner, first, last, column, firstRow, rowOf);
  }
  const I = offsetsOf(inner);
  const innerFixed = I ? 0 : fixedSize(inner);
  const valueData = inner.children[0];
  const rows = new Int32Array(n),
    width = new Int32Array(n),
    start = new Float64Array(n);
  const valid = validOf(d),
    innerValid = validOf(inner);
  for (let i = 0; i < n; i++) {
    const e0 = O ? O[i] : i * outerFixed;
    const e1 = O ? O[i + 1] : e0 + outerFixed;
    start[i] = I ? I[e0] : e0 * innerFixed;
    if (valid && !valid(i)) {
      rows[i] = -1;
      continue;
    }
    rows[i] = e1 - e0;
    let w = innerFixed;
    if (I) {
      w = e1 > e0 ? I[e0 + 1] - I[e0] : 0;
      for (let e = e0 + 1; e < e1; e++)
        if (I[e + 1] - I[e] !== w) {
          w = -1;
          break;
        }
    }
    if (innerValid && w >= 0)
      for (let e = e0; e < e1; e++)
        if (!innerValid(e)) {
          w = -1;
          break;
        }
    width[i] = w;
  }
  return { values: floatValues(valueData), valueData, rows, width, start };
}

export function vectorRows(d: Data, n: number, column: string, firstRow: number): ListRows {
  checkListBounds(d, 0, n, column, firstRow, (i) => i);
  const O = offsetsOf(d);
  const fixed = O ? 0 : fixedSize(d);
  const valueData = d.children[0];
  const rows = new Int32Array(n),
    width = new Int32Array(n).fill(1),
    start = new Float64Array(n);
  const valid = validOf(d);
  for (let i = 0; i < n; i++) {
    start[i] = O ? O[i] : i * fixed;
    rows[i] = valid && !valid(i) ? -1 : O ? O[i + 1] - O[i] : fixed;
  }
  return { values: floatValues(valueData), valueData, rows, width, start };
}

/** Index of the first value outside [lo, hi] (or NaN) in values[from, to), or -1. */
function firstOutside(values: FloatArray, from: number, to: number, lo: number, hi: number): number {
  // One loop per element type: a loop that sees both stays polymorphic and runs about 1.5x slower.
  return values instanceof Float64Array ? firstOutside64(values, from, to, lo, hi) : firstOutside32(values, from, to, lo, hi);
}

function firstOutside64(values: Float64Array, from: number, to: number, lo: number, hi: number): number {
  for (let i = from; i < to; i++) {
    const x = values[i];
    if (!(x >= lo && x <= hi)) return i;
  }
  return -1;
}

function firstOutside32(values: Float32Array, from: number, to: number, lo: number, hi: number): number {
  for (let i = from; i < to; i++) {
    const x = values[i];
    if (!(x >= lo && x <= hi)) return i;
  }
  return -1;
}

/** The last row whose range starts at or before value index k (start is non-decreasing). */
function rowOfValue(start: Float64Array, k: number): number {
  let lo = 0,
    hi = start.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (start[mid] <= k) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/**
 * Flags every present row with a value outside [lo, hi] or a null value. One loop over the
 * block's whole value range; a hit is mapped back to its row, and the scan resumes after it.
 */
export function flagValues(c: ListRows, n: number, lo: number, hi: number, problem: Uint8Array): void {
  // The decode worker already read every value (value-bounds.ts): nothing out of range, null or NaN.
  if (n === 0 || knownWithin(c.valueData, lo, hi)) return;
  const len = (i: number) => (c.rows[i] > 0 && c.width[i] > 0 ? c.rows[i] * c.width[i] : 0);
  const from = c.start[0],
    to = c.start[n - 1] + len(n - 1);
  for (let k = firstOutside(c.values, from, to, lo, hi); k >= 0;) {
    const i = rowOfValue(c.start, k);
    let next = k + 1;
    if (k < c.start[i] + len(i)) {
      problem[i] = 1;
      next = c.start[i] + len(i);
    }
    k = next < to ? firstOutside(c.values, next, to, lo, hi) : -1;
  }
  const valid = validOf(c.valueData);
  if (valid) {
    for (let i = 0; i < n; i++) {
      for (let k = c.start[i], end = k + len(i); k < end; k++)
        if (!valid(k)) {
          problem[i] = 1;
          break;
        }
    }
  }
}
