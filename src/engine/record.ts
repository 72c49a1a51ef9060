/**
 * One trajectory as a JSON object (ECR-SPEC section 5) and its validation. Every rejection
 * names the record (line) and the field, so a bad line in a large log can be found and fixed.
 */
import { createScanner, findNodeAtLocation, parseTree, SyntaxKind } from 'jsonc-parser';
import { InputError, type InputLocation } from '../core/errors.js';
import { embeddingValue, formatNumber, MAX_KEY_INTEGER, policyValue, rewardValue, stepValue, type ValueCheck } from '../core/input-ranges.js';
import { plural } from '../core/plural.js';

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

/** A value for a message: numbers as written (NaN, Infinity), anything else as JSON. */
function describe(v: unknown): string {
  if (typeof v === 'number') return formatNumber(v);
  if (typeof v === 'bigint') return `${v}n`;
  return JSON.stringify(v) ?? String(v);
}

/** Stands in for a bare NaN/Infinity token until the reviver turns it back into that number. */
const NON_FINITE_TOKENS = new Map([
  ['\u0000ecr:NaN', Number.NaN],
  ['\u0000ecr:Infinity', Number.POSITIVE_INFINITY],
  ['\u0000ecr:-Infinity', Number.NEGATIVE_INFINITY],
]);

/**
 * Parses one JSONL line. Strict JSON has no NaN or Infinity, but writers such as Python's json
 * module emit them; such a line is re-read with those tokens read as the numbers they stand for,
 * so that checkRecord names the field that holds one instead of reporting a bare syntax error.
 * The line is invalid either way (no field accepts a non-finite number). jsonc-parser's scanner
 * finds the tokens, so the same words inside strings are left alone.
 */
export function parseJsonLine(text: string, line: number): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    const marked = markNonFiniteTokens(text);
    if (marked !== null) {
      try {
        return JSON.parse(marked, (_key, v: unknown) => (typeof v === 'string' ? (NON_FINITE_TOKENS.get(v) ?? v) : v));
      } catch {
        // fall through to the original syntax error
      }
    }
    throw new InputError(`invalid JSON: ${(err as Error).message}`, { line });
  }
}

/** The text with each bare NaN, Infinity and -Infinity token replaced by a marker string; null if there is none. */
function markNonFiniteTokens(text: string): string | null {
  const scanner = createScanner(text, false);
  const parts: string[] = [];
  let copied = 0;
  let minusAt = -1; // offset of a '-' token directly before the current one
  for (let kind = scanner.scan(); kind !== SyntaxKind.EOF; kind = scanner.scan()) {
    const offset = scanner.getTokenOffset();
    const value = scanner.getTokenValue();
    if (kind === SyntaxKind.Unknown && (value === 'NaN' || value === 'Infinity')) {
      const negative = value === 'Infinity' && minusAt >= 0 && minusAt + 1 === offset;
      const start = negative ? minusAt : offset;
      parts.push(text.slice(copied, start), JSON.stringify(`\u0000ecr:${negative ? '-' : ''}${value}`));
      copied = offset + scanner.getTokenLength();
    }
    minusAt = kind === SyntaxKind.Unknown && value === '-' ? offset : -1;
  }
  if (parts.length === 0) return null;
  parts.push(text.slice(copied));
  return parts.join('');
}

/**
 * How the number at `path` was written in the line, if it can be found and reads as `value`.
 * The check matters for lines read leniently (bare NaN tokens): jsonc-parser skips those tokens,
 * so its paths there may point at a neighbour.
 */
function writtenAs(text: string | undefined, path: (string | number)[], value: number): string | null {
  if (text === undefined) return null;
  try {
    const root = parseTree(text);
    const node = root && findNodeAtLocation(root, path);
    const written = node?.type === 'number' ? text.slice(node.offset, node.offset + node.length) : null;
    return written !== null && Number(written) === value ? written : null;
  } catch {
    return null; // nesting too deep for the parser's recursion: the message goes without the quote
  }
}

function fail(message: string, loc: InputLocation, field: string): never {
  throw new InputError(message, { ...loc, field });
}

/** A non-finite number, quoting the literal when it was a finite-looking one that overflowed (1e400). */
function nonFinite(x: unknown, text: string | undefined, path: (string | number)[]): string {
  const written = typeof x === 'number' && !Number.isNaN(x) ? writtenAs(text, path, x) : null;
  const overflowed = written !== null ? `${written} overflows to ${describe(x)}, which` : describe(x);
  return `${overflowed} is not a finite number`;
}

