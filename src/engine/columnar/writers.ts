/**
 * Output writers: record batches in, bytes into a Sink (src/engine/io/, so --out keeps its
 * checks, its rename on success and its cleanup on failure).
 * - Arrow IPC through apache-arrow's RecordBatchFileWriter / RecordBatchStreamWriter.
 * - Parquet through parquet-wasm's streaming writer (transformParquetStream): batches go in one
 *   at a time and row groups come out as they fill, so writing holds one row group.
 * - JSONL: result lines exactly as the JSONL path prints them (src/core/result-line.ts), or, for
 *   `ecr convert`, one trajectory object per line.
 */
import { RecordBatchFileWriter, RecordBatchStreamWriter, Table, Type, tableToIPC, type Data, type RecordBatch, type Schema } from 'apache-arrow';
import type { ResolvedConfig } from '../../core/config.js';
import type { Sink } from '../io/sink.js';
import { resultPrefix } from '../../core/result-line.js';
import { keyValueAt, plainAt } from './cells.js';
import { jsonTextAt, type JsonTextContext } from './json-text.js';
import type { DataFormat } from './format.js';
import { loadParquetWasm } from './parquet-wasm.js';

export interface BatchWriter {
  write(batch: RecordBatch): Promise<void>;
  /** Writes what remains (for no batch at all: an empty file of `schema`'s columns). */
  finish(): Promise<void>;
}

/** Rows per Parquet row group written: bounded memory when the file is read back, and enough rows to amortize per-group work. */
export const PARQUET_ROW_GROUP_ROWS = 65536;

export async function openWriter(
  format: DataFormat,
  arrowLayout: 'file' | 'stream',
  sink: Sink,
  schema: Schema,
  jsonl: () => BatchWriter,
): Promise<BatchWriter> {
  if (format === 'arrow') return arrowWriter(sink, arrowLayout, schema);
  if (format === 'parquet') return parquetWriter(sink, schema);
  return jsonl();
}

function arrowWriter(sink: Sink, layout: 'file' | 'stream', schema: Schema): BatchWriter {
  const writer = layout === 'file' ? new RecordBatchFileWriter() : new RecordBatchStreamWriter();
  let wrote = false;
  // The writer queues encoded bytes; a pump moves them to the sink. After each batch the caller
  // waits until the pump is blocked on an empty queue, so at most one batch's bytes are queued.
  // A pending next() on a non-empty queue resolves within microtasks, so a pump still waiting
  // when the next macrotask runs has drained the queue.
  let waiting = false;
  // Boxed, so that a falsy rejection reason still counts as a failure.
  let failure: { error: unknown } | null = null;
  let waiters: (() => void)[] = [];
  const wakeWaiters = () => {
    const w = waiters;
    waiters = [];
    for (const f of w) f();
  };
  const chunks = writer[Symbol.asyncIterator]();
  const pump = (async () => {
    for (;;) {
      waiting = true;
      setImmediate(() => {
        if (waiting) wakeWaiters();
      });
      const next = await chunks.next();
      waiting = false;
      if (next.done) return;
      await sink.write(next.value);
    }
  })();
  pump.catch((err) => {
    failure = { error: err };
    wakeWaiters();
  });
  return {
    async write(batch) {
      const drained = new Promise<void>((r) => waiters.push(r));
      writer.write(batch);
      wrote = true;
      await drained;
      if (failure !== null) throw failure.error;
    },
    async finish() {
      if (!wrote) writer.write(new Table(schema) as unknown as RecordBatch);
      writer.finish();
      await pump;
    },
  };
}

async function parquetWriter(sink: Sink, schema: Schema): Promise<BatchWriter> {
  const pw = await loadParquetWasm();
  const props = new pw.WriterPropertiesBuilder()
    .setMaxRowGroupSize(PARQUET_ROW_GROUP_ROWS)
    .setCompression(pw.Compression.SNAPPY)
    // Scores and trajectories are floats that rarely repeat: dictionary pages cost time and fall back anyway.
    .setDictionaryEnabled(false)
    .setCreatedBy('ecr-engine')
    .build();
  const toWasm = (batch: RecordBatch) => {
    const table = pw.Table.fromIPCStream(tableToIPC(new Table([batch]), 'stream'));
    const b = table.recordBatch(0)!;
    table.free();
    return b;
  };
  // A pull stream fed one batch at a time: the encoder asks for the next batch only when it is ready.
  let offered: ReturnType<typeof toWasm> | null | undefined; // undefined: nothing offered; null: the end
  let wake: (() => void) | null = null;
  let taken: (() => void) | null = null;
  let failure: { error: unknown } | null = null;
  const input = new ReadableStream(
    {
      async pull(controller) {
        while (offered === undefined)
          await new Promise<void>((r) => {
            wake = r;
          });
        const b = offered;
        offered = undefined;
        taken?.();
        if (b === null) controller.close();
        else controller.enqueue(b);
      },
    },
    { highWaterMark: 0 },
  );
  // Not awaited here: the encoder reads the first batch (for the schema) before it returns.
  const output = pw.transformParquetStream(input, props);
  const pump = (async () => {
    const reader = (await output).getReader() as ReadableStreamDefaultReader<Uint8Array>;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      await sink.write(value);
    }
  })();
  pump.catch((err) => {
    failure = { error: err };
    taken?.();
  });
  const offer = async (b: ReturnType<typeof toWasm> | null) => {
    const gone = new Promise<void>((r) => {
      taken = r;
    });
    offered = b;
    wake?.();
    await gone;
    if (failure !== null) throw failure.error;
  };
  let wrote = false;
  return {
    async write(batch) {
      if (batch.numRows === 0) return;
      wrote = true;
      await offer(toWasm(batch));
    },
    async finish() {
      if (!wrote) {
        // The streaming writer needs a first batch to know the schema; an empty file is written whole.
        await offer(null);
        await pump.catch(() => undefined);
        await sink.write(pw.writeParquet(pw.Table.fromIPCStream(tableToIPC(new Table(schema), 'stream')), props));
        return;
      }
      await offer(null);
      await pump;
    },
  };
}

