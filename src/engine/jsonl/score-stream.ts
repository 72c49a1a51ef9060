/**
 * The JSONL engine of `ecr score`: bytes in, result lines out, in input order.
 *
 * The main thread cuts the input into chunks of whole lines (io/lines.ts) and hands them to
 * the parse workers (jsonl-workers.ts), which parse and validate them into typed arrays. Their
 * results are taken in input order: records go into windows of `windowSize`, each window is
 * scored (packed-window.ts) and offered to one selector for the whole input, and its result
 * lines are formatted on a worker while the next windows are parsed and scored. Invalid lines are
 * merged in line order with the records, so the same windows are scored and the same errors
 * reported as line by line on one thread.
 *
 * When the input is larger than one window, results wait in a temporary file until the
 * selection is known, then are written out in input order with their `selected` flag. Nothing
 * is written if any record is invalid.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { InputError } from '../../core/errors.js';
import { GroupSelector } from '../../core/select.js';
import { GroupKeys } from '../group-keys.js';
import { DEFAULT_CHUNK_BYTES, lineChunks, overlongLineError, type SkippedLine } from '../io/lines.js';
import { ARRAY_HINT, MAX_REPORTED_ERRORS, type ParsedChunk } from './jsonl-parse.js';
import { JsonlWorkers } from './jsonl-workers.js';
import { PackedWindow } from './packed-window.js';
import { temporaryDirectory } from '../io/temporary.js';
import { Progress } from '../io/progress.js';
import { Sink } from '../io/sink.js';
import { SelectedFlags } from '../../core/result-line.js';
import type { ScoreSettings } from '../window-scorer.js';

/** The engine's settings, with the JSONL path's own. */
export interface JsonlScoreSettings extends ScoreSettings {
  windowSize: number;
  lineCap: number;
  /** Parse worker threads; 0 parses on the calling thread. */
  threads: number;
  /**
   * Parse workers owned by the caller, made with this same configuration (they format pCorrect
   * with its calibration map); left running afterwards. Absent: `threads` workers for this call.
   */
  parseWorkers?: JsonlWorkers;
  /** Line number of the source's first line (default 1; a shard of a file, src/queue/, starts further on). */
  firstLine?: number;
  /** Bytes per chunk handed to a worker (default 1 MiB). */
  chunkBytes?: number;
  /** The input's size in bytes when known (a regular file), for the progress line's ETA. */
  inputBytes?: number | null;
  /** Where the progress line goes (default stderr; nothing unless it is a terminal). */
  progress?: Progress;
  /** Filled with the names of the backends that scored (a queue worker reports them per shard). */
  backendsUsed?: Set<string>;
}

/** Results of all windows so far, on disk, once the input outgrew one window. */
interface Spill {
  dir: string;
  file: string;
  sink: Sink;
  forget: () => void;
}

async function startSpill(): Promise<Spill> {
  const { dir, forget } = await temporaryDirectory();
  const file = path.join(dir, 'results.jsonl');
  return { dir, file, sink: new Sink(createWriteStream(file), `temporary results in ${dir}`), forget };
}

/** A promise whose rejection is handled later, when it is awaited in turn (not reported as unhandled meanwhile). */
function queued<T>(p: Promise<T>): Promise<T> {
  p.catch(() => {});
  return p;
}

/**
 * Scores every record of `source` (a whole file, a byte range of one, or a pipe) and writes the
 * results to `sink`; returns the record count.
 */
