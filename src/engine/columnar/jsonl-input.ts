/**
 * JSONL records as Arrow record batches, for the paths that end in a columnar writer (`ecr
 * convert x.jsonl y.parquet`, `ecr score x.jsonl --out y.arrow`). Lines are parsed and checked by
 * the same code and with the same messages as `ecr score`'s JSONL path (engine/record.ts); the
 * batches carry every column of the schema, optional ones null where a record lacks the field.
 *
 * Arrow columns have one type each: ids are int64 when every id of the first window is a number
 * (as ids default to line numbers), else strings; groups likewise. A later id of the other kind
 * is an input error that says so.
 */
import type { Readable } from 'node:stream';
import { findNodeAtLocation, parseTree } from 'jsonc-parser';
import { Field, Float64, Int64, RecordBatch, Schema, Struct, Utf8, makeData, type Data, type DataType } from 'apache-arrow';
import { InputError } from '../../core/errors.js';
import { checkRecord, parseJsonLine, type CheckedRecord } from '../record.js';
import { overlongLineError, readLines } from '../io/lines.js';
import { float64Data, floatList, floatMatrix, int64Data, listData, matrixData, utf8Data } from './arrow-build.js';

export interface JsonlReadOptions {
  windowSize: number;
  lineCap: number;
  maxErrors: number;
  /** Invalid lines found (the caller reports them; no batch is yielded once there is one). */
  errors: InputError[];
}

export interface JsonlBatches {
  batches: AsyncGenerator<RecordBatch>;
  /** The line of row j of a batch (1-based), for messages about a row of a yielded batch. */
  lineOf(batch: RecordBatch, j: number): number;
  /** Set when an invalid line looked like the start of a JSON array. */
  readonly looksLikeArray: boolean;
  /** The batches' schema (a default one while none was built: an empty input). */
  readonly schema: Schema;
}

type KeyKind = 'int' | 'string';

export function schemaFor(id: KeyKind, group: KeyKind): Schema {
  const key = (k: KeyKind): DataType => (k === 'int' ? new Int64() : new Utf8());
  return new Schema([
    new Field('id', key(id), false),
    new Field('group', key(group), true),
    new Field('steps', floatMatrix(), false),
    new Field('embeddings', floatMatrix(), true),
    new Field('expected', floatList(), true),
    new Field('realized', floatList(), true),
    new Field('policy', floatMatrix(), true),
    new Field('baseScore', new Float64(), true),
    new Field('meta', new Utf8(), true),
  ]);
}

/** True when a number occurs anywhere in `v` (iteratively: meta may nest deeply). */
function holdsNumber(v: unknown): boolean {
  const stack: unknown[] = [v];
  while (stack.length > 0) {
    const x = stack.pop();
    if (typeof x === 'number') return true;
    if (x !== null && typeof x === 'object') stack.push(...Object.values(x as Record<string, unknown>));
  }
  return false;
}

/**
 * `meta` as the JSON text kept in the columnar file. A meta holding numbers keeps its text as
 * written in the line: JSON.parse rounds an integer beyond 2^53 or a decimal of more than 17
 * digits, and meta is carried, so its digits must come back out of ecr convert as they went in.
 */
function metaJson(line: string, meta: unknown): string {
  if (holdsNumber(meta)) {
    const root = parseTree(line);
    const node = root && findNodeAtLocation(root, ['meta']);
    if (node) return line.slice(node.offset, node.offset + node.length);
  }
  return JSON.stringify(meta);
}

export function readJsonlBatches(source: Readable, o: JsonlReadOptions): JsonlBatches {
  const lines = new WeakMap<RecordBatch, Int32Array>();
  let looksLikeArray = false;
  let schema: Schema | null = null;
  let idKind: KeyKind = 'string',
    groupKind: KeyKind = 'string';

  const keyColumn = (kind: KeyKind, keys: (string | number | null)[], lineNos: number[], field: 'id' | 'group'): Data => {
    for (let j = 0; j < keys.length; j++) {
      const k = keys[j];
      if (k !== null && (typeof k === 'number') !== (kind === 'int')) {
        throw new InputError(
          `${JSON.stringify(k)} is a ${typeof k}, but the ${field}s before it were ${kind === 'int' ? 'numbers' : 'strings'}; a Parquet or Arrow column holds one type, so write every ${field} as a string (or every one as a number)`,
          { line: lineNos[j], field },
        );
      }
    }
    return kind === 'int' ? int64Data(keys as (number | null)[]) : utf8Data(keys as (string | null)[]);
  };

  const toBatch = (records: CheckedRecord[], metas: (string | null)[], lineNos: number[]): RecordBatch => {
    if (schema === null) {
      idKind = records.every((r) => typeof r.id === 'number') ? 'int' : 'string';
      const firstGroup = records.find((r) => r.group !== null)?.group;
      groupKind = typeof firstGroup === 'number' ? 'int' : 'string';
      schema = schemaFor(idKind, groupKind);
    }
    const n = records.length;
    const base = new Float64Array(n);
    records.forEach((r, j) => {
      base[j] = r.baseScore ?? 0;
    });
    const children = [
      keyColumn(
        idKind,
        records.map((r) => r.id),
        lineNos,
        'id',
      ),
      keyColumn(
        groupKind,
        records.map((r) => r.group),
        lineNos,
        'group',
      ),
      matrixData(records.map((r) => r.steps)),
      matrixData(records.map((r) => r.embeddings)),
      listData(records.map((r) => r.expected)),
      listData(records.map((r) => r.realized)),
      matrixData(records.map((r) => r.policy)),
      float64Data(base, (j) => records[j].baseScore !== undefined),
      utf8Data(metas),
    ];
    const batch = new RecordBatch(schema, makeData({ type: new Struct(schema.fields), length: n, nullCount: 0, children }));
    lines.set(batch, Int32Array.from(lineNos));
    return batch;
  };

  async function* batches(): AsyncGenerator<RecordBatch> {
    let records: CheckedRecord[] = [],
      metas: (string | null)[] = [],
      lineNos: number[] = [];
    let lineNo = 0;
    for await (const text of readLines(source, o.lineCap)) {
      lineNo++;
      if (typeof text !== 'string') {
        o.errors.push(overlongLineError(text, o.lineCap, lineNo));
        if (o.errors.length >= o.maxErrors) break;
        continue;
      }
      if (text.trim() === '') continue;
      try {
        const value = parseJsonLine(text, lineNo);
        const rec = checkRecord(value, { line: lineNo }, lineNo, text);
        const meta = (value as { meta?: unknown }).meta;
        records.push(rec);
        metas.push(meta === undefined ? null : metaJson(text, meta));
        lineNos.push(lineNo);
      } catch (err) {
        if (!(err instanceof InputError)) throw err;
        o.errors.push(err);
        if (/^\s*\[/.test(text)) looksLikeArray = true;
        if (o.errors.length >= o.maxErrors) break;
      }
      if (records.length >= o.windowSize) {
        if (o.errors.length === 0) yield toBatch(records, metas, lineNos);
        records = [];
        metas = [];
        lineNos = [];
      }
    }
    if (records.length > 0 && o.errors.length === 0) yield toBatch(records, metas, lineNos);
  }

  return {
    batches: batches(),
    lineOf: (batch, j) => lines.get(batch)?.[j] ?? j + 1,
    get looksLikeArray() {
      return looksLikeArray;
    },
    get schema() {
      return schema ?? schemaFor('int', 'string');
    },
  };
}