/** The data of a batch's column (Arrow types it `Data<any>`). */
const columnData = (batch: RecordBatch, name: string): Data | undefined => batch.getChild(name)?.data[0] as Data | undefined;

/** `ecr score` result lines, byte for byte as the JSONL path writes them. */
export function jsonlResultsWriter(sink: Sink, config: ResolvedConfig): BatchWriter {
  return {
    async write(batch) {
      const n = batch.numRows;
      const col = (name: string) => columnData(batch, name)!.values as Float64Array;
      const bits = (name: string) => columnData(batch, name)!.values as Uint8Array;
      const adm = bits('admissible'),
        sel = bits('selected');
      const admissible = new Uint8Array(n);
      for (let j = 0; j < n; j++) admissible[j] = (adm[j >> 3] >> (j & 7)) & 1;
      const metrics = { evb: col('EVB'), cr: col('CR'), ts: col('TS'), es: col('ES'), pd: col('PD'), cci: col('CCI') };
      const id = columnData(batch, 'id')!,
        group = columnData(batch, 'group')!;
      let text = '';
      for (let j = 0; j < n; j++) {
        text += `${resultPrefix(keyValueAt(id, j) as string | number, keyValueAt(group, j), metrics, admissible, j, j + 1, config)},"selected":${((sel[j >> 3] >> (j & 7)) & 1) === 1}}\n`;
        if (text.length > 1 << 20) {
          await sink.write(text);
          text = '';
        }
      }
      await sink.write(text);
    },
    finish: async () => {},
  };
}

const RECORD_FIELDS = ['id', 'group', 'steps', 'embeddings', 'expected', 'realized', 'policy', 'baseScore', 'meta'] as const;

/**
 * `ecr convert` to JSONL: one trajectory object per row, null columns left out. `meta` of any
 * Arrow type is written as JSON text with nothing rounded (json-text.ts); a utf8 `meta` holding
 * JSON text (as ecr convert writes it from JSONL) is that JSON again, its text kept as it is.
 */
export function jsonlRecordsWriter(sink: Sink): BatchWriter {
  let rowsBefore = 0;
  return {
    async write(batch) {
      const columns = RECORD_FIELDS.map((name) => [name, columnData(batch, name) ?? null] as const).filter(
        (c): c is readonly [(typeof c)[0], Data] => c[1] !== null,
      );
      const idData = columnData(batch, 'id');
      let text = '';
      for (let j = 0; j < batch.numRows; j++) {
        const o: Record<string, unknown> = {};
        let meta: string | null = null;
        for (const [name, d] of columns) {
          if (name === 'meta') {
            const row = rowsBefore + j + 1;
            const id = idData ? keyValueAt(idData, j) : row;
            meta = metaText(d, j, { row, id: id === null ? undefined : String(id) });
            continue;
          }
          const v = name === 'id' || name === 'group' ? keyValueAt(d, j) : plainAt(d, j);
          if (v !== null && v !== undefined) o[name] = v;
        }
        const line = JSON.stringify(o);
        text += (meta === null ? line : `${line.slice(0, -1)}${line.length > 2 ? ',' : ''}"meta":${meta}}`) + '\n';
        if (text.length > 1 << 20) {
          await sink.write(text);
          text = '';
        }
      }
      rowsBefore += batch.numRows;
      await sink.write(text);
    },
    finish: async () => {},
  };
}

/** `meta` of row j as JSON text, or null when it is null (not given). */
function metaText(d: Data, j: number, at: JsonTextContext): string | null {
  if (!d.getValid(j)) return null;
  if (d.typeId === Type.Utf8 || d.typeId === Type.LargeUtf8 || d.typeId === Type.Utf8View) {
    const s = JSON.parse(jsonTextAt(d, j, 'meta', at)) as string;
    try {
      JSON.parse(s);
      // Valid JSON text holds line breaks only as whitespace (inside strings they are escaped).
      return s.trim().replace(/[\r\n]+/g, ' ');
    } catch {
      return JSON.stringify(s); // plain text: a JSON string
    }
  }
  return jsonTextAt(d, j, 'meta', at);
}
