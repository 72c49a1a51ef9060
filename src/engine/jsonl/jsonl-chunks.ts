/**
 * Cuts a JSONL byte stream into chunks of whole lines for the parse workers, in input order.
 * Lines follow readLines (src/engine/io/): LF or CRLF endings, a last line without a newline
 * counts when it is not empty, and a line longer than the cap is skipped up to its newline
 * without being held, then reported in its place. The chunker only finds newlines (memchr via
 * Buffer.indexOf) and counts them, so every chunk knows the number of its first line; decoding,
 * the BOM, CR stripping and parsing happen in the workers.
 */
import type { Readable } from 'node:stream';
import { DEFAULT_MAX_LINE_BYTES, OverlongLine } from '../io/lines.js';

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
  input: Readable, maxLineBytes = DEFAULT_MAX_LINE_BYTES, chunkBytes = DEFAULT_CHUNK_BYTES, bytesRead?: (n: number) => void, firstLine = 1,
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
    parts.push(bytes); partsBytes += bytes.length; partsLines += lines;
  };
  function* flush(): Generator<LineChunk> {
    if (partsLines === 0) return;
    const bytes = new Uint8Array(partsBytes);
    let at = 0;
    for (const p of parts) { bytes.set(p, at); at += p.length; }
    const chunk: LineChunk = { bytes, firstLine: nextLine, lines: partsLines };
    nextLine += partsLines;
    parts = []; partsBytes = 0; partsLines = 0;
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
        if (!skipping && held > maxLineBytes) { skipping = true; pieces = []; } else if (!skipping) pieces.push(buf);
        bytesRead?.(consumed);
        continue;
      }
      const total = held + nl;
      if (skipping || total > maxLineBytes) yield* overlong(total);
      else { pieces.push(buf.subarray(0, nl + 1)); take(Buffer.concat(pieces), 1); }
      pieces = []; held = 0; skipping = false;
      start = nl + 1;
      nl = buf.indexOf(10, start);
    }
    let lineStart = start;
    let lines = 0;
    for (; nl >= 0; nl = buf.indexOf(10, nl + 1)) {
      if (nl - lineStart > maxLineBytes) {
        take(buf.subarray(start, lineStart), lines);
        yield* overlong(nl - lineStart);
        start = nl + 1; lines = 0;
      } else {
        lines++;
      }
      lineStart = nl + 1;
    }
    take(buf.subarray(start, lineStart), lines);
    const rest = buf.length - lineStart;
    if (rest > 0) {
      held = rest;
      if (held > maxLineBytes) skipping = true; else pieces.push(buf.subarray(lineStart));
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
