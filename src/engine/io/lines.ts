/** Lines of a byte stream, with a cap on their length. */
import type { Readable } from 'node:stream';

/** The longest input line accepted (bytes, without the line break), as the README documents. */
export const DEFAULT_MAX_LINE_BYTES = 64 * 1024 * 1024;

/** A line longer than the cap: it was skipped while reading, never held whole in memory. */
export class OverlongLine {
  constructor(readonly bytes: number) {}
}

/**
 * Lines of a byte stream (LF or CRLF endings; a last line without a newline counts; a UTF-8 BOM
 * before the first line is dropped). Splits bytes, not decoded text, so a line's length is known
 * while it arrives: one longer than `maxLineBytes` is skipped up to its newline and reported as
 * an OverlongLine instead of growing a string until V8 gives up. node:readline would also cost
 * about as much again as JSON.parse on large logs.
 */
export async function* readLines(input: Readable, maxLineBytes = DEFAULT_MAX_LINE_BYTES): AsyncGenerator<string | OverlongLine> {
  let pieces: Buffer[] = []; // the current line's bytes from earlier chunks
  let held = 0; // bytes of the current line seen so far (kept or skipped)
  let skipping = false;
  let first = true;
  const decode = (buf: Buffer, start: number, end: number): string => {
    if (end > start && buf[end - 1] === 13) end--;
    const text = buf.toString('utf8', start, end);
    if (first) {
      first = false;
      if (text.charCodeAt(0) === 0xfeff) return text.slice(1);
    }
    return text;
  };
  const finishLine = (chunk: Buffer, start: number, end: number): string | OverlongLine => {
    const total = held + (end - start);
    let line: string | OverlongLine;
    if (skipping || total > maxLineBytes) {
      line = new OverlongLine(total);
      first = false;
    } else if (pieces.length === 0) {
      line = decode(chunk, start, end);
    } else {
      pieces.push(chunk.subarray(start, end));
      line = decode(Buffer.concat(pieces, total), 0, total);
    }
    pieces = []; held = 0; skipping = false;
    return line;
  };
  for await (const chunk of input as AsyncIterable<Buffer>) {
    let start = 0;
    for (let nl = chunk.indexOf(10, start); nl >= 0; nl = chunk.indexOf(10, start)) {
      yield finishLine(chunk, start, nl);
      start = nl + 1;
    }
    const rest = chunk.length - start;
    if (rest === 0) continue;
    held += rest;
    if (skipping) continue;
    if (held > maxLineBytes) { skipping = true; pieces = []; } else pieces.push(chunk.subarray(start));
  }
  if (held > 0) yield finishLine(Buffer.alloc(0), 0, 0);
}
