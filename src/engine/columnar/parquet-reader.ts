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
import { Field, RecordBatch, Schema, Struct, makeData, tableFromIPC } from 'apache-arrow';
import { DuckDbLists, closeDuckDb, listColumnsOf, listTypeOf, type DuckDbConnection, type ListColumn } from './duckdb-lists.js';
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
  /** The batches' float lists are views of reused memory (ColumnarInput.transient). */
  transient: boolean;
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
export async function openParquetInWorkers(file: string, script: URL, batchSize: number, workers: number, nativeLists = false): Promise<ParquetInput> {
  const first = new WorkerChannel(script, { mode: 'read', file, batchSize });
  // DuckDB loads while the worker reads the schema. Where it cannot load (no build of its native
  // module for this platform), parquet-wasm reads every column, as before DuckDB was used.
  const duckdb = nativeLists ? DuckDbLists.connect().catch(() => null) : null;
  const dropDuckDb = async () => {
    const db = await duckdb;
    if (db) closeDuckDb(db);
  };
  let opened: ParquetWorkerMessage;
  try {
    opened = await first.take();
  } catch (err) {
    await first.close();
    await dropDuckDb();
    throw new InputError(`${file} is not a Parquet file (${reasonOf(err)})`);
  }
  if (opened.kind !== 'opened') {
    await first.close();
    await dropDuckDb();
    throw new InputError(`${file} is not a Parquet file (${opened.kind === 'failed' ? opened.message : opened.kind})`);
  }
  const schema = tableFromIPC(opened.schema).schema;
  const rowGroupRows = opened.rowGroupRows;
  const db = await duckdb;
  const lists = db ? listColumnsOf(schema) : [];
  if (db && lists.length > 0) return openWithNativeLists(file, script, first, db, schema, rowGroupRows, batchSize, lists);
  await dropDuckDb();
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
        const next = await nextDecoded(channel, (reason) => damaged(file, script, schema, rowGroupRows, rows, reason));
        if (next.kind === 'rowGroupEnd') break;
        if (next.kind === 'end') throw await damaged(file, script, schema, rowGroupRows, rows, 'end');
        for (const b of next.batches) {
          rows += b.numRows;
          yield b;
        }
      }
    }
  }
  return { schema, batches: batches(), transient: false, close: closeAll };
}

/**
 * The float list columns read by DuckDB (duckdb-lists.ts), every other column by one parquet-wasm
 * worker, zipped batch by batch: the worker's batches (by row group, at most `batchSize` rows)
 * set the batch sizes, or, when every column is a float list, batches of `batchSize` rows.
 */
async function openWithNativeLists(
  file: string,
  script: URL,
  /** The worker that opened the file: it reads the other columns, or is closed when there are none. */
  opened: WorkerChannel,
  db: DuckDbConnection,
  fileSchema: Schema,
  rowGroupRows: number[],
  batchSize: number,
  lists: ListColumn[],
): Promise<ParquetInput> {
  const listIndex = new Map(lists.map((c, k) => [c.name, k]));
  const others = fileSchema.fields.filter((f) => !listIndex.has(f.name)).map((f) => f.name);
  const schema = new Schema(
    fileSchema.fields.map((f) =>
      listIndex.has(f.name) ? new Field(f.name, listTypeOf(lists[listIndex.get(f.name)!].depth, lists[listIndex.get(f.name)!].float32), true) : f,
    ),
    fileSchema.metadata,
  );
  const totalRows = rowGroupRows.reduce((a, b) => a + b, 0);
  const channel = others.length > 0 ? opened : null;
  if (!channel) await opened.close();
  let duck: DuckDbLists;
  try {
    duck = await DuckDbLists.open(db, file, lists);
  } catch (err) {
    await channel?.close();
    throw await damaged(file, script, fileSchema, rowGroupRows, 0, reasonOf(err), true);
  }
  const close = async () => {
    duck.close();
    await channel?.close();
  };

  /** The other columns' next batch (null at the end), or a made-up size when there are none. */
  async function* otherBatches(): AsyncGenerator<{ rows: number; batch: RecordBatch | null }> {
    if (!channel) {
      for (let done = 0; done < totalRows; done += batchSize) yield { rows: Math.min(batchSize, totalRows - done), batch: null };
      return;
    }
    channel.tell({ kind: 'plan', rowGroups: rowGroupRows.map((_, g) => g), columns: others });
    channel.tell({ kind: 'next' });
    let rows = 0;
    for (;;) {
      const next = await nextDecoded(channel, (reason) => damaged(file, script, fileSchema, rowGroupRows, rows, reason));
      if (next.kind === 'rowGroupEnd') continue;
      if (next.kind === 'end') return;
      for (const b of next.batches) {
        rows += b.numRows;
        yield { rows: b.numRows, batch: b };
      }
    }
  }

  const otherIterator = otherBatches();
  let rowsRead = 0;
  /** The next batch's columns from both readers (null at the end). */
  const readNext = async () => {
    const other = await otherIterator.next();
    if (other.done) return null;
    let taken;
    try {
      taken = await duck.take(other.value.rows);
    } catch (err) {
      throw await damaged(file, script, fileSchema, rowGroupRows, rowsRead, reasonOf(err), true);
    }
    if (taken.rows !== other.value.rows) {
      throw new InputError(
        `${file}: the float list columns end at row ${rowsRead + taken.rows}, the other columns go on (the file changed while it was read?)`,
      );
    }
    rowsRead += taken.rows;
    return { other: other.value, taken };
  };

  async function* batches(): AsyncGenerator<RecordBatch> {
    let pending = readNext();
    for (;;) {
      const next = await pending;
      if (!next) return;
      // The next batch decodes (DuckDB's threads, the worker) while this one is checked and scored.
      pending = readNext();
      pending.catch(() => {}); // rethrown where it is awaited
      const { other, taken } = next;
      const children = schema.fields.map((f) => {
        const k = listIndex.get(f.name);
        return k !== undefined ? taken.data[k] : other.batch!.data.children[other.batch!.schema.fields.findIndex((g) => g.name === f.name)];
      });
      yield new RecordBatch(schema, makeData({ type: new Struct(schema.fields), length: other.rows, nullCount: 0, children }));
    }
  }
  return { schema, batches: batches(), transient: true, close };
}

