/**
 * Worker-thread side of the Parquet reader (parquet-reader.ts). parquet-wasm decodes here, not
 * on the main thread, because a damaged page can make its decoder panic: the WebAssembly trap
 * ("RuntimeError: unreachable") is thrown from a task parquet-wasm schedules itself, where no
 * caller can catch it, and it leaves that WebAssembly instance unusable. In a worker it ends the
 * worker only, and the main thread turns it into an input error; the decoding also overlaps the
 * main thread's checking and scoring.
 *
 * mode 'read': posts the schema and row group sizes; then, given a plan (the row groups this
 * worker decodes, in order: several workers may share a file), one decoded batch per 'next'
 * request, as Arrow IPC stream bytes (transferred) with the bounds of each column's float values
 * (value-bounds.ts: the range check's pass over the values happens here, beside the decode), and
 * 'rowGroupEnd' after a row group's last batch.
 * mode 'probe': decodes one row group one column at a time, saying which column it is on, to
 * find the column a failure came from.
 */
import { openAsBlob } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { tableFromIPC } from 'apache-arrow';
import { loadParquetWasm } from './parquet-wasm.js';
import { batchBounds, type ValueBounds } from './value-bounds.js';

export type ParquetWorkerData =
  { mode: 'read'; file: string; batchSize: number; columns?: string[] } | { mode: 'probe'; file: string; rowGroup: number; columns: string[] };

/** Per column, the bounds of its float values (value-bounds.ts); null for the whole batch when unknown. */
export type ColumnBounds = (ValueBounds | null)[] | null;

/** The plan: which row groups to decode, in order, and which columns (all when absent). */
export type ParquetWorkerRequest = { kind: 'plan'; rowGroups: number[]; columns?: string[] } | { kind: 'next' };

export type ParquetWorkerMessage =
  | { kind: 'opened'; schema: Uint8Array; rowGroupRows: number[] }
  | { kind: 'batch'; ipc: Uint8Array; bounds: ColumnBounds }
  | { kind: 'rowGroupEnd' }
  | { kind: 'end' }
  | { kind: 'failed'; stage: 'open' | 'read'; message: string }
  | { kind: 'probing'; column: string }
  | { kind: 'probed'; column: string | null; message?: string };

const port = parentPort!;
const data = workerData as ParquetWorkerData;
const post = (m: ParquetWorkerMessage, transfer: ArrayBuffer[] = []) => port.postMessage(m, transfer);
const messageOf = (err: unknown) => (err instanceof Error ? err.message : String(err)).split('\n')[0];

async function main(): Promise<void> {
  const pw = await loadParquetWasm();
  let file;
  try {
    file = await pw.ParquetFile.fromFile(await openAsBlob(data.file));
  } catch (err) {
    post({ kind: 'failed', stage: 'open', message: messageOf(err) });
    return;
  }
  if (data.mode === 'probe') {
    for (const column of data.columns) {
      post({ kind: 'probing', column });
      try {
        (await file.read({ rowGroups: [data.rowGroup], columns: [column] })).free();
      } catch (err) {
        post({ kind: 'probed', column, message: messageOf(err) });
        return;
      }
    }
    post({ kind: 'probed', column: null });
    return;
  }
  const metadata = file.metadata();
  const rowGroupRows = Array.from({ length: metadata.numRowGroups() }, (_, i) => metadata.rowGroup(i).numRows());
  post({ kind: 'opened', schema: file.schema().intoIPCStream(), rowGroupRows });
  let rowGroups: number[] = [];
  let columns: string[] | undefined;
  let nextGroup = 0;
  let reader: ReadableStreamDefaultReader<unknown> | null = null;
  // One batch per request of the parent, or the end of the row group it is in; a failure is
  // posted to the parent, so the read never rejects.
  const readNext = async () => {
    try {
      if (!reader) {
        if (nextGroup >= rowGroups.length) {
          post({ kind: 'end' });
          return;
        }
        reader = (await file.stream({ rowGroups: [rowGroups[nextGroup++]], batchSize: data.batchSize, columns })).getReader();
      }
      const r = await reader.read();
      if (r.done) {
        reader = null;
        post({ kind: 'rowGroupEnd' });
        return;
      }
      // into*: the batch's memory passes to the IPC bytes (nothing left to free).
      const ipc = (r.value as { intoIPCStream(): Uint8Array }).intoIPCStream();
      const batches = tableFromIPC(ipc).batches;
      post({ kind: 'batch', ipc, bounds: batches.length === 1 ? batchBounds(batches[0]) : null }, [ipc.buffer as ArrayBuffer]);
    } catch (err) {
      post({ kind: 'failed', stage: 'read', message: messageOf(err) });
    }
  };
  port.on('message', (m: ParquetWorkerRequest) => {
    if (m.kind === 'plan') ({ rowGroups, columns } = m);
    else void readNext();
  });
}

main().catch((err) => post({ kind: 'failed', stage: 'open', message: messageOf(err) }));
