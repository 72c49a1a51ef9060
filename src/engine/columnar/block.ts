/**
 * One Arrow record batch (a Parquet row group, an Arrow IPC batch) as validated scoring input.
 *
 * The fast path reads the columns' buffers directly: list offsets are walked once per row and
 * step (not per value), every value range is checked by one tight loop over the flat child
 * array, and when every row of the block has the same shape the Batch handed to the backend
 * *views* the column's float32 or float64 values (no copy at all; the WebGPU backend then fills
 * its mapped staging memory straight from the column). Rows of mixed shapes are gathered per
 * shape with one typed-array copy per row.
 *
 * Any row the fast path flags (a null, a ragged list, a value out of range, a wrong length) is
 * re-checked by the JSONL record check (records/record.ts) on a plain object built from the row,
 * so a bad row gets exactly the words a bad JSONL line gets, with "row N" and the column.
 */
import { Precision, Type, util, type Data, type RecordBatch } from 'apache-arrow';
import type { Batch, FloatArray } from '../../core/batch.js';
import { InputError } from '../../core/errors.js';
import { MAX_EMBEDDING_MAGNITUDE, MAX_KEY_INTEGER, MAX_POLICY_ENTRY, MAX_REWARD_MAGNITUDE } from '../../core/input-ranges.js';
import type { GroupKeys } from '../group-keys.js';
import { checkRecord, MAX_T } from '../record.js';
import type { ColumnIndex } from './schema.js';

/** One shape's rows of a block, packed (or viewed) as a Batch. */
export interface BlockPart {
  /** Block-relative row of each batch entry; null when the part is the whole block in order. */
  rows: Int32Array | null;
  batch: Batch;
}

/** A validated block, ready to score. */
export interface ScoringBlock {
  /** 0-based input index of the block's first row (rows are numbered from 1 in messages). */
  firstRow: number;
  numRows: number;
  parts: BlockPart[];
  /** Selection score per row, NaN = use CCI; absent when the input has none. */
  baseScore?: Float64Array;
  /** The id and group of each row as Arrow data, passed through to columnar output. */
  id: Data;
  group: Data | null;
  /** A row's id for messages (decoded on demand). */
  idOf(row: number): string | number;
}

/** Offsets of a list's entries as numbers (LargeList's are BigInt64); null for a fixed-size list. */
function offsetsOf(d: Data): ArrayLike<number> | null {
  if (d.typeId === Type.FixedSizeList) return null;
  const vo = d.valueOffsets as Int32Array | BigInt64Array;
  return vo instanceof BigInt64Array ? Float64Array.from(vo, Number) : vo;
}

const fixedSize = (d: Data): number => (d.type as unknown as { listSize: number }).listSize;

/**
 * Entry i's validity as a plain bit test, or null when every entry is valid. (Data.getValid and
 * the nullCount getter are too slow to call once per row.)
 */
function validOf(d: Data): ((i: number) => boolean) | null {
  if (d.nullCount === 0 || !d.nullBitmap) return null;
  const bits = d.nullBitmap, off = d.offset;
  return (i) => ((bits[(off + i) >> 3] >> ((off + i) & 7)) & 1) === 1;
}

/** An optional column with no value in this block is as good as absent. */
const allNull = (d: Data) => d.nullCount === d.length && d.length > 0;

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
interface ListRows {
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
    throw new InputError('the list offsets point outside the column\'s values (the file is damaged)', { row: firstRow + rowOf(entry) + 1, field: column });
  };
  if (!O) {
    if (to * fixedSize(d) > childLength) bad(Math.max(from, Math.floor(childLength / Math.max(1, fixedSize(d)))));
    return;
  }
  for (let e = from; e < to; e++) if (!(O[e] >= 0 && O[e + 1] >= O[e] && O[e + 1] <= childLength)) bad(e);
}

