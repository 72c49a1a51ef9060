/**
 * Worker-thread side of the Parquet reader (parquet-reader.ts). parquet-wasm decodes here, not
 * on the main thread, because a damaged page can make its decoder panic: the WebAssembly trap
 * ("RuntimeError: unreachable") is thrown from a task parquet-wasm schedules itself, where no
 * caller can catch it, and it leaves that WebAssembly instance unusable. In a worker it ends the
 * worker only, and the main thread turns it into an input error; the decoding also overlaps the
 * main thread's checking and scoring.
 *
 * mode 'read': posts the schema and row group sizes, then one decoded batch (Arrow IPC stream
 * bytes, transferred) per 'next' request. mode 'probe': decodes one row group one column at a
 * time, saying which column it is on, to find the column a failure came from.
 */
import { openAsBlob } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { loadParquetWasm } from './parquet-wasm.js';

export type ParquetWorkerData = { mode: 'read'; file: string; batchSize: number } | { mode: 'probe'; file: string; rowGroup: number; columns: string[] };

export type ParquetWorkerMessage =
  | { kind: 'opened'; schema: Uint8Array; rowGroupRows: number[] }
  | { kind: 'batch'; ipc: Uint8Array }
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
  const reader = (await file.stream({ batchSize: data.batchSize })).getReader();
  // One batch per request of the parent; a failure is posted to it, so the read never rejects.
  const readNext = async () => {
    try {
      const next = await reader.read();
      if (next.done) {
        post({ kind: 'end' });
        return;
      }
      // into*: the batch's memory passes to the IPC bytes (nothing left to free).
      const ipc = (next.value as { intoIPCStream(): Uint8Array }).intoIPCStream();
      post({ kind: 'batch', ipc }, [ipc.buffer as ArrayBuffer]);
    } catch (err) {
      post({ kind: 'failed', stage: 'read', message: messageOf(err) });
    }
  };
  port.on('message', () => {
    void readNext();
  });
}

main().catch((err) => post({ kind: 'failed', stage: 'open', message: messageOf(err) }));
