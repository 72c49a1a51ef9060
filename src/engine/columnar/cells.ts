/**
 * Cells of a record batch as plain values: ids and groups as JSONL prints them, any cell as the
 * JSON value a JSONL line would hold, and a flagged row as the object the JSONL record check
 * reads, so that a bad row gets exactly the words a bad JSONL line gets, with "row N" and the
 * column.
 */
import { Precision, Type, util, type Data } from 'apache-arrow';
import { InputError } from '../../core/errors.js';
import { MAX_KEY_INTEGER } from '../../core/input-ranges.js';
import { checkRecord } from '../record.js';
import { fixedSize, offsetsOf } from './list-columns.js';
import type { ColumnIndex } from './schema.js';

/** A plain JS value of entry `i` of `d` (nulls kept), for the record check of a flagged row and for JSONL output. */
export function plainAt(d: Data, i: number): unknown {
  if (!d.getValid(i)) return null;
  switch (d.typeId) {
    case Type.List:
    case Type.LargeList:
    case Type.FixedSizeList: {
      const O = offsetsOf(d);
      const e0 = O ? O[i] : i * fixedSize(d),
        e1 = O ? O[i + 1] : e0 + fixedSize(d);
      const out: unknown[] = [];
      for (let e = e0; e < e1; e++) out.push(plainAt(d.children[0], e));
      return out;
    }
    case Type.Float:
      if ((d.type as unknown as { precision: Precision }).precision === Precision.HALF) return util.uint16ToFloat64((d.values as Uint16Array)[i]);
      return Number((d.values as ArrayLike<number>)[i]);
    case Type.Int:
      return Number((d.values as ArrayLike<number | bigint>)[i]);
    default:
      return null;
  }
}

/** A key (id or group) as the record check reads it; an integer too large for a JS number is refused here with its exact digits. */
function keyAt(d: Data, i: number, row: number, field: 'id' | 'group', id?: string): string | number | null {
  if (!d.getValid(i)) return null;
  if (d.typeId === Type.Int) {
    const v = (d.values as ArrayLike<number | bigint>)[i];
    if (typeof v === 'bigint' && (v > BigInt(MAX_KEY_INTEGER) || v < -BigInt(MAX_KEY_INTEGER))) {
      throw new InputError(
        `${v} cannot be kept exactly: a number ${field} must be an integer between -${MAX_KEY_INTEGER} and ${MAX_KEY_INTEGER} (2^53 - 1); store it as a string`,
        { row, id, field },
      );
    }
    return Number(v);
  }
  return keyString(d, i);
}

const utf8 = new TextDecoder();

/** The dictionary of a dictionary column (Arrow types it `Data<any>`). */
export const dictionaryData = (d: Data): Data => d.dictionary!.data[0] as Data;

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
  if (buffer === undefined || start + length > buffer.length)
    throw new InputError(`entry ${i + 1} of a ${String(d.type)} column points outside its data buffers (the file is damaged)`);
  return { bytes: buffer, start, end: start + length };
}

function keyString(d: Data, i: number): string {
  if (d.typeId === Type.Dictionary) return String(plainKey(dictionaryData(d), Number((d.values as ArrayLike<number | bigint>)[i])));
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
  if (d.typeId === Type.Int || d.typeId === Type.Utf8 || d.typeId === Type.LargeUtf8 || d.typeId === Type.Utf8View || d.typeId === Type.Dictionary)
    return plainKey(d, i);
  return null;
}

export function plainKey(d: Data, i: number): string | number {
  return d.typeId === Type.Int ? Number((d.values as ArrayLike<number | bigint>)[i]) : keyString(d, i);
}

/** Refuses a 64-bit integer that a float64 cannot hold exactly, quoting its exact digits. */
function exactInteger(d: Data, i: number, row: number, field: string, id?: string): void {
  if (!(d.values instanceof BigInt64Array || d.values instanceof BigUint64Array) || !d.getValid(i)) return;
  const v = d.values[i];
  if (v > BigInt(MAX_KEY_INTEGER) || v < -BigInt(MAX_KEY_INTEGER)) {
    throw new InputError(`${v} cannot be kept exactly as a number (beyond 2^53 - 1, a float64 would round it); store it as a float64 column`, {
      row,
      id,
      field,
    });
  }
}

/** Row i as the JSON object a JSONL line would hold. */
function rowObject(columns: Data[], cols: ColumnIndex, i: number, row: number): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  const idKey = cols.id === undefined ? undefined : keyAt(columns[cols.id], i, row, 'id');
  if (idKey !== undefined) o.id = idKey;
  const id = idKey === undefined || idKey === null ? undefined : String(idKey);
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
export function rowError(columns: Data[], cols: ColumnIndex, i: number, row: number): InputError {
  try {
    checkRecord(rowObject(columns, cols, i, row), { row }, row);
  } catch (err) {
    if (err instanceof InputError) return err;
    throw err;
  }
  throw new Error(`internal: row ${row} was flagged invalid by the columnar check but passes the record check`);
}
