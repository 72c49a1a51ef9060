/**
 * Arrow columns built from JS values (records read from JSONL) and from typed arrays (results):
 * buffers filled directly, so a column costs one pass over its values and no builder objects.
 */
import { Bool, Data, Field, Float64, Int64, List, Utf8, makeData } from 'apache-arrow';

/** A validity bitmap for `valid` (null when every entry is valid) and its null count. */
function validity(n: number, valid: (i: number) => boolean): { nullBitmap?: Uint8Array; nullCount: number } {
  let nulls = 0;
  const bits = new Uint8Array((n + 7) >> 3);
  for (let i = 0; i < n; i++) {
    if (valid(i)) bits[i >> 3] |= 1 << (i & 7);
    else nulls++;
  }
  return nulls === 0 ? { nullCount: 0 } : { nullBitmap: bits, nullCount: nulls };
}

export function utf8Data(values: readonly (string | null)[]): Data<Utf8> {
  const n = values.length;
  const encoder = new TextEncoder();
  const offsets = new Int32Array(n + 1);
  let bytes = new Uint8Array(Math.max(64, n * 8));
  let used = 0;
  for (let i = 0; i < n; i++) {
    const s = values[i];
    if (s !== null) {
      if (used + s.length * 3 > bytes.length) {
        const next = new Uint8Array(Math.max(bytes.length * 2, used + s.length * 3));
        next.set(bytes.subarray(0, used));
        bytes = next;
      }
      used += encoder.encodeInto(s, bytes.subarray(used)).written;
    }
    offsets[i + 1] = used;
  }
  return makeData({ type: new Utf8(), length: n, valueOffsets: offsets, data: bytes.subarray(0, used), ...validity(n, (i) => values[i] !== null) });
}

export function int64Data(values: readonly (number | null)[]): Data<Int64> {
  const n = values.length;
  const data = new BigInt64Array(n);
  for (let i = 0; i < n; i++) data[i] = BigInt(values[i] ?? 0);
  return makeData({ type: new Int64(), length: n, data, ...validity(n, (i) => values[i] !== null) });
}

/** 1-based row numbers firstRow + 1 .. firstRow + n (the default ids of a file without an id column). */
export function rowNumberData(firstRow: number, n: number): Data<Int64> {
  const data = new BigInt64Array(n);
  for (let i = 0; i < n; i++) data[i] = BigInt(firstRow + i + 1);
  return makeData({ type: new Int64(), length: n, data });
}

export function float64Data(values: Float64Array, present?: (i: number) => boolean): Data<Float64> {
  return makeData({ type: new Float64(), length: values.length, data: values, ...(present ? validity(values.length, present) : { nullCount: 0 }) });
}

/** A column of n nulls (a group column where the input had none). */
export function nullUtf8Data(n: number): Data<Utf8> {
  return makeData({
    type: new Utf8(),
    length: n,
    valueOffsets: new Int32Array(n + 1),
    data: new Uint8Array(0),
    nullCount: n,
    nullBitmap: new Uint8Array((n + 7) >> 3),
  });
}

export function boolData(flags: Uint8Array): Data<Bool> {
  const n = flags.length;
  const bits = new Uint8Array((n + 7) >> 3);
  for (let i = 0; i < n; i++) if (flags[i]) bits[i >> 3] |= 1 << (i & 7);
  return makeData({ type: new Bool(), length: n, data: bits, nullCount: 0 });
}

export const floatList = () => new List(new Field('item', new Float64(), false));
export const floatMatrix = () => new List(new Field('item', floatList(), false));

/** list<double>, null where a record has no such field. */
export function listData(rows: readonly (readonly number[] | undefined)[]): Data<List<Float64>> {
  const n = rows.length;
  const offsets = new Int32Array(n + 1);
  for (let i = 0; i < n; i++) offsets[i + 1] = offsets[i] + (rows[i]?.length ?? 0);
  const values = new Float64Array(offsets[n]);
  for (let i = 0; i < n; i++) if (rows[i]) values.set(rows[i]!, offsets[i]);
  const child = makeData({ type: new Float64(), length: values.length, data: values, nullCount: 0 });
  return makeData({ type: floatList(), length: n, valueOffsets: offsets, child, ...validity(n, (i) => rows[i] !== undefined) });
}

/** list<list<double>>, null where a record has no such field. */
export function matrixData(rows: readonly (readonly (readonly number[])[] | undefined)[]): Data<List<List<Float64>>> {
  const n = rows.length;
  const outer = new Int32Array(n + 1);
  for (let i = 0; i < n; i++) outer[i + 1] = outer[i] + (rows[i]?.length ?? 0);
  const innerRows: (readonly number[])[] = [];
  for (const r of rows) if (r) for (const step of r) innerRows.push(step);
  const inner = listData(innerRows);
  return makeData({ type: floatMatrix(), length: n, valueOffsets: outer, child: inner, ...validity(n, (i) => rows[i] !== undefined) });
}

/**
 * A copy of `d` (children included) that owns its buffers: for a column that must outlive the
 * reused memory a transient reader decoded it from. A dictionary is shared, not copied (a
 * transient reader reads no dictionaries, and an Arrow file output needs one per column).
 */
export function ownedData<T extends Data>(d: T): T {
  const copy = (a: unknown) => (a ? (a as Uint8Array).slice() : undefined);
  const buffers = [copy(d.valueOffsets), copy(d.values), copy(d.nullBitmap), copy(d.typeIds)];
  // A view column (utf8_view) keeps its long strings in variadic buffers beside the views.
  const variadic = (d as unknown as { variadicBuffers?: Uint8Array[] }).variadicBuffers?.map((b) => b.slice());
  return new (Data as unknown as new (...args: unknown[]) => T)(
    d.type,
    d.offset,
    d.length,
    d.nullCount,
    buffers,
    d.children.map((c) => ownedData(c)),
    d.dictionary,
    variadic,
  );
}
