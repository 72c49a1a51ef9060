/**
 * `ecr score` when the input or the output is Parquet or Arrow (ECR-SPEC section 5.2). The
 * semantics are the JSONL path's: every row is validated (up to 20 invalid rows reported, each
 * naming its row or line and column, and then nothing is written), selection runs across the
 * whole input, and results are written in input order once every group is complete. Memory
 * holds one record batch (a Parquet row group is read in batches of 65,536 rows) plus the
 * results held back for the selection, which spill to a temporary file past 64 MiB.
 *
 * Each validated block goes to the backend as one Batch per shape; a block of one shape is a
 * view of the file's columns, and the backend writes its metrics straight into the block's
 * result arrays.
 */
import type { Readable } from 'node:stream';
import { Int64, type DataType, type RecordBatch, type Schema } from 'apache-arrow';
import { allocateSharedMetrics } from '../../backends/cpu/shared.js';
import { pCorrectOf } from '../../core/probability-map.js';
import { InputError, type InputLocation } from '../../core/errors.js';
import { GroupKeys } from '../group-keys.js';
import { scoreWindow, warmUpBackend, type ScoreSettings } from '../window-scorer.js';
import { ARRAY_HINT, MAX_REPORTED_ERRORS } from '../jsonl/jsonl-parse.js';
import { checkedJsonlInput, checkedJsonlStream } from '../jsonl/not-jsonl.js';
import { GroupSelector } from '../../core/select.js';
import { Progress } from '../io/progress.js';
import { openInput } from '../io/input.js';
import { type Sink } from '../io/sink.js';
import { ownedData, rowNumberData } from './arrow-build.js';
import { checkBlock, type ScoringBlock } from './block.js';
import { internGroups } from './key-columns.js';
import type { DataFormat } from './format.js';
import { readJsonlBatches } from './jsonl-input.js';
import { openColumnar, type ColumnarOptions } from './readers.js';
import { ResultStore, SelectedColumn, resultBatch, resultSchema, type BlockResults } from './results.js';
import { checkSchema, type ColumnIndex } from './schema.js';
import { jsonlResultsWriter, openWriter } from './writers.js';

export interface InputSpec {
  /** The name given on the command line ('-' for stdin). */
  file: string;
  format: DataFormat;
  /** The input as a byte stream when it is not a regular file (stdin, a pipe); null: open `file`. */
  stream: Readable | null;
  /** For JSONL: records per batch and the line-length cap. */
  windowSize: number;
  lineCap: number;
}

export interface OutputSpec {
  format: DataFormat;
  arrowLayout: 'file' | 'stream';
  sink: Sink;
}

/** Record batches of any input format, with how its problems are located. */
export interface BatchInput {
  schema: () => Schema;
  columns: ColumnIndex;
  batches: AsyncIterable<RecordBatch>;
  /** Where row j of `batch` (whose first row has input index firstRow) came from. */
  locate(batch: RecordBatch, j: number, firstRow: number): InputLocation;
  /** Invalid rows or lines found so far (shared with the reader). */
  errors: InputError[];
  unit: 'line' | 'row';
  looksLikeArray(): boolean;
  /** Batches are views of reused memory (see ColumnarInput.transient). */
  transient: boolean;
  close(): Promise<void>;
}

export async function openBatchInput(input: InputSpec, options: ColumnarOptions = {}): Promise<BatchInput> {
  const errors: InputError[] = [];
  if (input.format === 'jsonl') {
    const source = input.stream ? checkedJsonlStream(input.stream, input.file) : await checkedJsonlInput(input.file, () => openInput(input.file), true);
    const j = readJsonlBatches(source, { windowSize: input.windowSize, lineCap: input.lineCap, maxErrors: MAX_REPORTED_ERRORS, errors });
    return {
      schema: () => j.schema,
      columns: checkSchema(j.schema),
      batches: j.batches,
      errors,
      unit: 'line',
      locate: (batch, k) => ({ line: j.lineOf(batch, k) }),
      looksLikeArray: () => j.looksLikeArray,
      transient: false,
      close: async () => {},
    };
  }
  const c = await openColumnar(input.file, input.format, input.stream, options);
  try {
    const columns = checkSchema(c.schema);
    return {
      schema: () => c.schema,
      columns,
      batches: c.batches,
      errors,
      unit: 'row',
      locate: (_batch, k, firstRow) => ({ row: firstRow + k + 1 }),
      looksLikeArray: () => false,
      transient: c.transient,
      close: c.close,
    };
  } catch (err) {
    await c.close();
    throw err;
  }
}

