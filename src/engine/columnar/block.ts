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
 * re-checked by the JSONL record check (engine/record.ts) on a plain object built from the row
 * (cells.ts), so a bad row gets exactly the words a bad JSONL line gets, with "row N" and the
 * column. The columns themselves are read by list-columns.ts and key-columns.ts.
 */
import type { Data, RecordBatch } from 'apache-arrow';
import type { Batch, FloatArray } from '../../core/batch.js';
import type { InputError } from '../../core/errors.js';
import { MAX_EMBEDDING_MAGNITUDE, MAX_KEY_INTEGER, MAX_POLICY_ENTRY, MAX_REWARD_MAGNITUDE } from '../../core/input-ranges.js';
import { MAX_T } from '../record.js';
import { ShapeBuckets, ShapeRows, shapeKey } from '../shape-buckets.js';
import { plainKey, rowError } from './cells.js';
import { keyProblems } from './key-columns.js';
import { allNull, flagValues, floatValues, matrixRows, validOf, vectorRows, type ListRows } from './list-columns.js';
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
  batch: RecordBatch,
  cols: ColumnIndex,
  firstRow: number,
  errors: InputError[],
  maxErrors: number,
  defaultIds: DefaultIds,
): ScoringBlock | null {
  const n = batch.numRows;
  const columns = batch.data.children;
  const problem = new Uint8Array(n);
  const steps = matrixRows(columns[cols.steps], n, 'steps', firstRow);
  for (let i = 0; i < n; i++) {
    if (steps.rows[i] < 2 || steps.rows[i] > MAX_T || steps.width[i] <= 0) problem[i] = 1;
  }
  flagValues(steps, n, 0, 1, problem);
  const optional: Optional[] = [];
  for (const [name, lim] of [
    ['embeddings', MAX_EMBEDDING_MAGNITUDE],
    ['policy', MAX_POLICY_ENTRY],
  ] as const) {
    const c = cols[name];
    if (c === undefined || allNull(columns[c])) continue;
    const r = matrixRows(columns[c], n, name, firstRow);
    for (let i = 0; i < n; i++) if (r.rows[i] >= 0 && (r.rows[i] !== steps.rows[i] || r.width[i] <= 0)) problem[i] = 1;
    flagValues(r, n, name === 'policy' ? 0 : -lim, lim, problem);
    optional.push({ rows: r, name });
  }
  if (cols.expected !== undefined && !(allNull(columns[cols.expected]) && allNull(columns[cols.realized!]))) {
    const ex = vectorRows(columns[cols.expected], n, 'expected', firstRow),
      re = vectorRows(columns[cols.realized!], n, 'realized', firstRow);
    for (let i = 0; i < n; i++) {
      if (ex.rows[i] < 0 !== re.rows[i] < 0) problem[i] = 1;
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
      if (valid && !valid(i)) {
        baseScore[i] = Number.NaN;
        continue;
      }
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

/** The shape key of row i (shape-buckets.ts): T, m, and the widths of its optional inputs (0: absent). */
function shapeKeyOf(steps: ListRows, optional: Optional[], i: number): string {
  let d = 0,
    a = 0,
    rewards = 0;
  for (const o of optional) {
    if (o.rows.rows[i] < 0) continue;
    if (o.name === 'embeddings') d = o.rows.width[i];
    else if (o.name === 'policy') a = o.rows.width[i];
    else rewards = 1;
  }
  return shapeKey(steps.rows[i], steps.width[i], d, a, rewards);
}

function partsOf(steps: ListRows, optional: Optional[], n: number): BlockPart[] {
  if (n === 0) return [];
  let homogeneous = true;
  const t0 = steps.rows[0],
    m0 = steps.width[0];
  for (let i = 1; i < n && homogeneous; i++) if (steps.rows[i] !== t0 || steps.width[i] !== m0) homogeneous = false;
  for (const o of optional) {
    const first = o.rows.rows[0] < 0 ? -1 : o.rows.width[0];
    for (let i = 0; i < n && homogeneous; i++) if ((o.rows.rows[i] < 0 ? -1 : o.rows.width[i]) !== first) homogeneous = false;
  }
  if (homogeneous) return [{ rows: null, batch: packRows(steps, optional, null, n) }];
  const buckets = new ShapeBuckets<ShapeRows>();
  for (let i = 0; i < n; i++) buckets.get(shapeKeyOf(steps, optional, i), () => new ShapeRows()).push(i);
  return buckets.used.map((b) => {
    const rows = b.rows();
    return { rows, batch: packRows(steps, optional, rows, rows.length) };
  });
}

/**
 * The Batch of `rows` (null: all n rows in order, which are contiguous in every column, so each
 * array is a view of the column's own values).
 */
function packRows(steps: ListRows, optional: Optional[], rows: Int32Array | null, n: number): Batch {
  const r0 = rows ? rows[0] : 0;
  const t = steps.rows[r0],
    m = steps.width[r0];
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
    if (o.name === 'embeddings') {
      batch.d = w;
      batch.embeddings = take(o.rows, t * w);
    } else if (o.name === 'policy') {
      batch.a = w;
      batch.policy = take(o.rows, t * w);
    } else batch[o.name] = take(o.rows, t);
  }
  return batch;
}
