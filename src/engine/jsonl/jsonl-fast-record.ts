/**
 * A fast reader for the commonest JSONL record, `{"id": "..", "group": "..", "steps": [[..], ..]}`
 * (keys in any order, `id` and `group` optional, `group` may be null, plain strings without
 * escapes), that reads the numbers of `steps` straight into a Float64Array: no JSON.parse, no
 * arrays of arrays, no second walk for validation. It accepts a line only when checkRecord would
 * accept it with the same values; anything else (another field, an escape, a number it cannot
 * read exactly, a value out of range, a ragged row) makes it give up, and the caller parses and
 * validates the line as before, so every message still comes from checkRecord.
 *
 * Numbers: a decimal with at most 15 significant digits and no exponent is M / 10^k with M and
 * 10^k exact doubles, so one IEEE division gives the correctly rounded value, which is what
 * JSON.parse returns (Clinger's fast path). Longer numbers are read by Number() on their text,
 * which is correctly rounded as well.
 */
import { MAX_T } from '../record.js';

/** Powers of ten exact in float64. */
const POW10 = Array.from({ length: 23 }, (_, k) => 10 ** k);

/** A growable Float64Array the reader appends to (rolled back by the caller when it gives up). */
export interface FloatSink {
  data: Float64Array;
  length: number;
  ensure(extra: number): void;
}

export interface SimpleRecord {
  /** undefined: no `id` (the line number stands in). */
  id: string | undefined;
  group: string | null;
  t: number;
  m: number;
}

const SPACE = 32,
  TAB = 9,
  CR = 13,
  QUOTE = 34,
  BACKSLASH = 92,
  COMMA = 44,
  COLON = 58;
const LBRACKET = 91,
  RBRACKET = 93,
  LBRACE = 123,
  RBRACE = 125,
  DOT = 46,
  ZERO = 48,
  NINE = 57;

/**
 * Reads text[start, end) as a simple record, appending its steps to `steps`; false when the line
 * is not one (then `steps` may hold a partial record: the caller restores its length).
 */
// The reader's position, at module level rather than in closures: no allocation per line.
let text = '';
let i = 0;
let end = 0;

function skip(): void {
  let c;
  while (i < end && ((c = text.charCodeAt(i)) === SPACE || c === TAB || c === CR)) i++;
}

/** A string without escapes or control characters; null when it is anything else. */
function str(): string | null {
  if (text.charCodeAt(i) !== QUOTE) return null;
  const from = ++i;
  for (; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) return text.slice(from, i++);
    if (c === BACKSLASH || c < 0x20) return null;
  }
  return null;
}

/** `[[x, ...], ...]` with every x in [0, 1], appended to `steps`, its shape into `shape`; false when it is not that. */
function readSteps(steps: FloatSink, shape: SimpleRecord): boolean {
  let t = 0,
    m = 0;
  if (text.charCodeAt(i++) !== LBRACKET) return false;
  skip();
  for (;;) {
    if (text.charCodeAt(i++) !== LBRACKET) return false;
    let width = 0;
    for (;;) {
      skip();
      // A number in [0, 1]: no sign, no exponent.
      const from = i;
      let mantissa = 0,
        digits = 0,
        fraction = 0;
      let c = text.charCodeAt(i);
      if (c < ZERO || c > NINE) return false;
      if (c === ZERO) {
        i++;
        c = text.charCodeAt(i);
        if (c >= ZERO && c <= NINE) return false;
      } else {
        while (c >= ZERO && c <= NINE) {
          mantissa = mantissa * 10 + (c - ZERO);
          digits++;
          c = text.charCodeAt(++i);
        }
      }
      if (c === DOT) {
        c = text.charCodeAt(++i);
        if (c < ZERO || c > NINE) return false;
        while (c >= ZERO && c <= NINE) {
          mantissa = mantissa * 10 + (c - ZERO);
          if (mantissa > 0) digits++;
          fraction++;
          c = text.charCodeAt(++i);
        }
      }
      if (c === 101 || c === 69) return false; // e, E: an exponent, left to JSON.parse
      const x = digits <= 15 && fraction <= 22 ? mantissa / POW10[fraction] : Number(text.slice(from, i));
      if (!(x <= 1)) return false;
      if (steps.length === steps.data.length) steps.ensure(1);
      steps.data[steps.length++] = x;
      width++;
      skip();
      c = text.charCodeAt(i++);
      if (c === COMMA) continue;
      if (c !== RBRACKET) return false;
      break;
    }
    if (t === 0) m = width;
    else if (width !== m) return false;
    t++;
    skip();
    const c = text.charCodeAt(i++);
    if (c === COMMA) {
      skip();
      continue;
    }
    if (c !== RBRACKET) return false;
    break;
  }
  if (t < 2 || t > MAX_T) return false;
  shape.t = t;
  shape.m = m;
  return true;
}

/**
 * Reads line[start, stop) as a simple record, appending its steps to `steps`; false when the line
 * is not one (then `steps` may hold a partial record: the caller restores its length).
 */
export function readSimpleRecord(line: string, start: number, stop: number, steps: FloatSink, out: SimpleRecord): boolean {
  text = line;
  i = start;
  end = stop;
  let id: string | undefined, group: string | null | undefined;
  let seenSteps = false;
  skip();
  if (text.charCodeAt(i++) !== LBRACE) return false;
  skip();
  if (text.charCodeAt(i) === RBRACE) return false;
  for (;;) {
    const key = str();
    if (key === null) return false;
    skip();
    if (text.charCodeAt(i++) !== COLON) return false;
    skip();
    if (key === 'id') {
      if (id !== undefined) return false;
      const v = str();
      if (v === null) return false;
      id = v;
    } else if (key === 'group') {
      if (group !== undefined) return false;
      if (text.startsWith('null', i)) {
        group = null;
        i += 4;
      } else {
        const v = str();
        if (v === null) return false;
        group = v;
      }
    } else if (key === 'steps') {
      if (seenSteps || !readSteps(steps, out)) return false;
      seenSteps = true;
    } else {
      return false;
    }
    skip();
    const c = text.charCodeAt(i++);
    if (c === COMMA) {
      skip();
      continue;
    }
    if (c !== RBRACE) return false;
    break;
  }
  skip();
  if (i !== end || !seenSteps) return false;
  out.id = id;
  out.group = group ?? null;
  text = '';
  return true;
}
