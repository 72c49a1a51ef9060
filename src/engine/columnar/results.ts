/**
 * Results of a columnar run, held in input order until the selection is known (a group's
 * selected member may come last): as Arrow record batches in memory up to a budget, then in a
 * temporary file under TMPDIR, as the JSONL path spills its result lines. Each batch is stored
 * as a length-prefixed Arrow IPC stream, read back one at a time. Once the selection is known,
 * every batch gets its `selected` column and goes to the output writer.
 */
import { open, rm, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { Bool, Field, Float64, RecordBatch, Schema, Struct, Table, Utf8, makeData, tableFromIPC, tableToIPC, type Data } from 'apache-arrow';
import type { MetricArrays } from '../../core/batch.js';
import { OutputWriteError } from '../io/sink.js';
import { temporaryDirectory } from '../io/temporary.js';
import { boolData, float64Data, nullUtf8Data } from './arrow-build.js';

export interface BlockResults {
  id: Data;
  group: Data | null;
  metrics: MetricArrays;
  admissible: Uint8Array;
  /** P(correct) from the configuration's calibration map, when it has one. */
  pCorrect: Float64Array | null;
}

const METRIC_COLUMNS = [
  ['EVB', 'evb'],
  ['CR', 'cr'],
  ['TS', 'ts'],
  ['ES', 'es'],
  ['PD', 'pd'],
  ['CCI', 'cci'],
] as const;

/** The output schema (ECR-SPEC section 5.2), in the order of a JSONL result line. */
export function resultSchema(idType: Data['type'], groupType: Data['type'] | null, withPCorrect: boolean, withSelected: boolean): Schema {
  return new Schema([
    new Field('id', idType, false),
    new Field('group', groupType ?? new Utf8(), true),
    ...METRIC_COLUMNS.map(([name]) => new Field(name, new Float64(), false)),
    new Field('admissible', new Bool(), false),
    ...(withPCorrect ? [new Field('pCorrect', new Float64(), false)] : []),
    ...(withSelected ? [new Field('selected', new Bool(), false)] : []),
  ]);
}

/** One block's results as a record batch without `selected`. */
export function resultBatch(r: BlockResults): RecordBatch {
  const n = r.admissible.length;
  const schema = resultSchema(r.id.type, r.group?.type ?? null, r.pCorrect !== null, false);
  const children: Data[] = [
    r.id,
    r.group ?? nullUtf8Data(n),
    ...METRIC_COLUMNS.map(([, key]) => float64Data(r.metrics[key])),
    boolData(r.admissible),
    ...(r.pCorrect ? [float64Data(r.pCorrect)] : []),
  ];
  return new RecordBatch(schema, makeData({ type: new Struct(schema.fields), length: n, nullCount: 0, children }));
}

/**
 * Completes batches in input order with their `selected` flags. The selected input indices (one
 * per group) come sorted, so one cursor serves the whole output.
 */
export class SelectedColumn {
  private next = 0;
  private row = 0;
  constructor(private readonly selected: Uint32Array) {}
  append(batch: RecordBatch): RecordBatch {
    const n = batch.numRows;
    const flags = new Uint8Array(n);
    const end = this.row + n;
    while (this.next < this.selected.length && this.selected[this.next] < end) flags[this.selected[this.next++] - this.row] = 1;
    this.row = end;
    const fields = [...batch.schema.fields, new Field('selected', new Bool(), false)];
    const schema = new Schema(fields);
    return new RecordBatch(schema, makeData({ type: new Struct(fields), length: n, nullCount: 0, children: [...batch.data.children, boolData(flags)] }));
  }
}

/** Results held in memory up to this many bytes; past it, everything goes to a temporary file. */
export const DEFAULT_HOLD_BYTES = 64 * 2 ** 20;

export class ResultStore {
  private held: RecordBatch[] = [];
  private heldBytes = 0;
  private spill: { dir: string; file: string; handle: FileHandle; forget: () => void } | null = null;

  constructor(private readonly holdBytes = DEFAULT_HOLD_BYTES) {}

  async add(batch: RecordBatch): Promise<void> {
    if (!this.spill) {
      this.held.push(batch);
      this.heldBytes += batch.data.children.reduce((s, c) => s + c.byteLength, 0);
      if (this.heldBytes <= this.holdBytes) return;
      await this.startSpill();
      const held = this.held;
      this.held = [];
      for (const b of held) await this.write(b);
      return;
    }
    await this.write(batch);
  }

  /** Every batch in input order (from memory, else read back from the file one at a time). */
  async *batches(): AsyncGenerator<RecordBatch> {
    if (!this.spill) {
      yield* this.held;
      return;
    }
    const { handle, file } = this.spill;
    const head = Buffer.alloc(8);
    for (let pos = 0; ;) {
      const { bytesRead } = await handle.read(head, 0, 8, pos);
      if (bytesRead === 0) return;
      const len = Number(head.readBigUInt64LE(0));
      const body = Buffer.allocUnsafe(len);
      const got = await handle.read(body, 0, len, pos + 8);
      if (bytesRead !== 8 || got.bytesRead !== len) throw new Error(`temporary results in ${file} are damaged (short read at ${pos})`);
      pos += 8 + len;
      yield* tableFromIPC(body).batches;
    }
  }

  async dispose(): Promise<void> {
    this.held = [];
    if (!this.spill) return;
    const { dir, handle, forget } = this.spill;
    this.spill = null;
    await handle.close().catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
    forget();
  }

  private async startSpill(): Promise<void> {
    const { dir, forget } = await temporaryDirectory();
    const file = path.join(dir, 'results.arrows');
    const handle = await open(file, 'w+');
    this.spill = { dir, file, handle, forget };
  }

  private async write(batch: RecordBatch): Promise<void> {
    const bytes = tableToIPC(new Table([batch]), 'stream');
    const head = Buffer.alloc(8);
    head.writeBigUInt64LE(BigInt(bytes.byteLength));
    try {
      await this.spill!.handle.write(head);
      await this.spill!.handle.write(bytes);
    } catch (err) {
      throw new OutputWriteError(`temporary results in ${this.spill!.dir}`, err);
    }
  }
}
