/**
 * Record batches of a Parquet file, decoded by parquet-wasm in worker threads (parquet-worker.ts
 * says why), by row group, on one or more workers. Any decoder failure, an error or a panic that
 * ends a worker, becomes one InputError naming the file, the row group and the column: the row
 * group from the rows received before the failure, the column by decoding that row group again
 * one column at a time in a fresh worker.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { tableFromIPC, type RecordBatch, type Schema } from 'apache-arrow';
import { InputError } from '../../core/errors.js';
import type { ParquetWorkerData, ParquetWorkerMessage, ParquetWorkerRequest } from './parquet-worker.js';
import { rememberBounds } from './value-bounds.js';

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

  tell(request: ParquetWorkerRequest): void {
    this.worker.postMessage(request);
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

/**
 * Opens `file` in `workers` decode workers (at least one; no more than there are row groups).
 * Worker k decodes row groups k, k + workers, ..., each as a stream of batches of at most
 * `batchSize` rows (memory stays bounded by the batch, not the row group). The batches are
 * yielded in file order, each worker one batch ahead.
 *
 * Row groups are not cut into slices by row offset: without an offset index (pyarrow and DuckDB
 * write none by default) every slice decodes its row group from the start, which made a
 * DuckDB-written file of one 400K-row group 1.7x slower to score.
 */
export async function openParquetInWorkers(file: string, script: URL, batchSize: number, workers: number): Promise<ParquetInput> {
  const first = new WorkerChannel(script, { mode: 'read', file, batchSize });
  let opened: ParquetWorkerMessage;
  try {
    opened = await first.take();
  } catch (err) {
    await first.close();
    throw new InputError(`${file} is not a Parquet file (${reasonOf(err)})`);
  }
  if (opened.kind !== 'opened') {
    await first.close();
    throw new InputError(`${file} is not a Parquet file (${opened.kind === 'failed' ? opened.message : opened.kind})`);
  }
  const schema = tableFromIPC(opened.schema).schema;
  const rowGroupRows = opened.rowGroupRows;
  const channels = [first];
  for (let k = 1; k < Math.min(workers, rowGroupRows.length); k++) channels.push(new WorkerChannel(script, { mode: 'read', file, batchSize }));
  const closeAll = async () => {
    await Promise.all(channels.map((c) => c.close()));
  };
  channels.forEach((c, k) => c.tell({ kind: 'plan', rowGroups: rowGroupRows.map((_, g) => g).filter((g) => g % channels.length === k) }));

  async function* batches(): AsyncGenerator<RecordBatch> {
    let rows = 0;
    for (const c of channels) c.tell({ kind: 'next' });
    for (let g = 0; g < rowGroupRows.length; g++) {
      const channel = channels[g % channels.length];
      for (;;) {
        let m: ParquetWorkerMessage;
        try {
          // A worker other than the first reports its own opening here first.
          do m = await channel.take();
          while (m.kind === 'opened');
        } catch (err) {
          throw await damaged(file, script, schema, rowGroupRows, rows, reasonOf(err));
        }
        if (m.kind !== 'batch' && m.kind !== 'rowGroupEnd') {
          throw await damaged(file, script, schema, rowGroupRows, rows, m.kind === 'failed' ? m.message : m.kind);
        }
        channel.tell({ kind: 'next' }); // the worker's next batch decodes while this one is checked and scored
        if (m.kind === 'rowGroupEnd') break;
        let decoded;
        try {
          decoded = tableFromIPC(m.ipc).batches;
        } catch (err) {
          throw await damaged(file, script, schema, rowGroupRows, rows, reasonOf(err));
        }
        if (m.bounds && decoded.length === 1) rememberBounds(decoded[0], m.bounds);
        for (const b of decoded) {
          rows += b.numRows;
          yield b;
        }
      }
    }
  }
  return { schema, batches: batches(), close: closeAll };
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
