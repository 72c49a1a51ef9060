/**
 * Where a JSONL input may be cut into shards without splitting a group.
 *
 * Selection needs every member of a group, so a shard boundary may only fall where no group has
 * members on both sides. One pass over the file finds those places: every start of a new group
 * is a candidate boundary, and when a group reappears after other groups, every candidate since
 * its first member is struck out (they are a stack, so that is a pop). With contiguous groups
 * (the candidates of one prompt together, as `ecr run` logs and most exports write them) every
 * group start survives; interleaved groups merge into larger uncuttable runs, down to one shard
 * for a file whose groups are spread all over it. Ungrouped records are one group (ECR-SPEC
 * section 5), so they constrain the cut like any other group.
 *
 * Each shard is a byte range of the original file with the line number of its first line, so a
 * worker scores it with the single-process code and every line number, default id and error
 * message comes out as a single-process run would print it, with no mapping back.
 *
 * A line that does not parse, or whose group is not a valid key, constrains nothing: the run
 * fails on it anyway, in the worker that scores it, with the single-process message.
 */
import { createReadStream } from 'node:fs';
import { GroupKeys } from '../engine/group-keys.js';
import { BLANK, FALLBACK, groupOfValue, scanGroup, type GroupValue } from './group-scan.js';

export interface ShardRange {
  /** Byte offsets [start, end) in the input. */
  start: number;
  end: number;
  /** 1-based line number of the line at `start`. */
  firstLine: number;
  /** Non-blank lines in the range (what the worker will score). */
  records: number;
}

export interface ShardPlan {
  shards: ShardRange[];
  records: number;
  bytes: number;
}

/** A growable column of doubles (offsets and counts exceed 2^32 for large files). */
class Column {
  private data = new Float64Array(1024);
  length = 0;
  push(v: number): void {
    if (this.length === this.data.length) {
      const next = new Float64Array(this.data.length * 2);
      next.set(this.data);
      this.data = next;
    }
    this.data[this.length++] = v;
  }
  get(i: number): number {
    return this.data[i];
  }
  set(i: number, v: number): void {
    while (i >= this.data.length) {
      const next = new Float64Array(this.data.length * 2);
      next.set(this.data);
      this.data = next;
    }
    this.data[i] = v;
    if (i >= this.length) this.length = i + 1;
  }
}

/** The group key of one line by a full parse (what scanGroup defers to), or undefined. */
function parsedGroupOf(text: string): GroupValue {
  try {
    return groupOfValue(JSON.parse(text));
  } catch {
    return undefined;
  }
}

/**
 * Plans the shards of `file`: cuts at allowed boundaries, each at least `shardBytes` after the
 * previous one. `lineCap` is the scorer's line-length limit; longer lines are not decoded.
 */
export async function planShards(file: string, shardBytes: number, lineCap: number): Promise<ShardPlan> {
  const groups = new GroupKeys();
  const firstOffset = new Column(); // by group index: byte offset of its first member's line
  // Candidate boundaries, ascending: offset, line number and records before it.
  const candOffset = new Column();
  const candLine = new Column();
  const candRecords = new Column();
  let previous = -1; // group index of the last record that had one
  let records = 0;
  let lineNo = 0;
  let lineStart = 0; // byte offset of the current line
  let offset = 0; // byte offset of the current chunk
  let pieces: Buffer[] = [];
  let held = 0;
  let first = true;

  const finishLine = (bytes: Buffer | null, length: number) => {
    lineNo++;
    const start = lineStart;
    const isFirst = first;
    first = false;
    let key: GroupValue;
    if (bytes === null) {
      key = undefined; // longer than the cap: an error in the worker
    } else {
      const scanned = scanGroup(bytes, 0, length);
      if (scanned === BLANK) return;
      if (scanned === FALLBACK) {
        let text = bytes.toString('utf8', 0, length);
        if (isFirst && text.charCodeAt(0) === 0xfeff) text = text.slice(1);
        if (text.trim() === '') return;
        key = parsedGroupOf(text);
      } else {
        key = scanned;
      }
    }
    records++;
    if (key === undefined) return;
    const known = groups.size;
    const g = groups.indexOf(key);
    if (g === previous) return;
    previous = g;
    if (g < known) {
      // The group reappears: no cut may separate this member from its first one.
      const since = firstOffset.get(g);
      while (candOffset.length > 0 && candOffset.get(candOffset.length - 1) > since) {
        candOffset.length--;
        candLine.length--;
        candRecords.length--;
      }
      return;
    }
    firstOffset.set(g, start);
    if (start > 0) {
      candOffset.push(start);
      candLine.push(lineNo);
      candRecords.push(records - 1);
    }
  };

  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) {
    let from = 0;
    for (let nl = chunk.indexOf(10, from); nl >= 0; nl = chunk.indexOf(10, from)) {
      const part = chunk.subarray(from, nl);
      const length = held + part.length;
      let bytes: Buffer | null = null;
      if (length <= lineCap) bytes = pieces.length === 0 ? part : Buffer.concat([...pieces, part], length);
      finishLine(bytes, length);
      pieces = [];
      held = 0;
      from = nl + 1;
      lineStart = offset + from;
    }
    const rest = chunk.length - from;
    if (rest > 0) {
      held += rest;
      if (held <= lineCap) pieces.push(chunk.subarray(from));
      else pieces = [];
    }
    offset += chunk.length;
  }
  if (held > 0) finishLine(held <= lineCap ? Buffer.concat(pieces, held) : null, held);
  const bytes = offset;

  const shards: ShardRange[] = [];
  if (records === 0) return { shards, records, bytes };
  let start = 0,
    startLine = 1,
    startRecords = 0;
  let c = 0;
  for (;;) {
    const target = start + shardBytes;
    while (c < candOffset.length && candOffset.get(c) < target) c++;
    if (c >= candOffset.length || candOffset.get(c) >= bytes) break;
    const cut = candOffset.get(c);
    shards.push({ start, end: cut, firstLine: startLine, records: candRecords.get(c) - startRecords });
    start = cut;
    startLine = candLine.get(c);
    startRecords = candRecords.get(c);
  }
  shards.push({ start, end: bytes, firstLine: startLine, records: records - startRecords });
  return { shards, records, bytes };
}