export async function scoreStream(source: Readable, s: JsonlScoreSettings, sink: Sink): Promise<number> {
  // A caller scoring many sources (ecr worker, one per shard) keeps one pool for all of them.
  const workers = s.parseWorkers ?? new JsonlWorkers(s.threads, s.config);
  const groups = new GroupKeys();
  const selector = new GroupSelector(s.config.tau);
  const window = new PackedWindow(groups);
  const progress = s.progress ?? new Progress('ecr score');
  const errors: string[] = [];
  const backendsUsed = s.backendsUsed ?? new Set<string>();
  let looksLikeArray = false;
  let pending = ''; // result lines of the first window, kept in memory
  // Assigned inside emit(); the annotation keeps TypeScript from narrowing it to null below.
  let spill = null as Spill | null;
  let scored = 0;
  let windowsWritten = 0;
  let bytesDone = 0;
  const detail = () => ({ bytesDone, bytesTotal: s.inputBytes, backend: [...backendsUsed].join('+') || undefined });

  // Each queue holds work in flight, oldest first; bounded so memory stays bounded.
  const inFlight = Math.max(2, 2 * workers.threads);
  const parses: Promise<ParsedChunk | SkippedLine>[] = [];
  const formats: Promise<string>[] = [];

  const emit = async (text: string) => {
    if (spill) {
      await spill.sink.write(text);
    } else if (windowsWritten === 0) {
      pending = text;
    } else {
      // A second window: move everything to a temporary file to keep memory bounded.
      spill = await startSpill();
      await spill.sink.write(pending);
      await spill.sink.write(text);
      pending = '';
    }
    windowsWritten++;
  };
  const drainFormats = async (keep: number) => {
    while (formats.length > keep) await emit(await formats.shift()!);
  };

  const flush = async () => {
    if (window.size === 0) return;
    if (errors.length > 0) {
      window.clear();
      return;
    }
    const w = await window.score(scored, s, selector);
    for (const b of w.backends) backendsUsed.add(b);
    scored += w.admissible.length;
    formats.push(queued(workers.format(w)));
    await drainFormats(inFlight);
    progress.update(scored, detail());
  };

  const addRecords = async (chunk: ParsedChunk, from: number, to: number) => {
    while (from < to) {
      const take = Math.min(to - from, s.windowSize - window.size);
      window.add(chunk, from, from + take);
      from += take;
      if (window.size >= s.windowSize) await flush();
    }
  };

  /** Takes one parsed item in input order; false once enough invalid lines were seen. */
  const consume = async (item: ParsedChunk | SkippedLine): Promise<boolean> => {
    if ('overlong' in item) {
      errors.push(overlongLineError(item.overlong, s.lineCap, item.line).message);
      return errors.length < MAX_REPORTED_ERRORS;
    }
    const chunk = item;
    let at = 0;
    for (const e of chunk.errors) {
      await addRecords(chunk, at, e.before);
      at = e.before;
      errors.push(e.message);
      if (e.arrayLike) looksLikeArray = true;
      if (errors.length >= MAX_REPORTED_ERRORS) return false;
    }
    await addRecords(chunk, at, chunk.count);
    return true;
  };

  try {
    let going = true;
    for await (const item of lineChunks(
      source,
      s.lineCap,
      s.chunkBytes ?? DEFAULT_CHUNK_BYTES,
      (n) => {
        bytesDone = n;
      },
      s.firstLine ?? 1,
    )) {
      parses.push(queued<ParsedChunk | SkippedLine>('overlong' in item ? Promise.resolve(item) : workers.parse(item)));
      while (parses.length > inFlight && going) going = await consume(await parses.shift()!);
      if (!going) break;
    }
    while (parses.length > 0 && going) going = await consume(await parses.shift()!);
    parses.length = 0;
    await flush();
    if (errors.length > 0) {
      const more = errors.length >= MAX_REPORTED_ERRORS ? `\n(stopped after ${MAX_REPORTED_ERRORS} invalid lines)` : '';
      const hint = looksLikeArray ? `\n${ARRAY_HINT}` : '';
      throw new InputError(`${errors.length} invalid line${errors.length > 1 ? 's' : ''}; nothing was written:\n  ${errors.join('\n  ')}${more}${hint}`);
    }
    await drainFormats(0);

    const flags = new SelectedFlags(selector.selectedIndices());
    if (!spill) {
      await sink.write(flags.finishLines(Buffer.from(pending)));
    } else {
      await spill.sink.finish();
      let carry: Buffer | null = null;
      for await (const piece of createReadStream(spill.file, { highWaterMark: 4 << 20 }) as AsyncIterable<Buffer>) {
        const bytes: Buffer = carry ? Buffer.concat([carry, piece]) : piece;
        const end = bytes.lastIndexOf(10) + 1;
        carry = end < bytes.length ? bytes.subarray(end) : null;
        if (end > 0) await sink.write(flags.finishLines(bytes.subarray(0, end)));
      }
      // Every result line ends in a newline; anything after the last one means the file was damaged.
      if (carry) throw new Error(`temporary results in ${spill.dir} are damaged (${carry.length} bytes after the last line)`);
    }
    progress.done(scored, detail());
    return scored;
  } finally {
    if (!s.parseWorkers) await workers.close();
    if (spill) {
      await rm(spill.dir, { recursive: true, force: true });
      spill.forget();
    }
  }
}