function matrixRows(d: Data, n: number, column: string, firstRow: number): ListRows {
  checkListBounds(d, 0, n, column, firstRow, (i) => i);
  const O = offsetsOf(d);
  const outerFixed = O ? 0 : fixedSize(d);
  const inner = d.children[0];
  if (n > 0) {
    const first = O ? O[0] : 0, last = O ? O[n] : n * outerFixed;
    const rowOf = (e: number) => { let i = 0; while (i < n - 1 && (O ? O[i + 1] : (i + 1) * outerFixed) <= e) i++; return i; };
    checkListBounds(inner, first, last, column, firstRow, rowOf);
  }
  const I = offsetsOf(inner);
  const innerFixed = I ? 0 : fixedSize(inner);
  const valueData = inner.children[0];
  const rows = new Int32Array(n), width = new Int32Array(n), start = new Float64Array(n);
  const valid = validOf(d), innerValid = validOf(inner);
  for (let i = 0; i < n; i++) {
    const e0 = O ? O[i] : i * outerFixed;
    const e1 = O ? O[i + 1] : e0 + outerFixed;
    start[i] = I ? I[e0] : e0 * innerFixed;
    if (valid && !valid(i)) { rows[i] = -1; continue; }
    rows[i] = e1 - e0;
    let w = innerFixed;
    if (I) {
      w = e1 > e0 ? I[e0 + 1] - I[e0] : 0;
      for (let e = e0 + 1; e < e1; e++) if (I[e + 1] - I[e] !== w) { w = -1; break; }
    }
    if (innerValid && w >= 0) for (let e = e0; e < e1; e++) if (!innerValid(e)) { w = -1; break; }
    width[i] = w;
  }
  return { values: floatValues(valueData), valueData, rows, width, start };
}

function vectorRows(d: Data, n: number, column: string, firstRow: number): ListRows {
  checkListBounds(d, 0, n, column, firstRow, (i) => i);
  const O = offsetsOf(d);
  const fixed = O ? 0 : fixedSize(d);
  const valueData = d.children[0];
  const rows = new Int32Array(n), width = new Int32Array(n).fill(1), start = new Float64Array(n);
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
  let lo = 0, hi = start.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (start[mid] <= k) lo = mid; else hi = mid - 1;
  }
  return lo;
}

/**
 * Flags every present row with a value outside [lo, hi] or a null value. One loop over the
 * block's whole value range; a hit is mapped back to its row, and the scan resumes after it.
 */
function flagValues(c: ListRows, n: number, lo: number, hi: number, problem: Uint8Array): void {
  const len = (i: number) => (c.rows[i] > 0 && c.width[i] > 0 ? c.rows[i] * c.width[i] : 0);
  if (n === 0) return;
  const from = c.start[0], to = c.start[n - 1] + len(n - 1);
  for (let k = firstOutside(c.values, from, to, lo, hi); k >= 0;) {
    const i = rowOfValue(c.start, k);
    let next = k + 1;
    if (k < c.start[i] + len(i)) { problem[i] = 1; next = c.start[i] + len(i); }
    k = next < to ? firstOutside(c.values, next, to, lo, hi) : -1;
  }
  const valid = validOf(c.valueData);
  if (valid) {
    for (let i = 0; i < n; i++) {
      for (let k = c.start[i], end = k + len(i); k < end; k++) if (!valid(k)) { problem[i] = 1; break; }
    }
  }
}

/** A plain JS value of entry `i` of `d` (nulls kept), for the record check of a flagged row and for JSONL output. */
export function plainAt(d: Data, i: number): unknown {
  if (!d.getValid(i)) return null;
  switch (d.typeId) {
    case Type.List: case Type.LargeList: case Type.FixedSizeList: {
      const O = offsetsOf(d);
      const e0 = O ? O[i] : i * fixedSize(d), e1 = O ? O[i + 1] : e0 + fixedSize(d);
      const out: unknown[] = [];
      for (let e = e0; e < e1; e++) out.push(plainAt(d.children[0], e));
      return out;
    }
    case Type.Float:
      if ((d.type as unknown as { precision: Precision }).precision === Precision.HALF) return util.uint16ToFloat64((d.values as Uint16Array)[i]);
      return Number((d.values as ArrayLike<number>)[i]);
    case Type.Int: return Number((d.values as ArrayLike<number | bigint>)[i]);
    default: return null;
  }
}

