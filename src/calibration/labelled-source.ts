/**
 * The input of `ecr calibrate` and `ecr maturity` as a stream of records, read as `ecr score`
 * reads its input: JSONL a line at a time (engine/io/lines.ts), Parquet and Arrow a record batch
 * at a time (columnar-rows.ts), so that memory holds a window of the input, never the file. The
 * sha256 of the input's bytes, which the calibration's provenance records, is taken as they pass.
 */
import { createHash, type Hash } from 'node:crypto';
import { createReadStream, createWriteStream, promises as fs } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { InputError, UsageError } from '../core/errors.js';
import type { DataFormat } from '../engine/columnar/format.js';
import { DEFAULT_MAX_LINE_BYTES, overlongLineError, readLines } from '../engine/io/lines.js';
import { temporaryDirectory } from '../engine/io/temporary.js';
import { checkedJsonlStream } from '../engine/jsonl/not-jsonl.js';
import { parseJsonLine } from '../engine/record.js';

/** One record of the input: a JSONL line's object or a Parquet/Arrow row's, and where it is. */
export interface LabelledItem {
  value: Record<string, unknown>;
  /** Its 1-based line or row. */
  number: number;
  here: { line: number } | { row: number };
}

export interface LabelledSource {
  items: AsyncIterable<LabelledItem>;
  /** The sha256 of the input's bytes, known once `items` has been read to its end. */
  sha256(): string;
}

const READ_BYTES = 1 << 20;

/** `source`'s bytes, added to `hash` as they pass; a read failure is the usage error "cannot read". */
async function* hashed(source: AsyncIterable<Buffer>, hash: Hash, file: string): AsyncGenerator<Buffer> {
  try {
    for await (const chunk of source) {
      hash.update(chunk);
      yield chunk;
    }
  } catch (err) {
    throw new UsageError(`${file}: cannot read (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
}

const byteStream = (file: string): AsyncIterable<Buffer> => (file === '-' ? process.stdin : createReadStream(file, { highWaterMark: READ_BYTES }));

async function isRegularFile(file: string): Promise<boolean> {
  if (file === '-') return false;
  let code: string;
  try {
    const st = await fs.stat(file);
    if (!st.isDirectory()) return st.isFile();
    code = 'EISDIR';
  } catch (err) {
    code = (err as NodeJS.ErrnoException).code ?? String(err);
  }
  throw new UsageError(`${file}: cannot read (${code})`);
}

async function* jsonlItems(bytes: AsyncIterable<Buffer>, file: string): AsyncGenerator<LabelledItem> {
  let line = 0;
  for await (const text of readLines(checkedJsonlStream(bytes, file), DEFAULT_MAX_LINE_BYTES)) {
    line++;
    if (typeof text !== 'string') throw overlongLineError(text, DEFAULT_MAX_LINE_BYTES, line);
    if (text.trim() === '') continue;
    const value = parseJsonLine(text, line);
    if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new InputError('must be a JSON object', { line, field: '(record)' });
    yield { value: value as Record<string, unknown>, number: line, here: { line } };
  }
}

async function* columnarItems(file: string, format: Exclude<DataFormat, 'jsonl'>): AsyncGenerator<LabelledItem> {
  // Loaded only for a columnar input: apache-arrow costs ~0.1 s to load, which JSONL runs (and the library import) should not pay.
  const { columnarRows } = await import('./columnar-rows.js');
  for await (const { row, value } of columnarRows(file, format)) yield { value, number: row, here: { row } };
}

/**
 * A Parquet or Arrow input that is not a regular file (stdin, a pipe) is first copied to a
 * temporary file: Parquet is read from its footer, and so every byte is hashed, whatever the
 * reader leaves unread. Messages name the input, not the copy.
 */
async function* spooledItems(bytes: AsyncIterable<Buffer>, file: string, format: Exclude<DataFormat, 'jsonl'>): AsyncGenerator<LabelledItem> {
  const { dir, forget } = await temporaryDirectory();
  const copy = path.join(dir, `input.${format}`);
  try {
    await pipeline(Readable.from(bytes), createWriteStream(copy));
    try {
      yield* columnarItems(copy, format);
    } catch (err) {
      if (err instanceof InputError && err.message.includes(copy)) throw new InputError(err.message.split(copy).join(file === '-' ? 'stdin' : file));
      throw err;
    }
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
    forget();
  }
}

/** Opens `file` ('-': stdin) in `format`. */
export async function openLabelledSource(file: string, format: DataFormat): Promise<LabelledSource> {
  const hash = createHash('sha256');
  let digest: string | null = null;
  const sha256 = () => (digest ??= hash.digest('hex'));
  if (format === 'jsonl') return { items: jsonlItems(hashed(byteStream(file), hash, file), file), sha256 };
  if (await isRegularFile(file)) {
    // The columnar reader reads by position: the bytes are hashed in a pass of their own.
    for await (const chunk of hashed(byteStream(file), hash, file)) void chunk;
    return { items: columnarItems(file, format), sha256 };
  }
  return { items: spooledItems(hashed(byteStream(file), hash, file), file, format), sha256 };
}
