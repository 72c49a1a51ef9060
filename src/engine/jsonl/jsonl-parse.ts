/**
 * Parses and validates one chunk of JSONL lines (io/lines.ts) into flat typed arrays, in a
 * parse worker or, with one thread, on the calling thread. Validation is checkRecord's, line by
 * line with its messages, so an error names the same line and field whichever thread found it.
 * Records travel back as numbers in typed arrays (transferred, not cloned) plus two strings per
 * chunk: the result lines' `{"id":..,"group":..` heads and the group keys' bytes for interning.
 */
import { InputError } from '../../core/errors.js';
import { checkRecord, parseJsonLine, type CheckedRecord } from '../record.js';
import { TAG_NUMBER, TAG_STRING } from '../group-keys.js';
import { resultHead } from '../../core/result-line.js';
import { readSimpleRecord, type SimpleRecord } from './jsonl-fast-record.js';
import { GrowableFloats } from '../floats.js';

/** Invalid lines (or rows) reported before a run gives up (so one run shows most problems of a file). */
export const MAX_REPORTED_ERRORS = 20;

/** Said after the errors when an invalid line looks like the start of a JSON array. */
export const ARRAY_HINT = 'hint: this looks like a JSON array; ecr score reads JSONL, one JSON object per line' + " (convert with: jq -c '.[]' FILE)";

/** An invalid line; `before` valid records of the chunk precede it. */
export interface LineError {
  line: number;
  message: string;
  before: number;
  /** The line starts with `[`: the input may be a JSON array rather than JSONL. */
  arrayLike: boolean;
}

/** Per-record shape: t, m, d (0 without embeddings), a (0 without policy), rewards (0/1). */
export const SHAPE_FIELDS = 5;

/** The valid records of a chunk in input order, and its invalid lines. */
export interface ParsedChunk {
  firstLine: number;
  lines: number;
  count: number;
  /** Line number of each record. */
  lineOf: Uint32Array;
  /** SHAPE_FIELDS ints per record. */
  shapes: Int32Array;
  /** Each field's values of every record that has it, concatenated in record order. */
  steps: Float64Array;
  embeddings: Float64Array;
  expected: Float64Array;
  realized: Float64Array;
  policy: Float64Array;
  /** NaN where a record has none. */
  baseScore: Float64Array;
  /** Result-line heads `{"id":..,"group":..`; record i's is heads.slice(headEnds[i], headEnds[i + 1]). */
  heads: string;
  headEnds: Uint32Array;
  /** Group keys as GroupKeys stores them (a type tag, then UTF-8; empty for "no group"). */
  groupBytes: Uint8Array;
  groupEnds: Uint32Array;
  errors: LineError[];
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Parses the lines `firstLine ..` of `bytes` (a chunk from lineChunks). */
export function parseChunk(bytes: Uint8Array, firstLine: number, lines: number): ParsedChunk {
  const text = decoder.decode(bytes);
  const estimate = Math.max(16, lines);
  const lineOf: number[] = [];
  const shapes: number[] = [];
  const baseScore: number[] = [];
  const heads: string[] = [];
  const headEnds = new Uint32Array(estimate + 1);
  let headsLength = 0;
  let groupBytes = new Uint8Array(estimate * 8);
  const groupEnds = new Uint32Array(estimate + 1);
  let groupUsed = 0;
  const steps = new GrowableFloats(estimate * 40);
  const embeddings = new GrowableFloats(0);
  const expected = new GrowableFloats(0);
  const realized = new GrowableFloats(0);
  const policy = new GrowableFloats(0);
  const errors: LineError[] = [];
  let count = 0;

  const simple: SimpleRecord = { id: undefined, group: null, t: 0, m: 0 };
  /** Everything but the float fields, which the caller appended already. */
  const addRecord = (
    lineNo: number,
    id: string | number,
    group: string | number | null,
    t: number,
    m: number,
    d: number,
    a: number,
    rewards: number,
    base: number,
  ) => {
    lineOf.push(lineNo);
    shapes.push(t, m, d, a, rewards);
    baseScore.push(base);
    const head = resultHead(id, group);
    heads.push(head);
    headsLength += head.length;
    headEnds[count + 1] = headsLength;
    if (group !== null) {
      const key = typeof group === 'string' ? group : String(group);
      const need = groupUsed + 1 + key.length * 3;
      if (need > groupBytes.length) {
        const grown = new Uint8Array(Math.max(need, groupBytes.length * 2));
        grown.set(groupBytes.subarray(0, groupUsed));
        groupBytes = grown;
      }
      groupBytes[groupUsed] = typeof group === 'string' ? TAG_STRING : TAG_NUMBER;
      groupUsed += 1 + encoder.encodeInto(key, groupBytes.subarray(groupUsed + 1)).written;
    }
    count++;
    groupEnds[count] = groupUsed;
  };

  let start = 0;
  for (let k = 0; k < lines; k++) {
    let end = text.indexOf('\n', start);
    if (end < 0) end = text.length;
    const next = end + 1;
    if (end > start && text.charCodeAt(end - 1) === 13) end--;
    const lineNo = firstLine + k;
    const from = lineNo === 1 && text.charCodeAt(start) === 0xfeff ? start + 1 : start;
    start = next;
    const saved = steps.length;
    if (readSimpleRecord(text, from, end, steps, simple)) {
      addRecord(lineNo, simple.id ?? lineNo, simple.group, simple.t, simple.m, 0, 0, 0, Number.NaN);
      continue;
    }
    steps.length = saved;
    const line = text.slice(from, end);
    if (line.trim() === '') continue;
    let r: CheckedRecord;
    try {
      r = checkRecord(parseJsonLine(line, lineNo), { line: lineNo }, lineNo, line);
    } catch (err) {
      if (!(err instanceof InputError)) throw err;
      errors.push({ line: lineNo, message: err.message, before: count, arrayLike: /^\s*\[/.test(line) });
      // The run stops at the 20th invalid line, so nothing later in this chunk can be reported.
      if (errors.length >= MAX_REPORTED_ERRORS) break;
      continue;
    }
    steps.rows(r.steps);
    if (r.embeddings) embeddings.rows(r.embeddings);
    if (r.expected) {
      expected.row(r.expected);
      realized.row(r.realized!);
    }
    if (r.policy) policy.rows(r.policy);
    addRecord(lineNo, r.id, r.group, r.t, r.m, r.d ?? 0, r.a ?? 0, r.expected ? 1 : 0, r.baseScore ?? Number.NaN);
  }
  return {
    firstLine,
    lines,
    count,
    lineOf: Uint32Array.from(lineOf),
    shapes: Int32Array.from(shapes),
    steps: steps.done(),
    embeddings: embeddings.done(),
    expected: expected.done(),
    realized: realized.done(),
    policy: policy.done(),
    baseScore: Float64Array.from(baseScore),
    heads: heads.join(''),
    headEnds: headEnds.slice(0, count + 1),
    groupBytes: groupBytes.slice(0, groupUsed),
    groupEnds: groupEnds.slice(0, count + 1),
    errors,
  };
}

/** The typed arrays of a parsed chunk, for postMessage's transfer list. */
export function transferablesOf(c: ParsedChunk): ArrayBuffer[] {
  return [c.lineOf, c.shapes, c.steps, c.embeddings, c.expected, c.realized, c.policy, c.baseScore, c.headEnds, c.groupBytes, c.groupEnds].map(
    (a) => a.buffer as ArrayBuffer,
  );
}