/** A key (id or group) as the record check reads it; an integer too large for a JS number is refused here with its exact digits. */
function keyAt(d: Data, i: number, row: number, field: 'id' | 'group', id?: string): unknown {
  if (!d.getValid(i)) return null;
  if (d.typeId === Type.Int) {
    const v = (d.values as ArrayLike<number | bigint>)[i];
    if (typeof v === 'bigint' && (v > BigInt(MAX_KEY_INTEGER) || v < -BigInt(MAX_KEY_INTEGER))) {
      throw new InputError(`${v} cannot be kept exactly: a number ${field} must be an integer between -${MAX_KEY_INTEGER} and ${MAX_KEY_INTEGER} (2^53 - 1); store it as a string`, { row, id, field });
    }
    return Number(v);
  }
  return keyString(d, i);
}

const utf8 = new TextDecoder();

/**
 * Where the bytes of entry i of a view column (utf8_view, binary_view: 16-byte views, as Polars
 * writes strings) lie: up to 12 bytes inline in the view, else in one of the variadic buffers.
 */
export function viewBytes(d: Data, i: number): { bytes: Uint8Array; start: number; end: number } {
  const views = d.values as Uint8Array;
  const at = i * 16; // the views buffer of a sliced Data starts at its first entry
  const dv = new DataView(views.buffer, views.byteOffset, views.byteLength);
  const length = dv.getInt32(at, true);
  if (length <= 12) return { bytes: views, start: at + 4, end: at + 4 + Math.max(0, length) };
  const buffer = (d as unknown as { variadicBuffers: Uint8Array[] }).variadicBuffers[dv.getInt32(at + 8, true)];
  const start = dv.getInt32(at + 12, true);
  if (buffer === undefined || start + length > buffer.length) throw new InputError(`entry ${i + 1} of a ${String(d.type)} column points outside its data buffers (the file is damaged)`);
  return { bytes: buffer, start, end: start + length };
}

function keyString(d: Data, i: number): string {
  if (d.typeId === Type.Dictionary) return String(plainKey(d.dictionary!.data[0], Number((d.values as ArrayLike<number | bigint>)[i])));
  if (d.typeId === Type.Utf8View) {
    const v = viewBytes(d, i);
    return utf8.decode(v.bytes.subarray(v.start, v.end));
  }
  const O = d.valueOffsets as Int32Array | BigInt64Array;
  return utf8.decode((d.values as Uint8Array).subarray(Number(O[i]), Number(O[i + 1])));
}

/** An id or group as JSONL prints it: a string, a number, or null. */
export function keyValueAt(d: Data, i: number): string | number | null {
  if (!d.getValid(i)) return null;
  if (d.typeId === Type.Int || d.typeId === Type.Utf8 || d.typeId === Type.LargeUtf8 || d.typeId === Type.Utf8View || d.typeId === Type.Dictionary) return plainKey(d, i);
  return null;
}

function plainKey(d: Data, i: number): string | number {
  return d.typeId === Type.Int ? Number((d.values as ArrayLike<number | bigint>)[i]) : keyString(d, i);
}

/** Refuses a 64-bit integer that a float64 cannot hold exactly, quoting its exact digits. */
function exactInteger(d: Data, i: number, row: number, field: string, id?: string): void {
  if (!(d.values instanceof BigInt64Array || d.values instanceof BigUint64Array) || !d.getValid(i)) return;
  const v = d.values[i];
  if (v > BigInt(MAX_KEY_INTEGER) || v < -BigInt(MAX_KEY_INTEGER)) {
    throw new InputError(`${v} cannot be kept exactly as a number (beyond 2^53 - 1, a float64 would round it); store it as a float64 column`, { row, id, field });
  }
}

