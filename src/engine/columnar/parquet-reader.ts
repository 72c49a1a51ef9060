/**
 * Record batches of a Parquet file, decoded by parquet-wasm in worker threads (parquet-worker.ts
 * says why), slice by slice on several workers at once (parquet-wasm decodes on one thread, and
 * decoding is most of a Parquet run's time). Any decoder failure, an error or a panic that ends a
 * worker, becomes one InputError naming the file, the row group and the column: the row group of
 * the slice that failed, the column by decoding that row group again one column at a time in a
 * fresh worker.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { tableFromIPC, type RecordBatch, type Schema } from 'apache-arrow';
import { InputError } from '../../core/errors.js';
import type { ParquetSlice, ParquetWorkerData, ParquetWorkerMessage, ParquetWorkerRequest } from './parquet-worker.js';
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
 * The slices the file is decoded in: each row group cut into pieces of at most `sliceRows` rows,
 * so that a file written as one big row group (pyarrow's default is 1M rows) still spreads over
 * the workers and memory stays bounded by the slice, not the row group.
 */
export function planSlices(rowGroupRows: readonly number[], sliceRows: number): ParquetSlice[] {
  const slices: ParquetSlice[] = [];
  rowGroupRows.forEach((rows, rowGroup) => {
    for (let offset = 0; offset < rows; offset += sliceRows) slices.push({ rowGroup, offset, limit: Math.min(sliceRows, rows - offset) });
  });
  return slices;
}

/**
 * Opens `file` in `workers` decode workers (at least one; no more than there are slices). Worker
 * k decodes slices k, k + workers, ...; the batches are yielded in file order, each worker one
 * slice ahead, so at most `workers` slices are decoded and waiting at any time.
 */
export async function openParquetInWorkers(file: string, script: URL, sliceRows: number, workers: number): Promise<ParquetInput> {
  const first = new WorkerChannel(script, { mode: 'read', file });
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
  const slices = planSlices(rowGroupRows, sliceRows);
  const channels = [first];
  for (let k = 1; k < Math.min(workers, slices.length); k++) channels.push(new WorkerChannel(script, { mode: 'read', file }));
  const closeAll = async () => {
    await Promise.all(channels.map((c) => c.close()));
  };
  channels.forEach((c, k) => c.tell({ kind: 'plan', slices: slices.filter((_, i) => i % channels.length === k) }));

  async function* batches(): AsyncGenerator<RecordBatch> {
    // The first row (0-based) of each row group, to place a failure.
    const groupStart = rowGroupRows.map((_, g) => rowGroupRows.slice(0, g).reduce((a, b) => a + b, 0));
    for (const c of channels) c.tell({ kind: 'next' });
    for (let i = 0; i < slices.length; i++) {
      const channel = channels[i % channels.length];
      const rowsBefore = groupStart[slices[i].rowGroup] + slices[i].offset;
      let m: ParquetWorkerMessage;
      try {
        // A worker that is not yet open reports its own open failure here, as any other.
        do m = await channel.take();
        while (m.kind === 'opened');
      } catch (err) {
        throw await damaged(file, script, schema, rowGroupRows, rowsBefore, reasonOf(err));
      }
      if (m.kind !== 'batch') throw await damaged(file, script, schema, rowGroupRows, rowsBefore, m.kind === 'failed' ? m.message : m.kind);
      channel.tell({ kind: 'next' }); // this worker's next slice decodes while this one is checked and scored
      const decoded: RecordBatch[] = [];
      try {
        m.ipc.forEach((bytes, piece) => {
          const pieceBatches = tableFromIPC(bytes).batches;
          const bounds = m.bounds[piece];
          if (bounds && pieceBatches.length === 1) rememberBounds(pieceBatches[0], bounds);
          decoded.push(...pieceBatches);
        });
      } catch (err) {
        throw await damaged(file, script, schema, rowGroupRows, rowsBefore, reasonOf(err));
      }
      yield* decoded;
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
