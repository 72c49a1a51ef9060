/**
 * Record batches from a Parquet or Arrow IPC input, one at a time, so that memory holds one
 * row group (or record batch) and never the file:
 * - Arrow IPC (file or stream format) through apache-arrow's async reader over a file handle
 *   or a byte stream; a batch's buffers are views of what was read, not copies.
 * - Parquet through parquet-wasm's async reader over a file-backed Blob (fs.openAsBlob): it reads
 *   the footer, then each row group's column chunks, and decodes them in batches of
 *   `batchSize` rows, handed over as Arrow IPC and viewed by apache-arrow (one copy out of the
 *   WebAssembly memory). The library comparison behind this choice is in bench/README.md.
 */
import { openAsBlob, promises as fs } from 'node:fs';
import type { Readable } from 'node:stream';
import { RecordBatchReader, tableFromIPC, type RecordBatch, type Schema } from 'apache-arrow';
import { InputError, UsageError } from '../errors.js';
import type { DataFormat } from './format.js';
import { loadParquetWasm } from './parquet-wasm.js';

/** Rows per batch asked of the Parquet decoder: bounds memory whatever the file's row group size. */
export const PARQUET_BATCH_ROWS = 65536;

export interface ColumnarInput {
  schema: Schema;
  batches: AsyncIterable<RecordBatch>;
  /** Releases the file (also after a partial read). */
  close(): Promise<void>;
}

const reason = (err: unknown) => (err instanceof Error ? err.message : String(err)).split('\n')[0];

/** Opens `file` ('-' or a stream: `stream` is read instead) as Arrow IPC or Parquet. */
export async function openColumnar(file: string, format: Exclude<DataFormat, 'jsonl'>, stream: Readable | null): Promise<ColumnarInput> {
  return format === 'arrow' ? openArrow(file, stream) : openParquet(file, stream);
}

async function openArrow(file: string, stream: Readable | null): Promise<ColumnarInput> {
  const handle = stream ? null : await fs.open(file, 'r');
  let reader;
  try {
    reader = await (stream ? RecordBatchReader.from(stream as AsyncIterable<Uint8Array>) : RecordBatchReader.from(handle!));
    await reader.open();
  } catch (err) {
    await handle?.close();
    throw new InputError(`${file === '-' ? 'stdin' : file} is not an Arrow IPC file or stream (${reason(err)})`);
  }
  const r = reader;
  async function* batches(): AsyncGenerator<RecordBatch> {
    try {
      for await (const b of r) yield b;
    } catch (err) {
      if (err instanceof InputError) throw err;
      throw new InputError(`${file}: the Arrow data is damaged (${reason(err)})`);
    }
  }
  return { schema: r.schema, batches: batches(), close: async () => { await handle?.close(); } };
}

async function openParquet(file: string, stream: Readable | null): Promise<ColumnarInput> {
  if (stream) {
    throw new UsageError(`${file === '-' ? 'stdin' : file}: Parquet is read from its footer, so it needs a regular file, not a pipe or stdin (save it to a file first, or send Arrow IPC stream format through the pipe)`);
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
  return { schema, batches: batches(), close: async () => { file_.free(); } };
}
