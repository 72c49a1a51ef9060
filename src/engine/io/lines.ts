/**
 * Lines of a byte stream, the one line splitter of the engine: LF or CRLF endings, a last line
 * without a newline counts when it is not empty, and a line longer than the cap is skipped up to
 * its newline without being held, then reported in its place. Splits bytes, not decoded text, so
 * a line's length is known while it arrives: an overlong line is never grown into a string until
 * V8 gives up (node:readline would also cost about as much again as JSON.parse on large logs).
 *
 * lineChunks only finds newlines (memchr via Buffer.indexOf) and counts them, so every chunk of
 * whole lines knows the number of its first line; `ecr score` hands the chunks to its parse
 * workers, which decode them. readLines decodes the chunks into lines for the other readers.
 */
import type { Readable } from 'node:stream';
import { InputError } from '../../core/errors.js';

/** The longest input line accepted (bytes, without the line break), as docs/cli.md documents. */
export const DEFAULT_MAX_LINE_BYTES = 64 * 1024 * 1024;

/** A line longer than the cap: it was skipped while reading, never held whole in memory. */
export class OverlongLine {
  constructor(readonly bytes: number) {}
}

/** A byte count as the line cap is stated in messages: "64 MiB", or "100-byte". */
function formatBytes(n: number): string {
  return n % (1 << 20) === 0 ? `${n / (1 << 20)} MiB` : `${n}-byte`;
}

/** The input error for an overlong line. */
export function overlongLineError(overlong: OverlongLine, maxLineBytes: number, line: number): InputError {
  return new InputError(`the line is ${overlong.bytes} bytes, longer than the ${formatBytes(maxLineBytes)} limit on one record; it was skipped`, { line });
}

/** Whole lines `firstLine .. firstLine + lines - 1`; every one ends with LF except perhaps the input's last. */
export interface LineChunk {
  bytes: Uint8Array;
  firstLine: number;
  lines: number;
}

/** A line over the cap, at its place in the order of chunks. */
export interface SkippedLine {
  overlong: OverlongLine;
  line: number;
}

export type ChunkItem = LineChunk | SkippedLine;

/** Bytes gathered before a chunk is handed on (about 3,000 records of 300 bytes). */
export const DEFAULT_CHUNK_BYTES = 1 << 20;

/**
 * The chunks of `input`, whose first line is line `firstLine` (a shard of a file starts further
 * on, src/queue/). `bytesRead` is called with the input bytes consumed so far (for the
 * progress line's ETA). Each chunk is a fresh buffer of its own, so it can be transferred.
 */
export async function* lineChunks(
  input: Readable | AsyncIterable<Uint8Array>,
  maxLineBytes = DEFAULT_MAX_LINE_BYTES,
  chunkBytes = DEFAULT_CHUNK_BYTES,
  bytesRead?: (n: number) => void,
  firstLine = 1,
): AsyncGenerator<ChunkItem> {
  let parts: Uint8Array[] = []; // whole lines of the chunk being gathered
  let partsBytes = 0;
  let partsLines = 0;
  let nextLine = firstLine; // number of the first line not yet in `parts` or emitted
  let pieces: Buffer[] = []; // the current unfinished line's bytes from earlier buffers
  let held = 0; // bytes of the unfinished line seen so far (kept or skipped)
  let skipping = false;
  let consumed = 0;

  const take = (bytes: Uint8Array, lines: number) => {
    if (bytes.length === 0) return;
    parts.push(bytes);
    partsBytes += bytes.length;
    partsLines += lines;
  };
  function* flush(): Generator<LineChunk> {
    if (partsLines === 0) return;
    const bytes = new Uint8Array(partsBytes);
    let at = 0;
    for (const p of parts) {
      bytes.set(p, at);
      at += p.length;
    }
    const chunk: LineChunk = { bytes, firstLine: nextLine, lines: partsLines };
    nextLine += partsLines;
    parts = [];
    partsBytes = 0;
    partsLines = 0;
    yield chunk;
  }
  function* overlong(bytes: number): Generator<ChunkItem> {
    yield* flush();
    yield { overlong: new OverlongLine(bytes), line: nextLine++ };
  }

  for await (const buf of input as AsyncIterable<Buffer>) {
    consumed += buf.length;
    let start = 0; // first byte of `buf` not yet taken
    let nl = buf.indexOf(10);
    if (held > 0 || skipping) {
      if (nl < 0) {
        held += buf.length;
        if (!skipping && held > maxLineBytes) {
          skipping = true;
          pieces = [];
        } else if (!skipping) pieces.push(buf);
        bytesRead?.(consumed);
        continue;
      }
      const total = held + nl;
      if (skipping || total > maxLineBytes) yield* overlong(total);
      else {
        pieces.push(buf.subarray(0, nl + 1));
        take(Buffer.concat(pieces), 1);
      }
      pieces = [];
      held = 0;
      skipping = false;
      start = nl + 1;
      nl = buf.indexOf(10, start);
    }
    let lineStart = start;
    let lines = 0;
    for (; nl >= 0; nl = buf.indexOf(10, nl + 1)) {
      if (nl - lineStart > maxLineBytes) {
        take(buf.subarray(start, lineStart), lines);
        yield* overlong(nl - lineStart);
        start = nl + 1;
        lines = 0;
      } else {
        lines++;
      }
      lineStart = nl + 1;
    }
    take(buf.subarray(start, lineStart), lines);
    const rest = buf.length - lineStart;
    if (rest > 0) {
      held = rest;
      if (held > maxLineBytes) skipping = true;
      else pieces.push(buf.subarray(lineStart));
    }
    bytesRead?.(consumed);
    if (partsBytes >= chunkBytes) yield* flush();
  }
  if (held > 0) {
    if (skipping || held > maxLineBytes) yield* overlong(held);
    else take(Buffer.concat(pieces), 1);
  }
  yield* flush();
}

/** Bytes of lines decoded at a time by readLines. */
const READ_CHUNK_BYTES = 1 << 16;

/**
 * Lines of a byte stream as text, from lineChunks (a UTF-8 BOM before the first line is dropped,
 * as is a CR before the LF); an overlong line comes as an OverlongLine in its place.
 */
export async function* readLines(input: Readable | AsyncIterable<Uint8Array>, maxLineBytes = DEFAULT_MAX_LINE_BYTES): AsyncGenerator<string | OverlongLine> {
  let first = true;
  for await (const item of lineChunks(input, maxLineBytes, READ_CHUNK_BYTES)) {
    if ('overlong' in item) {
      first = false;
      yield item.overlong;
      continue;
    }
    const bytes = Buffer.from(item.bytes.buffer, item.bytes.byteOffset, item.bytes.length);
    let start = 0;
    for (let k = 0; k < item.lines; k++) {
      const nl = bytes.indexOf(10, start);
      const next = nl < 0 ? bytes.length : nl + 1;
      let end = nl < 0 ? bytes.length : nl;
      if (end > start && bytes[end - 1] === 13) end--;
      let text = bytes.toString('utf8', start, end);
      if (first) {
        first = false;
        if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
      }
      yield text;
      start = next;
    }
  }
}