/** A worker's next answer: decoded batches (their bounds remembered), a row group's end, or the end. */
type Decoded = { kind: 'batches'; batches: RecordBatch[] } | { kind: 'rowGroupEnd' } | { kind: 'end' };

/**
 * Takes the next answer of `channel` and, unless it is the end, asks for the one after (it
 * decodes while this one is checked and scored). A failure, the worker's or in its bytes, is
 * thrown as `fail` words it.
 */
async function nextDecoded(channel: WorkerChannel, fail: (reason: string) => Promise<InputError>): Promise<Decoded> {
  let m: ParquetWorkerMessage;
  try {
    // A worker other than the first reports its own opening here first.
    do m = await channel.take();
    while (m.kind === 'opened');
  } catch (err) {
    throw await fail(reasonOf(err));
  }
  if (m.kind === 'end') return { kind: 'end' };
  if (m.kind !== 'batch' && m.kind !== 'rowGroupEnd') throw await fail(m.kind === 'failed' ? m.message : m.kind);
  channel.tell({ kind: 'next' });
  if (m.kind === 'rowGroupEnd') return { kind: 'rowGroupEnd' };
  let batches;
  try {
    batches = tableFromIPC(m.ipc).batches;
  } catch (err) {
    throw await fail(reasonOf(err));
  }
  if (m.bounds && batches.length === 1) rememberBounds(batches[0], m.bounds);
  return { kind: 'batches', batches };
}

/**
 * The InputError for a decoding failure after `rowsBefore` rows: the row group holding the next
 * row, and the first column that fails when the row group is decoded a column at a time.
 */
async function damaged(
  file: string,
  script: URL,
  schema: Schema,
  rowGroupRows: number[],
  rowsBefore: number,
  reason: string,
  readsAhead = false,
): Promise<InputError> {
  let group = 0;
  const firstRow = (g: number) => rowGroupRows.slice(0, g).reduce((a, b) => a + b, 0);
  while (group < rowGroupRows.length - 1 && firstRow(group + 1) <= rowsBefore) group++;
  const names = schema.fields.map((f) => f.name);
  let column = await failingColumn(file, script, group, names);
  // DuckDB decodes ahead of the rows handed over: the damage may lie in a later row group.
  if (readsAhead) {
    for (let g = group + 1; !column && g < rowGroupRows.length; g++) {
      const found = await failingColumn(file, script, g, names);
      if (found) {
        column = found;
        group = g;
      }
    }
  }
  const first = firstRow(group);
  const where = `row group ${group + 1} of ${rowGroupRows.length} (rows ${first + 1}-${first + (rowGroupRows[group] ?? 0)})`;
  const which = column ? `, column "${column.name}"` : '';
  const why = column?.reason ?? reason;
  return new InputError(`${file}: ${where}${which}: the Parquet data is damaged or uses a feature the reader lacks (${why})`);
}

/**
 * The first of `columns` whose data in `rowGroup` fails to decode, each decoded in a worker of
 * its own: a worker that panics may end before its last messages arrive, so one worker probing
 * several columns could not always say which one it was on.
 */
async function failingColumn(file: string, script: URL, rowGroup: number, columns: string[]): Promise<{ name: string; reason: string } | null> {
  for (const column of columns) {
    const probe = new WorkerChannel(script, { mode: 'probe', file, rowGroup, columns: [column] });
    try {
      for (;;) {
        const m = await probe.take();
        if (m.kind === 'probed') {
          if (m.column !== null) return { name: column, reason: m.message ?? '' };
          break;
        }
        if (m.kind !== 'probing') return null;
      }
    } catch (err) {
      return { name: column, reason: reasonOf(err) };
    } finally {
      await probe.close();
    }
  }
  return null;
}
