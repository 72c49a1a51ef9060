/**
 * `ecr convert`'s work without its argv: trajectories from one file to another between JSONL,
 * Parquet and Arrow IPC (ECR-SPEC section 5.2), each row validated on the way with the errors
 * `ecr score` gives. A columnar input's columns are written as they are (types kept: a float32
 * fixed-size list stays one); JSONL becomes the general schema (list<list<double>> per matrix,
 * every optional column present and null where a record lacks it, `meta` as JSON text). OUT is
 * replaced only on success; to stdout (`-`) rows go out as they are validated.
 */
import type { Schema } from 'apache-arrow';
import { arrowLayoutOf, type DataFormat } from './columnar/format.js';
import { openBatchInput, validatedBlocks } from './columnar/score-columnar.js';
import { jsonlRecordsWriter, openWriter, type BatchWriter } from './columnar/writers.js';
import { isRegularFile, openInput, type InputInfo } from './io/input.js';
import { DEFAULT_MAX_LINE_BYTES } from './io/lines.js';
import { openOutput, stdoutOutput } from './io/output-file.js';
import { Progress } from './io/progress.js';

export interface ConvertOptions {
  /** A path, or "-" for stdin. */
  inFile: string;
  /** inspectInput(inFile), taken before the output is opened. */
  inputInfo: InputInfo;
  inFormat: DataFormat;
  /** A path, or "-" for stdout. */
  outFile: string;
  outFormat: DataFormat;
  /** JSONL records per output batch. */
  windowSize: number;
  /** Longest input line in bytes (default 64 MiB). */
  lineCap?: number;
}

/** Converts every row; returns the row count (0: an empty OUT was written). */
export async function convertFile(o: ConvertOptions): Promise<number> {
  const out = o.outFile === '-' ? stdoutOutput() : await openOutput(o.outFile, o.inputInfo);
  try {
    const input = await openBatchInput({
      file: o.inFile,
      format: o.inFormat,
      stream: isRegularFile(o.inFile, o.inputInfo) ? null : openInput(o.inFile),
      windowSize: o.windowSize,
      lineCap: o.lineCap ?? DEFAULT_MAX_LINE_BYTES,
    });
    const progress = new Progress('ecr convert');
    let rows = 0;
    try {
      // Opened at the first batch: a JSONL input's column types are known only then.
      const open = (schema: Schema) => openWriter(o.outFormat, arrowLayoutOf(o.outFile), out.sink, schema, () => jsonlRecordsWriter(out.sink));
      let writer: BatchWriter | null = null;
      for await (const { batch } of validatedBlocks(input)) {
        writer ??= await open(batch.schema);
        await writer.write(batch);
        rows += batch.numRows;
        progress.update(rows);
      }
      writer ??= await open(input.schema());
      await writer.finish();
      progress.done(rows);
    } finally {
      await input.close();
    }
    await out.commit();
    return rows;
  } catch (err) {
    await out.abort();
    throw err;
  }
}