/** Row i as the JSON object a JSONL line would hold. */
function rowObject(columns: Data[], cols: ColumnIndex, i: number, row: number): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  if (cols.id !== undefined) o.id = keyAt(columns[cols.id], i, row, 'id');
  const id = o.id === undefined || o.id === null ? undefined : String(o.id);
  if (cols.group !== undefined) {
    const g = keyAt(columns[cols.group], i, row, 'group', id);
    if (g !== null) o.group = g;
  }
  if (cols.baseScore !== undefined) exactInteger(columns[cols.baseScore], i, row, 'baseScore', id ?? String(row));
  for (const name of ['steps', 'embeddings', 'expected', 'realized', 'policy', 'baseScore'] as const) {
    const c = cols[name];
    if (c === undefined) continue;
    // A null optional column means "not given"; a null steps is left out, so the check says it is required.
    const v = plainAt(columns[c], i);
    if (v !== null) o[name] = v;
  }
  return o;
}

/** The record check's error for a flagged row (it must find one: the fast path and it agree on what is valid). */
function rowError(columns: Data[], cols: ColumnIndex, i: number, row: number): InputError {
  try {
    checkRecord(rowObject(columns, cols, i, row), { row }, row);
  } catch (err) {
    if (err instanceof InputError) return err;
    throw err;
  }
  throw new Error(`internal: row ${row} was flagged invalid by the columnar check but passes the record check`);
}

function keyProblems(d: Data, n: number, problem: Uint8Array, nullIsProblem: boolean): void {
  const valid = validOf(d);
  if (valid && nullIsProblem) for (let i = 0; i < n; i++) if (!valid(i)) problem[i] = 1;
  if (d.typeId === Type.Int && (d.values instanceof BigInt64Array || d.values instanceof BigUint64Array)) {
    const v = d.values as BigInt64Array | BigUint64Array;
    const max = BigInt(MAX_KEY_INTEGER);
    for (let i = 0; i < n; i++) if (v[i] > max || v[i] < -max) problem[i] = 1;
  }
}

/** Interns each row's group (strings from their UTF-8 bytes, dictionaries once per entry). */
export function internGroups(d: Data | null, n: number, groups: GroupKeys): Int32Array {
  const out = new Int32Array(n);
  if (d === null || allNull(d)) { out.fill(groups.indexOf(null)); return out; }
  const valid = validOf(d);
  if (d.typeId === Type.Utf8 || d.typeId === Type.LargeUtf8) {
    const O = offsetsOf(d)!;
    const bytes = d.values as Uint8Array;
    let prevStart = -1, prevEnd = -1, prev = -1;
    for (let i = 0; i < n; i++) {
      if (valid && !valid(i)) { out[i] = groups.indexOf(null); continue; }
      const s = O[i], e = O[i + 1];
      // Candidates of one prompt are usually adjacent: compare with the previous key first.
      if (prev >= 0 && e - s === prevEnd - prevStart) {
        let same = true;
        for (let k = 0; k < e - s; k++) if (bytes[s + k] !== bytes[prevStart + k]) { same = false; break; }
        if (same) { out[i] = prev; continue; }
      }
      prev = out[i] = groups.indexOfUtf8(bytes, s, e);
      prevStart = s; prevEnd = e;
    }
    return out;
  }
  if (d.typeId === Type.Utf8View) {
    for (let i = 0; i < n; i++) {
      if (valid && !valid(i)) { out[i] = groups.indexOf(null); continue; }
      const v = viewBytes(d, i);
      out[i] = groups.indexOfUtf8(v.bytes, v.start, v.end);
    }
    return out;
  }
  if (d.typeId === Type.Dictionary) {
    const dict = d.dictionary!.data[0];
    const entries = new Int32Array(dict.length).fill(-1);
    const keys = d.values as ArrayLike<number | bigint>;
    for (let i = 0; i < n; i++) {
      if (valid && !valid(i)) { out[i] = groups.indexOf(null); continue; }
      const k = Number(keys[i]);
      if (entries[k] < 0) entries[k] = groups.indexOf(plainKey(dict, k));
      out[i] = entries[k];
    }
    return out;
  }
  const v = d.values as ArrayLike<number | bigint>;
  for (let i = 0; i < n; i++) out[i] = valid && !valid(i) ? groups.indexOf(null) : groups.indexOf(Number(v[i]));
  return out;
}

