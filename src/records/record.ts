/**
 * One trajectory as a JSON object (ECR-SPEC section 5) and its validation. Every rejection
 * names the record (line) and the field, so a bad line in a large log can be found and fixed.
 */
import { InputError, type InputLocation } from '../errors.js';

export interface TrajectoryRecord {
  id?: string | number;
  group?: string | number;
  steps: number[][];
  embeddings?: number[][];
  expected?: number[];
  realized?: number[];
  policy?: number[][];
  baseScore?: number;
  /** Free-form metadata, carried but not used. */
  meta?: unknown;
}

/** A record that passed validation, with its shape. */
export interface CheckedRecord extends Omit<TrajectoryRecord, 'id' | 'group' | 'meta'> {
  id: string | number;
  /** Group key; null for "no group given" (one shared group). */
  group: string | number | null;
  t: number;
  m: number;
  d?: number;
  a?: number;
}

const KNOWN_FIELDS = new Set(['id', 'group', 'steps', 'embeddings', 'expected', 'realized', 'policy', 'baseScore', 'meta']);
export const MAX_T = 4096;

/** Describes a non-finite value the lenient JSON pass turned into a marker string. */
function describe(v: unknown): string {
  if (typeof v === 'string' && NON_FINITE_MARKERS.has(v)) return NON_FINITE_MARKERS.get(v)!;
  return JSON.stringify(v) ?? String(v);
}

const NON_FINITE_MARKERS = new Map([
  ['\u0000ecr:NaN', 'NaN'],
  ['\u0000ecr:Infinity', 'Infinity'],
  ['\u0000ecr:-Infinity', '-Infinity'],
]);

/**
 * Parses one JSONL line. Strict JSON has no NaN or Infinity, but writers such as Python's json
 * module emit them; such a line is re-read with those tokens marked so that the error can name
 * the field that holds one instead of a bare syntax error.
 */
export function parseJsonLine(text: string, line: number): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    if (/(?<![\w"])-?(NaN|Infinity)(?![\w"])/.test(text)) {
      const marked = text.replace(/(?<![\w"])(-?)(NaN|Infinity)(?![\w"])/g, (_m, sign: string, word: string) => JSON.stringify(`\u0000ecr:${sign}${word}`));
      try {
        return JSON.parse(marked);
      } catch {
        // fall through to the original syntax error
      }
    }
    throw new InputError(`invalid JSON: ${(err as Error).message}`, { line });
  }
}

function fail(message: string, loc: InputLocation, field: string): never {
  throw new InputError(message, { ...loc, field });
}

function numberRow(v: unknown, loc: InputLocation, field: string, check?: (x: number) => string | null): number[] {
  if (!Array.isArray(v)) fail(`must be an array of numbers, got ${describe(v)}`, loc, field);
  for (let j = 0; j < v.length; j++) {
    const x = v[j];
    if (typeof x !== 'number' || !Number.isFinite(x)) fail(`${describe(x)} is not a finite number`, loc, `${field}[${j}]`);
    const problem = check?.(x);
    if (problem) fail(`${x} ${problem}`, loc, `${field}[${j}]`);
  }
  return v as number[];
}

function matrix(v: unknown, loc: InputLocation, field: string, rows: number | null, check?: (x: number) => string | null): number[][] {
  if (!Array.isArray(v)) fail('must be an array of rows', loc, field);
  if (rows !== null && v.length !== rows) fail(`has ${v.length} rows, expected ${rows} (one per step)`, loc, field);
  let width = -1;
  for (let r = 0; r < v.length; r++) {
    const row = numberRow(v[r], loc, `${field}[${r}]`, check);
    if (width < 0) width = row.length;
    else if (row.length !== width) fail(`ragged rows: row ${r} has ${row.length} entries, row 0 has ${width}`, loc, field);
  }
  if (width === 0) fail('rows must not be empty', loc, field);
  return v as number[][];
}

const unitInterval = (x: number) => (x < 0 || x > 1 ? 'is outside [0, 1]' : null);
const nonNegative = (x: number) => (x < 0 ? 'is negative' : null);

/** Validates a parsed JSON value as a trajectory; `defaultId` is used when `id` is absent. */
export function checkRecord(value: unknown, loc: InputLocation, defaultId: string | number): CheckedRecord {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) fail('must be a JSON object', loc, '(record)');
  const o = value as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!KNOWN_FIELDS.has(k)) fail(`unknown field (known: ${[...KNOWN_FIELDS].join(', ')})`, loc, k);
  const id = o.id === undefined ? defaultId : o.id;
  if (typeof id !== 'string' && typeof id !== 'number') fail(`must be a string or number, got ${describe(id)}`, loc, 'id');
  const at: InputLocation = { ...loc, id: String(id) };
  const group = o.group === undefined || o.group === null ? null : o.group;
  if (group !== null && typeof group !== 'string' && typeof group !== 'number') fail(`must be a string or number, got ${describe(group)}`, at, 'group');

  if (o.steps === undefined) fail('is required', at, 'steps');
  const steps = matrix(o.steps, at, 'steps', null, unitInterval);
  const t = steps.length;
  if (t < 2) fail(`needs at least 2 steps, got ${t}`, at, 'steps');
  if (t > MAX_T) fail(`has ${t} steps, more than the supported ${MAX_T}`, at, 'steps');
  const rec: CheckedRecord = { id, group, t, m: steps[0].length, steps };

  if (o.embeddings !== undefined) {
    rec.embeddings = matrix(o.embeddings, at, 'embeddings', t);
    rec.d = rec.embeddings[0].length;
  }
  if (o.expected !== undefined && o.realized === undefined) fail('"expected" given without "realized"', at, 'expected');
  if (o.realized !== undefined && o.expected === undefined) fail('"realized" given without "expected"', at, 'realized');
  if (o.expected !== undefined) {
    rec.expected = numberRow(o.expected, at, 'expected');
    rec.realized = numberRow(o.realized, at, 'realized');
    if (rec.expected.length !== t) fail(`has ${rec.expected.length} entries, expected ${t} (one per step)`, at, 'expected');
    if (rec.realized.length !== t) fail(`has ${rec.realized.length} entries, expected ${t} (one per step)`, at, 'realized');
  }
  if (o.policy !== undefined) {
    rec.policy = matrix(o.policy, at, 'policy', t, nonNegative);
    rec.a = rec.policy[0].length;
  }
  if (o.baseScore !== undefined) {
    if (typeof o.baseScore !== 'number' || !Number.isFinite(o.baseScore)) fail(`${describe(o.baseScore)} is not a finite number`, at, 'baseScore');
    rec.baseScore = o.baseScore;
  }
  return rec;
}