/** Checks `key` (a row of numbers) or, with row >= 0, row `row` of the matrix `key`. */
function numberRow(v: unknown, loc: InputLocation, key: string, row: number, check: ValueCheck, text: string | undefined): number[] {
  const fieldAt = (j?: number) => `${key}${row >= 0 ? `[${row}]` : ''}${j === undefined ? '' : `[${j}]`}`;
  if (!Array.isArray(v)) fail(`must be an array of numbers, got ${describe(v)}`, loc, fieldAt());
  for (let j = 0; j < v.length; j++) {
    const x: unknown = v[j];
    if (typeof x !== 'number' || !Number.isFinite(x)) fail(nonFinite(x, text, row >= 0 ? [key, row, j] : [key, j]), loc, fieldAt(j));
    const problem = check(x);
    if (problem) fail(`${x} is ${problem}`, loc, fieldAt(j));
  }
  return v as number[];
}

function matrix(v: unknown, loc: InputLocation, key: string, rows: number | null, check: ValueCheck, text: string | undefined): number[][] {
  if (!Array.isArray(v)) fail('must be an array of rows', loc, key);
  if (rows !== null && v.length !== rows) fail(`has ${plural(v.length, 'row')}, expected ${rows} (one per step)`, loc, key);
  let width = -1;
  for (let r = 0; r < v.length; r++) {
    const row = numberRow(v[r], loc, key, r, check, text);
    if (width < 0) width = row.length;
    else if (row.length !== width) fail(`ragged rows: row ${r} has ${plural(row.length, 'entry', 'entries')}, row 0 has ${width}`, loc, key);
  }
  if (width === 0) fail('rows must not be empty', loc, key);
  return v as number[][];
}

/**
 * An id or group key: a string, or an integer that prints back exactly as it was read. A
 * fraction is not an integer; an integer beyond 2^53 was already rounded by JSON.parse
 * (12345678901234567890 reads as 12345678901234567000). Either is refused with the advice to
 * quote it.
 */
function checkKey(v: unknown, loc: InputLocation, field: 'id' | 'group', text: string | undefined): string | number {
  if (typeof v === 'string') return v;
  if (typeof v !== 'number') fail(`must be a string or number, got ${describe(v)}`, loc, field);
  if (!Number.isFinite(v)) fail(nonFinite(v, text, [field]), loc, field);
  if (!Number.isInteger(v)) {
    const written = writtenAs(text, [field], v) ?? String(v);
    fail(
      `${written} is not an integer: ${field === 'id' ? 'an id' : 'a group'} must be an integer or a string; to keep it as written, make it a string, "${field}": "${written}"`,
      loc,
      field,
    );
  }
  if (!Number.isSafeInteger(v)) {
    const written = writtenAs(text, [field], v) ?? String(v);
    fail(
      `${written} cannot be kept exactly: a number ${field} must be an integer between -${MAX_KEY_INTEGER} and ${MAX_KEY_INTEGER} (2^53 - 1); write it as a string, "${field}": "${written}"`,
      loc,
      field,
    );
  }
  return v;
}

/** The path of `key` under `parent` as the messages write it: meta.x[2], meta["a b"]. */
function childPath(parent: string, key: string | number): string {
  if (typeof key === 'number') return `${parent}[${key}]`;
  return /^[A-Za-z_$][\w$]*$/.test(key) ? `${parent}.${key}` : `${parent}[${JSON.stringify(key)}]`;
}

/** A path for a message; one nested deeper than anyone reads is shortened in the middle. */
function fieldOf(keys: (string | number)[]): string {
  const MAX_SHOWN = 16;
  const write = (ks: (string | number)[], start: string) => ks.reduce<string>((at, k) => childPath(at, k), start);
  if (keys.length <= MAX_SHOWN) return write(keys.slice(1), String(keys[0]));
  return `${write(keys.slice(1, MAX_SHOWN / 2), String(keys[0]))}...(${keys.length - MAX_SHOWN} levels)...${write(keys.slice(-MAX_SHOWN / 2), '')}`;
}

