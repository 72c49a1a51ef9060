/**
 * The smallest and largest value of a list column's float leaf, found by the thread that decoded
 * it (the Parquet decode workers), so that the main thread's range check (list-columns.ts,
 * flagValues) can skip its own pass over values it would only find in range. Reading a freshly
 * decoded block once costs as much as scoring it on a 2-core machine (issue 20), and the decode
 * worker reads the values while they are still in its cache.
 *
 * Only a leaf with no nulls and no NaN gets bounds; anything else is checked value by value on
 * the main thread as before, which also words the error.
 */
import { Precision, Type, type Data, type RecordBatch } from 'apache-arrow';

export interface ValueBounds {
  min: number;
  max: number;
}

/** The float leaf of a column (the values of a list, a list of lists, or the column itself), or null. */
function floatLeaf(d: Data): Data | null {
  let leaf = d;
  while (leaf.typeId === Type.List || leaf.typeId === Type.LargeList || leaf.typeId === Type.FixedSizeList) {
    if (leaf.children.length !== 1) return null;
    leaf = leaf.children[0];
  }
  if (leaf.typeId !== Type.Float || (leaf.type as unknown as { precision: Precision }).precision === Precision.HALF) return null;
  return leaf;
}

/** Bounds of the values a leaf holds, or null when it has a null or a NaN (or none at all). */
export function boundsOf(leaf: Data): ValueBounds | null {
  if (leaf.nullCount !== 0 || leaf.length === 0) return null;
  const all = leaf.values as Float64Array | Float32Array;
  if (all.length < leaf.offset + leaf.length) return null;
  const v = all.subarray(leaf.offset, leaf.offset + leaf.length);
  return v instanceof Float64Array ? bounds64(v) : bounds32(v);
}

// One loop per element type, as in list-columns.ts: a loop that sees both stays polymorphic.
function bounds64(v: Float64Array): ValueBounds | null {
  let min = Infinity,
    max = -Infinity;
  for (let i = 0; i < v.length; i++) {
    const x = v[i];
    if (x < min) min = x;
    if (x > max) max = x;
    if (x !== x) return null;
  }
  return { min, max };
}

function bounds32(v: Float32Array): ValueBounds | null {
  let min = Infinity,
    max = -Infinity;
  for (let i = 0; i < v.length; i++) {
    const x = v[i];
    if (x < min) min = x;
    if (x > max) max = x;
    if (x !== x) return null;
  }
  return { min, max };
}

/** Bounds of each column's float leaf in `batch` (null where there are none), in column order. */
export function batchBounds(batch: RecordBatch): (ValueBounds | null)[] {
  return batch.data.children.map((column) => {
    const leaf = floatLeaf(column);
    return leaf ? boundsOf(leaf) : null;
  });
}

const known = new WeakMap<Data, ValueBounds>();

/** Records bounds computed elsewhere (by a decode worker) for the leaves of `batch`'s columns. */
export function rememberBounds(batch: RecordBatch, bounds: readonly (ValueBounds | null)[]): void {
  batch.data.children.forEach((column, c) => {
    const b = bounds[c];
    const leaf = b ? floatLeaf(column) : null;
    // The leaf must still be null-free here: the bounds say nothing about nulls added since.
    if (b && leaf && leaf.nullCount === 0) known.set(leaf, b);
  });
}

/** Records bounds found while copying a null-free leaf (duckdb-lists.ts). */
export function rememberLeafBounds(leaf: Data, bounds: ValueBounds): void {
  if (leaf.nullCount === 0) known.set(leaf, bounds);
}

/** True when every value of `leaf` is known to lie in [lo, hi] (and none is null or NaN). */
export function knownWithin(leaf: Data, lo: number, hi: number): boolean {
  const b = known.get(leaf);
  return b !== undefined && b.min >= lo && b.max <= hi;
}
