/**
 * The rows of a Parquet or Arrow IPC input of `ecr calibrate` / `ecr maturity` as plain objects,
 * with the same meaning as JSONL lines: a null is a field not given, lists become arrays, 64-bit
 * integers become numbers (refused beyond 2^53, where they would change), a struct (`meta`)
 * becomes an object. The file is read by `ecr score`'s columnar reader (engine/columnar/
 * readers.ts), one record batch at a time, so a damaged file is reported as `ecr score` reports
 * it (for Parquet: the row group and the column).
 */
import { InputError } from '../core/errors.js';
import type { DataFormat } from '../engine/columnar/format.js';
import { openColumnar } from '../engine/columnar/readers.js';

const reason = (err: unknown) => (err instanceof Error ? err.message : String(err)).split('\n')[0];

/** A list cell: an Arrow Vector or a typed array (iterable, with a length). */
const isList = (v: object): v is Iterable<unknown> => typeof (v as Partial<Iterable<unknown>>)[Symbol.iterator] === 'function' && 'length' in v;

/** A cell as a JSON value would hold it; `undefined` for null (not given). */
function plain(v: unknown, row: number, column: string): unknown {
  if (v === null || v === undefined) return undefined;
  if (typeof v === 'bigint') {
    if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < -BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new InputError(`${v} cannot be kept exactly as a number (beyond 2^53 - 1); store it as a string`, { row, field: column });
    }
    return Number(v);
  }
  if (typeof v !== 'object') return v;
  if (v instanceof Date) return v.toISOString();
  if (isList(v)) {
    // Its elements, nulls kept as null.
    return Array.from(v, (x) => {
      const p = plain(x, row, column);
      return p === undefined ? null : p;
    });
  }
  if (typeof (v as { toJSON?: unknown }).toJSON === 'function') {
    const o = (v as { toJSON(): Record<string, unknown> }).toJSON();
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(o)) {
      const p = plain(x, row, `${column}.${k}`);
      if (p !== undefined) out[k] = p;
    }
    return out;
  }
  return v;
}

function metaFromText(text: string, row: number): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new InputError(`holds text that is not JSON (${reason(err)}); a meta column is a struct or the JSON text ecr convert writes`, { row, field: 'meta' });
  }
}

/** Each row of the regular file `file` (1-based, as lines count) with its plain object. */
export async function* columnarRows(file: string, format: Exclude<DataFormat, 'jsonl'>): AsyncGenerator<{ row: number; value: Record<string, unknown> }> {
  const input = await openColumnar(file, format, null);
  try {
    const names = input.schema.fields.map((f) => f.name);
    let row = 0;
    for await (const batch of input.batches) {
      const columns = names.map((_, c) => batch.getChildAt(c)!);
      for (let i = 0; i < batch.numRows; i++) {
        row++;
        const value: Record<string, unknown> = {};
        for (let c = 0; c < names.length; c++) {
          let p = plain(columns[c].get(i), row, names[c]);
          // `ecr convert` keeps a JSONL record's `meta` as its JSON text (ECR-SPEC section 5).
          if (names[c] === 'meta' && typeof p === 'string') p = metaFromText(p, row);
          if (p !== undefined) value[names[c]] = p;
        }
        yield { row, value };
      }
    }
  } finally {
    await input.close();
  }
}
