/**
 * Record batches from a Parquet or Arrow IPC input, one at a time, so that memory holds one
 * row group (or record batch) and never the file:
 * - Arrow IPC (file or stream format) through apache-arrow's async reader over a file handle
 *   or a byte stream; a batch's buffers are views of what was read, not copies.
 * - Parquet through parquet-wasm's async reader over a file-backed Blob (fs.openAsBlob): it reads
 *   the footer, then each row group's column chunks, and decodes them in batches of
 *   `batchSize` rows, handed over as Arrow IPC and viewed by apache-arrow (one copy out of the
 *   WebAssembly memory). The library comparison behind this choice is in bench/README.md. From
 *   the build it decodes in a worker thread (parquet-reader.ts: a decoder panic must not take the
 *   process down); the sources run under the test runner decode on the calling thread.
 */
import { openAsBlob, promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { Message, RecordBatchReader, tableFromIPC, type RecordBatch, type Schema } from 'apache-arrow';
import { InputError, UsageError } from '../../core/errors.js';
import './arrow-codecs.js';
import type { DataFormat } from './format.js';
import { loadParquetWasm } from './parquet-wasm.js';
import { RING_SLOTS } from './ring.js';
import { openParquetInWorkers, parquetWorkerScript } from './parquet-reader.js';

/** Rows per batch asked of the Parquet decoder: bounds memory whatever the file's row group size. */
export const PARQUET_BATCH_ROWS = 65536;

export interface ColumnarInput {
  schema: Schema;
  batches: AsyncIterable<RecordBatch>;
  /**
   * The batches are views of reused shared memory (ColumnarOptions.reuseMemory): a batch stays
   * valid until RING_SLOTS - 1 more batches have been read; copy what must outlive that (ownedData).
   */
  transient: boolean;
  /** Releases the file (also after a partial read); a plain function, passed on detached. */
  close: () => Promise<void>;
}

const reason = (err: unknown) => (err instanceof Error ? err.message : String(err)).split('\n')[0];

export interface ColumnarOptions {
  /**
   * Read an Arrow IPC *file* (not a stream or pipe) batch by batch into a few reused
   * SharedArrayBuffers instead of a fresh buffer per batch: no page faults or zeroing per batch,
   * and the cpu backend's workers read the columns in place. The caller must then respect
   * ColumnarInput.transient.
   */
  reuseMemory?: boolean;
  /**
   * Parquet decode workers (default 1), each decoding whole row groups. On the 2-core
   * machine of issue 20 two workers decoded 1M rows in 3.34 s against one's 3.63 s, with 24% more
   * CPU time and 45% more memory (bench/parquet-decoders.sh): decoding there is bound by memory
   * traffic, not by a core. Measure before raising it.
   */
  decodeWorkers?: number;
  /**
   * Read Parquet's float list columns (steps, embeddings, policy, expected, realized) with DuckDB
   * (duckdb-lists.ts), handed over as list<list<float>> / list<float> whatever list type the
   * file declares. For scoring, which reads their values only; `ecr convert` keeps the types.
   */
  nativeLists?: boolean;
}

/** Opens `file` ('-' or a stream: `stream` is read instead) as Arrow IPC or Parquet. */
export async function openColumnar(
  file: string,
  format: Exclude<DataFormat, 'jsonl'>,
  stream: Readable | null,
  options: ColumnarOptions = {},
): Promise<ColumnarInput> {
  const decodeWorkers = Math.max(1, options.decodeWorkers ?? 1);
  return format === 'arrow' ? openArrow(file, stream, options.reuseMemory === true) : openParquet(file, stream, decodeWorkers, options.nativeLists === true);
}

async function openArrow(file: string, stream: Readable | null, reuseMemory: boolean): Promise<ColumnarInput> {
  const handle = stream ? null : await fs.open(file, 'r');
  let reader;
  try {
    reader = await (stream ? RecordBatchReader.from(stream as AsyncIterable<Uint8Array>) : RecordBatchReader.from(handle!));
    await reader.open();
    // Bytes that hold no message at all open as a reader without a schema.
    if (!reader.schema) throw new Error('no schema message');
  } catch (err) {
    const name = file === '-' ? 'stdin' : file;
    const type = unreadableType(reason(err));
    if (type !== null) {
      await handle?.close();
      throw new InputError(`${name}: ${type}`);
    }
    const why = handle ? await arrowOpenFailure(file, reason(err)) : null;
    await handle?.close();
    throw new InputError(`${name} ${why ?? `is not an Arrow IPC file or stream (${reason(err)})`}`);
  }
  const r = reader;
  // A file with dictionaries keeps apache-arrow's reader: decoded per batch from reused memory,
  // each batch would carry a dictionary of its own, which an Arrow file output cannot hold.
  const footer = handle && reuseMemory && r.isFile() && r.numDictionaries === 0 ? r.footer : null;
  const total = r.isFile() ? ` of ${r.numRecordBatches}` : '';
  async function* batches(): AsyncGenerator<RecordBatch> {
    let k = 0; // batches read whole
    try {
      if (footer) {
        for await (const b of ringBatches(handle!, footer, r.schema, (await handle!.stat()).size)) {
          k++;
          yield b;
        }
      } else {
        for await (const b of r) {
          k++;
          yield b;
        }
      }
    } catch (err) {
      const what = err instanceof InputError ? err.message : `the Arrow data is damaged (${reason(err)})`;
      throw new InputError(`${file === '-' ? 'stdin' : file}: record batch ${k + 1}${total}: ${what}`);
    }
  }
  return {
    schema: r.schema,
    batches: batches(),
    transient: footer !== null,
    close: async () => {
      await handle?.close();
    },
  };
}

/** Arrow types apache-arrow cannot decode, with how to write the column instead. */
const UNREADABLE_TYPES: Record<string, string> = {
  ListView: 'write it as a list or large_list (pyarrow: cast the column to pa.large_list(...); Polars writes large lists)',
  LargeListView: 'write it as a list or large_list (pyarrow: cast the column to pa.large_list(...); Polars writes large lists)',
  RunEndEncoded: 'write it decoded (pyarrow: pyarrow.compute.run_end_decode, or cast to the value type)',
};

/** apache-arrow's "Unrecognized type" as a sentence naming the type and the way out; null for other reasons. */
function unreadableType(why: string): string | null {
  const m = /^Unrecognized type: "(\w+)"/.exec(why);
  if (!m || m[1] === 'undefined') return null;
  const advice = UNREADABLE_TYPES[m[1]] ?? 'write the column with a basic Arrow type (list, large_list, utf8, int, float)';
  return `a column has the Arrow type ${m[1]}, which this reader cannot decode: ${advice}`;
}

/** Why an Arrow IPC file could not be opened, from its magic numbers; null when it is no Arrow file at all. */
async function arrowOpenFailure(file: string, why: string): Promise<string | null> {
  const head = new Uint8Array(8),
    tail = new Uint8Array(6);
  try {
    // Opened again: apache-arrow's reader may have closed the handle it was given.
    const handle = await fs.open(file, 'r');
    try {
      const size = (await handle.stat()).size;
      await handle.read(head, 0, 8, 0);
      if (size >= 6) await handle.read(tail, 0, 6, size - 6);
    } finally {
      await handle.close();
    }
  } catch {
    return null;
  }
  const magic = 'ARROW1';
  const text = (b: Uint8Array) => String.fromCharCode(...b.subarray(0, 6));
  if (text(head) === magic) {
    if (text(tail) !== magic)
      return 'is a truncated Arrow IPC file: it starts as one but does not end with the ARROW1 footer marker (cut short, or still being written)';
    return `is an Arrow IPC file whose footer or schema is damaged (${why})`;
  }
  if (head[0] === 0xff && head[1] === 0xff && head[2] === 0xff && head[3] === 0xff) return `is an Arrow IPC stream whose schema message is damaged (${why})`;
  return null;
}

/** Where a message lies in an Arrow IPC file (the footer's Block: metadata with its 8-byte prefix, then the body). */
interface FileBlock {
  offset: number;
  metaDataLength: number;
  bodyLength: number;
}
interface FileFooter {
  numRecordBatches: number;
  getRecordBatch(i: number): FileBlock | null;
}

async function readAt(handle: FileHandle, into: Uint8Array, position: number): Promise<void> {
  for (let done = 0; done < into.length;) {
    const { bytesRead } = await handle.read(into, done, into.length - done, position + done);
    if (bytesRead === 0) throw new InputError(`the file ends inside the record batch (at byte ${position + done})`);
    done += bytesRead;
  }
}

/**
 * The record batches of an Arrow IPC file, each read by one positioned read into a slot of a
 * ring of shared buffers, after a copy of the schema message, so that apache-arrow's synchronous reader decodes it as a one-batch stream whose columns are
 * views of the slot (no copy; messages are 8-byte aligned, so float columns need none either).
 * A file that lies about its blocks fails in that reader, as it does in apache-arrow's own.
 */
async function* ringBatches(handle: FileHandle, footer: FileFooter, schema: Schema, fileSize: number): AsyncGenerator<RecordBatch> {
  // The schema goes first as a stream message of its own, framed as 0xFFFFFFFF, the padded
  // metadata length, the metadata (made from the footer's schema: apache-arrow's own file writer
  // keeps the schema in the footer only).
  const meta = Message.encode(Message.from(schema));
  const padded = (meta.length + 7) & ~7;
  const schemaMessage = new Uint8Array(8 + padded);
  new DataView(schemaMessage.buffer).setInt32(0, -1, true);
  new DataView(schemaMessage.buffer).setInt32(4, padded, true);
  schemaMessage.set(meta, 8);
  const ring = new Array<SharedArrayBuffer | null>(RING_SLOTS).fill(null);
  for (let i = 0; i < footer.numRecordBatches; i++) {
    const block = footer.getRecordBatch(i)!;
    const messageBytes = block.metaDataLength + Number(block.bodyLength);
    // A damaged footer could ask for any size: what lies past the end of the file is not read, nor allocated.
    if (!(Number(block.offset) >= 0 && block.metaDataLength >= 0 && Number(block.offset) + messageBytes <= fileSize)) {
      throw new InputError(
        `the footer places it at bytes ${block.offset}-${Number(block.offset) + messageBytes}, outside the file's ${fileSize} bytes (the file is damaged or truncated)`,
      );
    }
    const slot = i % RING_SLOTS;
    const need = schemaMessage.length + messageBytes;
    if ((ring[slot]?.byteLength ?? -1) < need) ring[slot] = new SharedArrayBuffer(need);
    const bytes = new Uint8Array(ring[slot]!, 0, need);
    bytes.set(schemaMessage);
    await readAt(handle, bytes.subarray(schemaMessage.length), Number(block.offset));
    for (const batch of RecordBatchReader.from(bytes)) yield batch;
  }
}

async function openParquet(file: string, stream: Readable | null, decodeWorkers: number, nativeLists: boolean): Promise<ColumnarInput> {
  if (stream) {
    throw new UsageError(
      `${file === '-' ? 'stdin' : file}: Parquet is read from its footer, so it needs a regular file, not a pipe or stdin (save it to a file first, or send Arrow IPC stream format through the pipe)`,
    );
  }
  const script = parquetWorkerScript();
  if (script) {
    const p = await openParquetInWorkers(file, script, PARQUET_BATCH_ROWS, decodeWorkers, nativeLists);
    return { schema: p.schema, batches: p.batches, transient: p.transient, close: p.close };
  }
  const pw = await loadParquetWasm();
  let pf;
  try {
    pf = await pw.ParquetFile.fromFile(await openAsBlob(file));
  } catch (err) {
    throw new InputError(`${file} is not a Parquet file (${reason(err)})`);
  }
  const schemaIpc = pf.schema().intoIPCStream();
  const schema = tableFromIPC(schemaIpc).schema;
  const file_ = pf;
  async function* batches(): AsyncGenerator<RecordBatch> {
    let reader;
    try {
      reader = (await file_.stream({ batchSize: PARQUET_BATCH_ROWS })).getReader();
    } catch (err) {
      throw new InputError(`${file}: cannot read the Parquet data (${reason(err)})`);
    }
    for (;;) {
      let next;
      try {
        next = await reader.read();
      } catch (err) {
        throw new InputError(`${file}: the Parquet data is damaged or uses a feature the reader lacks (${reason(err)})`);
      }
      if (next.done) break;
      const wasmBatch = next.value as { intoIPCStream(): Uint8Array; free(): void };
      const table = tableFromIPC(wasmBatch.intoIPCStream());
      for (const b of table.batches) yield b;
    }
  }
  return {
    schema,
    batches: batches(),
    transient: false,
    close: async () => {
      file_.free();
    },
  };
}