/** Validates every batch of `input`, yielding the valid blocks; throws the collected errors at the end. */
export async function* validatedBlocks(input: BatchInput): AsyncGenerator<{ batch: RecordBatch; block: ScoringBlock }> {
  let row = 0;
  for await (const batch of input.batches) {
    const block = checkBlock(batch, input.columns, row, input.errors, MAX_REPORTED_ERRORS, rowNumberData);
    row += batch.numRows;
    if (block) yield { batch, block };
    else if (input.errors.length >= MAX_REPORTED_ERRORS) break;
  }
  const errors = input.errors;
  if (errors.length > 0) {
    const unit = `invalid ${input.unit}${errors.length > 1 ? 's' : ''}`;
    const more = errors.length >= MAX_REPORTED_ERRORS ? `\n(stopped after ${MAX_REPORTED_ERRORS} invalid ${input.unit}s)` : '';
    const hint = input.looksLikeArray() ? `\n${ARRAY_HINT}` : '';
    throw new InputError(`${errors.length} ${unit}; nothing was written:\n  ${errors.map((e) => e.message).join('\n  ')}${more}${hint}`);
  }
}

/** Scores one block: one backend call per shape, then each row offered to the selector. */
export async function scoreBlock(
  block: ScoringBlock,
  s: ScoreSettings,
  groups: GroupKeys,
  selector: GroupSelector,
  locate: (j: number) => InputLocation,
): Promise<BlockResults> {
  const n = block.numRows;
  const w = await scoreWindow(
    {
      n,
      parts: block.parts,
      firstIndex: block.firstRow,
      groups: internGroups(block.group, n, groups),
      baseScore: block.baseScore ?? null,
      // Shared memory: the cpu backend's workers write a one-shape block's results in place (no copy back).
      metrics: allocateSharedMetrics(n),
      requireFinite: true,
      offload: true,
      locate: (j) => ({ ...locate(j), id: String(block.idOf(j)) }),
    },
    s,
    selector,
  );
  const { metrics, admissible } = w;
  let pCorrect: Float64Array | null = null;
  if (s.config.calibration) {
    const cci = metrics.cci;
    pCorrect = new Float64Array(n);
    for (let j = 0; j < n; j++) pCorrect[j] = pCorrectOf(s.config, cci[j])!;
  }
  return { id: block.id, group: block.group, metrics, admissible, pCorrect };
}

/** Scores `input` into `output`; returns the number of records. */
export async function scoreToOutput(input: InputSpec, output: OutputSpec, s: ScoreSettings): Promise<number> {
  // Scoring reads ahead one block only and keeps nothing of a block but its results, whose id
  // and group columns are copied out: so an Arrow file may be read into reused shared memory.
  const source = await openBatchInput(input, { reuseMemory: true, nativeLists: true });
  // The schema is fine: the cpu backend's workers boot while the first batch is read.
  await warmUpBackend(s, true); // scoreBlock's windows offload
  const groups = new GroupKeys();
  const selector = new GroupSelector(s.config.tau);
  const store = new ResultStore();
  const progress = new Progress('ecr score');
  let rows = 0;
  try {
    // The next block is read and validated while this one scores: the main thread reads and
    // checks while it would otherwise wait for the backend's workers (or the GPU).
    const blocks = validatedBlocks(source);
    let next = blocks.next();
    for (;;) {
      const current = await next;
      if (current.done) break;
      next = blocks.next();
      next.catch(() => undefined); // awaited (and so thrown) in the next round; not an unhandled rejection meanwhile
      const { batch, block } = current.value;
      const results = await scoreBlock(block, s, groups, selector, (j) => source.locate(batch, j, block.firstRow));
      if (source.transient) {
        results.id = ownedData(results.id);
        results.group = results.group && ownedData(results.group);
      }
      await store.add(resultBatch(results));
      rows += block.numRows;
      progress.update(rows);
    }
    const schema = source.schema();
    const idType = source.columns.id !== undefined ? (schema.fields[source.columns.id].type as DataType) : new Int64();
    const groupType = source.columns.group !== undefined ? (schema.fields[source.columns.group].type as DataType) : null;
    const writer = await openWriter(output.format, output.arrowLayout, output.sink, resultSchema(idType, groupType, s.config.calibration !== null, true), () =>
      jsonlResultsWriter(output.sink, s.config),
    );
    const selected = new SelectedColumn(selector.selectedIndices());
    for await (const b of store.batches()) await writer.write(selected.append(b));
    await writer.finish();
    progress.done(rows);
    return rows;
  } finally {
    await store.dispose();
    await source.close();
  }
}