/** Default ids (the 1-based row number, as JSONL's default is the line number) as an Arrow Int64 column. */
export type DefaultIds = (firstRow: number, n: number) => Data;

interface Optional {
  rows: ListRows;
  name: 'embeddings' | 'policy' | 'expected' | 'realized';
}

/**
 * Validates one record batch. Returns the block, or null when a row is invalid (then up to
 * `maxErrors` errors in all are appended to `errors`) or when earlier blocks already failed.
 */
export function checkBlock(
  batch: RecordBatch, cols: ColumnIndex, firstRow: number,
  errors: InputError[], maxErrors: number, defaultIds: DefaultIds,
): ScoringBlock | null {
  const n = batch.numRows;
  const columns = batch.data.children as Data[];
  const problem = new Uint8Array(n);
  const steps = matrixRows(columns[cols.steps], n, 'steps', firstRow);
  for (let i = 0; i < n; i++) {
    if (steps.rows[i] < 2 || steps.rows[i] > MAX_T || steps.width[i] <= 0) problem[i] = 1;
  }
  flagValues(steps, n, 0, 1, problem);
  const optional: Optional[] = [];
  for (const [name, lim] of [['embeddings', MAX_EMBEDDING_MAGNITUDE], ['policy', MAX_POLICY_ENTRY]] as const) {
    const c = cols[name];
    if (c === undefined || allNull(columns[c])) continue;
    const r = matrixRows(columns[c], n, name, firstRow);
    for (let i = 0; i < n; i++) if (r.rows[i] >= 0 && (r.rows[i] !== steps.rows[i] || r.width[i] <= 0)) problem[i] = 1;
    flagValues(r, n, name === 'policy' ? 0 : -lim, lim, problem);
    optional.push({ rows: r, name });
  }
  if (cols.expected !== undefined && !(allNull(columns[cols.expected]) && allNull(columns[cols.realized!]))) {
    const ex = vectorRows(columns[cols.expected], n, 'expected', firstRow), re = vectorRows(columns[cols.realized!], n, 'realized', firstRow);
    for (let i = 0; i < n; i++) {
      if ((ex.rows[i] < 0) !== (re.rows[i] < 0)) problem[i] = 1;
      else if (ex.rows[i] >= 0 && (ex.rows[i] !== steps.rows[i] || re.rows[i] !== steps.rows[i])) problem[i] = 1;
    }
    flagValues(ex, n, -MAX_REWARD_MAGNITUDE, MAX_REWARD_MAGNITUDE, problem);
    flagValues(re, n, -MAX_REWARD_MAGNITUDE, MAX_REWARD_MAGNITUDE, problem);
    optional.push({ rows: ex, name: 'expected' }, { rows: re, name: 'realized' });
  }
  let baseScore: Float64Array | undefined;
  if (cols.baseScore !== undefined && !allNull(columns[cols.baseScore])) {
    const d = columns[cols.baseScore];
    const v = floatValues(d);
    const valid = validOf(d);
    // A 64-bit integer beyond 2^53 would change as a float64: refused (rowObject says so).
    const wide = d.values instanceof BigInt64Array || d.values instanceof BigUint64Array;
    baseScore = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      if (valid && !valid(i)) { baseScore[i] = Number.NaN; continue; }
      const x = v[i];
      if (!Number.isFinite(x) || (wide && !(Math.abs(x) <= MAX_KEY_INTEGER))) problem[i] = 1;
      baseScore[i] = x;
    }
  }
  const idData = cols.id !== undefined ? columns[cols.id] : null;
  const groupData = cols.group !== undefined ? columns[cols.group] : null;
  if (idData) keyProblems(idData, n, problem, true);
  if (groupData) keyProblems(groupData, n, problem, false);

  let bad = false;
  for (let i = 0; i < n; i++) {
    if (problem[i] === 0) continue;
    bad = true;
    if (errors.length < maxErrors) errors.push(rowError(columns, cols, i, firstRow + i + 1));
  }
  if (bad || errors.length > 0) return null;

  const id = idData ?? defaultIds(firstRow, n);
  const idOf = (row: number) => (idData ? plainKey(idData, row) : firstRow + row + 1);
  return { firstRow, numRows: n, parts: partsOf(steps, optional, n), baseScore, id, group: groupData, idOf };
}