/**
 * The first non-finite number inside a free-form value, with its path; null if there is none.
 * Iterative (a deeply nested meta must not overflow the stack); paths are built only for the hit.
 * `seen` guards against cycles, which objects handed to the library may have.
 */
function findNonFinite(root: unknown, rootKey: string): { field: string; keys: (string | number)[]; value: number } | null {
  interface Node {
    value: unknown;
    parent: Node | null;
    key: string | number;
  }
  const stack: Node[] = [{ value: root, parent: null, key: rootKey }];
  const seen = new Set<object>();
  const keysOf = (n: Node): (string | number)[] => {
    const keys: (string | number)[] = [];
    for (let at: Node | null = n; at !== null; at = at.parent) keys.push(at.key);
    return keys.reverse();
  };
  while (stack.length > 0) {
    const node = stack.pop()!;
    const v = node.value;
    if (typeof v === 'number') {
      if (!Number.isFinite(v)) {
        const keys = keysOf(node);
        return { field: fieldOf(keys), keys, value: v };
      }
    } else if (v !== null && typeof v === 'object' && !seen.has(v)) {
      seen.add(v);
      if (Array.isArray(v)) for (let i = v.length - 1; i >= 0; i--) stack.push({ value: v[i], parent: node, key: i });
      else {
        const keys = Object.keys(v);
        for (let i = keys.length - 1; i >= 0; i--) stack.push({ value: (v as Record<string, unknown>)[keys[i]], parent: node, key: keys[i] });
      }
    }
  }
  return null;
}

/**
 * Validates a parsed JSON value as a trajectory; `defaultId` is used when `id` is absent. `text`,
 * the line the value was parsed from, lets a message quote a number as it was written.
 */
export function checkRecord(value: unknown, loc: InputLocation, defaultId: string | number, text?: string): CheckedRecord {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) fail('must be a JSON object', loc, '(record)');
  const o = value as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!KNOWN_FIELDS.has(k)) fail(`unknown field (known: ${[...KNOWN_FIELDS].join(', ')})`, loc, k);
  const id = o.id === undefined ? defaultId : checkKey(o.id, loc, 'id', text);
  const at: InputLocation = { ...loc, id: String(id) };
  const group = o.group === undefined || o.group === null ? null : checkKey(o.group, at, 'group', text);
  if (o.meta !== undefined) {
    const bad = findNonFinite(o.meta, 'meta');
    if (bad) fail(`${nonFinite(bad.value, text, bad.keys)} (meta is not scored, but is carried as JSON)`, at, bad.field);
  }

  if (o.steps === undefined) fail('is required', at, 'steps');
  const steps = matrix(o.steps, at, 'steps', null, stepValue, text);
  const t = steps.length;
  if (t < 2) fail(`needs at least 2 steps, got ${t}`, at, 'steps');
  if (t > MAX_T) fail(`has ${t} steps, more than the supported ${MAX_T}`, at, 'steps');
  const rec: CheckedRecord = { id, group, t, m: steps[0].length, steps };

  if (o.embeddings !== undefined) {
    rec.embeddings = matrix(o.embeddings, at, 'embeddings', t, embeddingValue, text);
    rec.d = rec.embeddings[0].length;
  }
  if (o.expected !== undefined && o.realized === undefined) fail('"expected" given without "realized"', at, 'expected');
  if (o.realized !== undefined && o.expected === undefined) fail('"realized" given without "expected"', at, 'realized');
  if (o.expected !== undefined) {
    rec.expected = numberRow(o.expected, at, 'expected', -1, rewardValue, text);
    rec.realized = numberRow(o.realized, at, 'realized', -1, rewardValue, text);
    if (rec.expected.length !== t) fail(`has ${plural(rec.expected.length, 'entry', 'entries')}, expected ${t} (one per step)`, at, 'expected');
    if (rec.realized.length !== t) fail(`has ${plural(rec.realized.length, 'entry', 'entries')}, expected ${t} (one per step)`, at, 'realized');
  }
  if (o.policy !== undefined) {
    rec.policy = matrix(o.policy, at, 'policy', t, policyValue, text);
    rec.a = rec.policy[0].length;
  }
  if (o.baseScore !== undefined) {
    if (typeof o.baseScore !== 'number' || !Number.isFinite(o.baseScore)) fail(nonFinite(o.baseScore, text, ['baseScore']), at, 'baseScore');
    rec.baseScore = o.baseScore;
  }
  return rec;
}
