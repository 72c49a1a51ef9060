/**
 * Record batches of a Parquet file, decoded by parquet-wasm in a worker thread
 * (parquet-worker.ts says why), one batch read ahead. Any decoder failure, an error or a panic
 * that ends the worker, becomes one InputError naming the file, the row group and the column:
 * the row group from the rows received before the failure, the column by decoding that row
 * group again one column at a time in a fresh worker.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { tableFromIPC, type RecordBatch, type Schema } from 'apache-arrow';
import { InputError } from '../../core/errors.js';
import type { ParquetWorkerData, ParquetWorkerMessage } from './parquet-worker.js';

/** The worker script, when this module runs from the build (tests of src/ read on the calling thread). */
export function parquetWorkerScript(): URL | null {
  const url = new URL('./parquet-worker.js', import.meta.url);
  return url.protocol === 'file:' && existsSync(fileURLToPath(url)) ? url : null;
}

/** A worker's messages as a queue; a worker that dies (a panic) rejects the pending and later takes. */
class WorkerChannel {
  private readonly worker: Worker;
  private readonly queue: ParquetWorkerMessage[] = [];
  private waiting: { resolve: (m: ParquetWorkerMessage) => void; reject: (e: Error) => void } | null = null;
  private death: Error | null = null;

  constructor(script: URL, data: ParquetWorkerData) {
    // As in the other worker pools: --input-type is legal only with --eval and would stop the script loading.
    const execArgv = process.execArgv.filter((a) => !a.startsWith('--input-type'));
    this.worker = new Worker(script, { execArgv, workerData: data });
    this.worker.on('message', (m: ParquetWorkerMessage) => {
      if (this.waiting) {
        const w = this.waiting;
        this.waiting = null;
        w.resolve(m);
      } else this.queue.push(m);
    });
    const die = (err: Error) => {
      this.death ??= err;
      if (this.waiting) {
        const w = this.waiting;
        this.waiting = null;
        w.reject(this.death);
      }
    };
    this.worker.on('error', die);
    this.worker.on('exit', (code) => die(new Error(`the decoder stopped (exit ${code})`)));
  }

  take(): Promise<ParquetWorkerMessage> {
    const m = this.queue.shift();
    if (m) return Promise.resolve(m);
    if (this.death) return Promise.reject(this.death);
    return new Promise((resolve, reject) => {
      this.waiting = { resolve, reject };
    });
  }

  ask(): void {
    this.worker.postMessage('next');
  }

  async close(): Promise<void> {
    this.worker.removeAllListeners('exit');
    this.worker.on('exit', () => {});
    await this.worker.terminate();
  }
}

const reasonOf = (err: unknown) => {
  const text = (err instanceof Error ? err.message : String(err)).split('\n')[0];
  // A WebAssembly trap says nothing to a user beyond "the decoder failed".
  return (err as Error | null)?.name === 'RuntimeError' || /^unreachable$/.test(text) ? 'the decoder failed on it' : text;
};

export interface ParquetInput {
  schema: Schema;
  batches: AsyncIterable<RecordBatch>;
  close: () => Promise<void>;
}

export async function openParquetInWorker(file: string, script: URL, batchSize: number): Promise<ParquetInput> {
  const channel = new WorkerChannel(script, { mode: 'read', file, batchSize });
  let opened: ParquetWorkerMessage;
  try {
    opened = await channel.take();
  } catch (err) {
    await channel.close();
    throw new InputError(`${file} is not a Parquet file (${reasonOf(err)})`);
  }
  if (opened.kind !== 'opened') {
    await channel.close();
    throw new InputError(`${file} is not a Parquet file (${opened.kind === 'failed' ? opened.message : opened.kind})`);
  }
  const schema = tableFromIPC(opened.schema).schema;
  const rowGroupRows = opened.rowGroupRows;

  async function* batches(): AsyncGenerator<RecordBatch> {
    let rows = 0;
    channel.ask();
    for (;;) {
      let m: ParquetWorkerMessage;
      try {
        m = await channel.take();
      } catch (err) {
        throw await damaged(file, script, schema, rowGroupRows, rows, reasonOf(err));
      }
      if (m.kind === 'end') return;
      if (m.kind !== 'batch') throw await damaged(file, script, schema, rowGroupRows, rows, m.kind === 'failed' ? m.message : m.kind);
      channel.ask(); // the next batch decodes while this one is checked and scored
      let batch;
      try {
        batch = tableFromIPC(m.ipc).batches;
      } catch (err) {
        throw await damaged(file, script, schema, rowGroupRows, rows, reasonOf(err));
      }
      for (const b of batch) {
        rows += b.numRows;
        yield b;
      }
    }
  }
  return { schema, batches: batches(), close: () => channel.close() };
}

/**
 * The InputError for a decoding failure after `rowsBefore` rows: the row group holding the next
 * row, and the first column that fails when the row group is decoded a column at a time.
 */
async function damaged(file: string, script: URL, schema: Schema, rowGroupRows: number[], rowsBefore: number, reason: string): Promise<InputError> {
  let group = 0,
    first = 0;
  while (group < rowGroupRows.length - 1 && first + rowGroupRows[group] <= rowsBefore) first += rowGroupRows[group++];
  const where = `row group ${group + 1} of ${rowGroupRows.length} (rows ${first + 1}-${first + (rowGroupRows[group] ?? 0)})`;
  const column = await failingColumn(
    file,
    script,
    group,
    schema.fields.map((f) => f.name),
  );
  const which = column ? `, column "${column.name}"` : '';
  const why = column?.reason ?? reason;
  return new InputError(`${file}: ${where}${which}: the Parquet data is damaged or uses a feature the reader lacks (${why})`);
}

async function failingColumn(file: string, script: URL, rowGroup: number, columns: string[]): Promise<{ name: string; reason: string } | null> {
  const probe = new WorkerChannel(script, { mode: 'probe', file, rowGroup, columns });
  let current: string | null = null;
  try {
    for (;;) {
      const m = await probe.take();
      if (m.kind === 'probing') current = m.column;
      else if (m.kind === 'probed') return m.column === null ? null : { name: m.column, reason: m.message ?? '' };
      else return null;
    }
  } catch (err) {
    return current === null ? null : { name: current, reason: reasonOf(err) };
  } finally {
    await probe.close();
  }
}