/** The shape of row i: T, m, and which optional inputs it has, with their widths. */
function shapeKeyOf(steps: ListRows, optional: Optional[], i: number): string {
  let key = `${steps.rows[i]}:${steps.width[i]}`;
  for (const o of optional) key += `:${o.rows.rows[i] < 0 ? '-' : o.rows.width[i]}`;
  return key;
}

function partsOf(steps: ListRows, optional: Optional[], n: number): BlockPart[] {
  if (n === 0) return [];
  let homogeneous = true;
  const t0 = steps.rows[0], m0 = steps.width[0];
  for (let i = 1; i < n && homogeneous; i++) if (steps.rows[i] !== t0 || steps.width[i] !== m0) homogeneous = false;
  for (const o of optional) {
    const first = o.rows.rows[0] < 0 ? -1 : o.rows.width[0];
    for (let i = 0; i < n && homogeneous; i++) if ((o.rows.rows[i] < 0 ? -1 : o.rows.width[i]) !== first) homogeneous = false;
  }
  if (homogeneous) return [{ rows: null, batch: packRows(steps, optional, null, n) }];
  const byShape = new Map<string, number[]>();
  for (let i = 0; i < n; i++) {
    const key = shapeKeyOf(steps, optional, i);
    let list = byShape.get(key);
    if (!list) byShape.set(key, (list = []));
    list.push(i);
  }
  return [...byShape.values()].map((list) => {
    const rows = Int32Array.from(list);
    return { rows, batch: packRows(steps, optional, rows, rows.length) };
  });
}

/**
 * The Batch of `rows` (null: all n rows in order, which are contiguous in every column, so each
 * array is a view of the column's own values).
 */
function packRows(steps: ListRows, optional: Optional[], rows: Int32Array | null, n: number): Batch {
  const r0 = rows ? rows[0] : 0;
  const t = steps.rows[r0], m = steps.width[r0];
  const take = (c: ListRows, per: number): FloatArray => {
    if (rows === null) return c.values.subarray(c.start[0], c.start[0] + n * per);
    const out = new (c.values.constructor as new (len: number) => FloatArray)(n * per);
    for (let k = 0; k < n; k++) out.set(c.values.subarray(c.start[rows[k]], c.start[rows[k]] + per), k * per);
    return out;
  };
  const batch: { -readonly [K in keyof Batch]: Batch[K] } = { n, t, m, steps: take(steps, t * m) };
  for (const o of optional) {
    if (o.rows.rows[r0] < 0) continue;
    const w = o.rows.width[r0];
    if (o.name === 'embeddings') { batch.d = w; batch.embeddings = take(o.rows, t * w); }
    else if (o.name === 'policy') { batch.a = w; batch.policy = take(o.rows, t * w); }
    else batch[o.name] = take(o.rows, t);
  }
  return batch;
}
