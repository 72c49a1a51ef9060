/**
 * The top-level "group" of one JSONL line, read from its bytes without parsing the rest.
 *
 * Planning shards needs only each record's group, and JSON.parse of a whole record (dozens of
 * step values) costs about seven times a scan of its bytes (measured on 100,000 records of T=5,
 * m=8: 450 ms against 70 ms), time the submitter spends before any worker can start. The scan
 * walks the top-level object, skips every value but the group's (strings and nesting only are
 * tracked), and returns what `JSON.parse(line).group` holds. Whenever it meets something it does
 * not handle exactly as JSON.parse would (an escaped key, which could spell "group"; a leading
 * byte-order mark or non-ASCII space; a line that is not one object), it answers FALLBACK and the
 * caller parses the line. On invalid JSON its answer may differ from a parse, which is harmless:
 * such a line fails the run in the worker that scores it, wherever the cuts fall.
 */

export const FALLBACK = Symbol('parse the line');
export const BLANK = Symbol('blank line');

/** What planning keys a line by: the group (null: none given), undefined: not a valid key. */
export type GroupValue = string | number | null | undefined;

const isJsonSpace = (c: number) => c === 32 || c === 9 || c === 13 || c === 10;
/** Bytes String.prototype.trim removes that are ASCII: the only ones a blank line may hold here. */
const isTrimmedAscii = (c: number) => c === 32 || (c >= 9 && c <= 13);

/** What planning keys a parsed value's group by (the same rules as the scan's answer). */
export function groupOfValue(value: unknown): GroupValue {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const g = (value as { group?: unknown }).group;
  if (g === undefined || g === null) return null;
  if (typeof g === 'string') return g;
  if (typeof g === 'number' && Number.isSafeInteger(g)) return g;
  return undefined;
}

/** Index just past the value starting at `i`, or -1. Nesting and strings only; no validation. */
function skipValue(b: Uint8Array, i: number, end: number): number {
  const c = b[i];
  if (c === 34) {
    for (let k = i + 1; k < end; k++) {
      const d = b[k];
      if (d === 92) k++;
      else if (d === 34) return k + 1;
    }
    return -1;
  }
  if (c === 123 || c === 91) {
    let depth = 0;
    for (let k = i; k < end; k++) {
      const d = b[k];
      if (d === 34) {
        for (k++; k < end && b[k] !== 34; k++) if (b[k] === 92) k++;
        if (k >= end) return -1;
      } else if (d === 123 || d === 91) depth++;
      else if (d === 125 || d === 93) {
        if (--depth === 0) return k + 1;
      }
    }
    return -1;
  }
  let k = i;
  while (k < end) {
    const d = b[k];
    if (d === 44 || d === 125 || d === 93 || isJsonSpace(d)) break;
    k++;
  }
  return k > i ? k : -1;
}

function decodeGroup(b: Buffer, start: number, end: number): GroupValue | typeof FALLBACK {
  const c = b[start];
  if (c === 34) {
    for (let k = start + 1; k < end - 1; k++) {
      if (b[k] !== 92) continue;
      try {
        return JSON.parse(b.toString('utf8', start, end)) as string;
      } catch {
        return undefined; // a bad escape: the line is not JSON
      }
    }
    return b.toString('utf8', start + 1, end - 1);
  }
  if (c === 110) return end - start === 4 && b[start + 1] === 117 && b[start + 2] === 108 && b[start + 3] === 108 ? null : FALLBACK;
  if (c === 45 || (c >= 48 && c <= 57)) {
    const v = Number(b.toString('latin1', start, end));
    return Number.isSafeInteger(v) ? v : undefined;
  }
  return undefined; // true, false, an object or an array: not a group key
}

/**
 * The group of the line b[start, end) (no line break inside), BLANK for a line trim() would
 * empty, or FALLBACK when only a parse can tell.
 */
export function scanGroup(b: Buffer, start: number, end: number): GroupValue | typeof BLANK | typeof FALLBACK {
  let i = start;
  while (i < end && isTrimmedAscii(b[i])) i++;
  if (i === end) return BLANK;
  if (b[i] !== 123) return FALLBACK; // not an object, or a BOM / non-ASCII space first
  let groupStart = -1,
    groupEnd = -1;
  i++;
  while (i < end && isJsonSpace(b[i])) i++;
  if (b[i] === 125) {
    i++;
  } else {
    for (;;) {
      if (b[i] !== 34) return FALLBACK;
      const keyStart = i + 1;
      let k = keyStart;
      while (k < end && b[k] !== 34) {
        if (b[k] === 92) return FALLBACK;
        k++;
      }
      if (k >= end) return FALLBACK;
      const isGroup =
        k - keyStart === 5 && b[keyStart] === 103 && b[keyStart + 1] === 114 && b[keyStart + 2] === 111 && b[keyStart + 3] === 117 && b[keyStart + 4] === 112;
      i = k + 1;
      while (i < end && isJsonSpace(b[i])) i++;
      if (b[i] !== 58) return FALLBACK;
      i++;
      while (i < end && isJsonSpace(b[i])) i++;
      const valueEnd = i < end ? skipValue(b, i, end) : -1;
      if (valueEnd < 0) return FALLBACK;
      if (isGroup) {
        groupStart = i;
        groupEnd = valueEnd;
      } // a repeated key: the last one counts, as in JSON.parse
      i = valueEnd;
      while (i < end && isJsonSpace(b[i])) i++;
      if (b[i] === 44) {
        i++;
        while (i < end && isJsonSpace(b[i])) i++;
        continue;
      }
      if (b[i] !== 125) return FALLBACK;
      i++;
      break;
    }
  }
  while (i < end && isJsonSpace(b[i])) i++;
  if (i !== end) return FALLBACK;
  return groupStart < 0 ? null : decodeGroup(b, groupStart, groupEnd);
}
