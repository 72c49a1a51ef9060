/**
 * `ecr convert IN OUT [--format F] [--window N]`: trajectories between JSONL, Parquet and Arrow
 * IPC (ECR-SPEC section 5.2), each row validated on the way with the errors `ecr score` gives.
 * A columnar input's columns are written as they are (types kept: a float32 fixed-size list stays
 * one); JSONL becomes the general schema (list<list<double>> per matrix, every optional column
 * present and null where a record lacks it, `meta` as JSON text). OUT is replaced only on
 * success, as `ecr score --out` is; to stdout (`-`) rows go out as they are validated.
 */
import { parseArgs } from '../core/parse-args.js';
import { UsageError } from '../core/errors.js';
import { arrowLayoutOf, formatOf } from '../engine/columnar/format.js';
import { openBatchInput, validatedBlocks } from '../engine/columnar/score-columnar.js';
import type { Schema } from 'apache-arrow';
import { jsonlRecordsWriter, openWriter, type BatchWriter } from '../engine/columnar/writers.js';
import { cleanUpOnInterrupt } from './interrupt.js';
import { exitForOutputFailure, maxLineBytes, positiveIntegerFlag } from './io.js';
import { Progress } from '../engine/io/progress.js';
import { inspectInput, isRegularFile, openInput } from '../engine/io/input.js';
import { openOutput, stdoutOutput } from '../engine/io/output-file.js';

const HELP = `usage: ecr convert IN OUT [--format jsonl|parquet|arrow] [--window N]

Converts trajectories between JSONL, Parquet and Arrow IPC; the formats come from the names
(.parquet/.pq, .arrow/.feather = IPC file, .arrows/.ipc = IPC stream, anything else JSONL).
IN or OUT may be - (stdin / stdout: JSONL, or Arrow IPC stream with --format arrow for IN).
Every row is checked as ecr score checks it; an invalid row is exit 2 with its row (or line) and
column named, and OUT is left as it was.
--format F   the input's format when its name does not say it
--window N   JSONL records per output batch / row group piece (default 65536)`;

export async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv, allowPositionals: true,
      options: { format: { type: 'string' }, window: { type: 'string', default: '65536' }, help: { type: 'boolean', short: 'h' } },
    });
  } catch (err) {
    throw new UsageError(`${(err as Error).message}\n${HELP}`);
  }
  const { values, positionals } = parsed;
  if (values.help) { process.stdout.write(HELP + '\n'); return 0; }
  if (positionals.length !== 2) throw new UsageError(`expected IN and OUT, got ${positionals.length} argument${positionals.length === 1 ? '' : 's'}\n${HELP}`);
  const [inFile, outFile] = positionals;
  const window = positiveIntegerFlag('window', values.window!);
  const inFormat = formatOf(inFile, values.format);
  const outFormat = outFile === '-' ? 'jsonl' : formatOf(outFile);
  const info = await inspectInput(inFile);

  const stopCleanup = cleanUpOnInterrupt();
  try {
    const out = outFile === '-' ? stdoutOutput() : await openOutput(outFile, info);
    try {
      const input = await openBatchInput({
        file: inFile, format: inFormat, stream: isRegularFile(inFile, info) ? null : openInput(inFile),
        windowSize: window, lineCap: maxLineBytes(),
      });
      const progress = new Progress('ecr convert');
      let rows = 0;
      try {
        // Opened at the first batch: a JSONL input's column types are known only then.
        const open = (schema: Schema) => openWriter(outFormat, arrowLayoutOf(outFile), out.sink, schema, () => jsonlRecordsWriter(out.sink));
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
      if (rows === 0) process.stderr.write(`ecr convert: warning: no records in ${inFile === '-' ? 'stdin' : inFile}; wrote an empty ${outFile}\n`);
    } catch (err) {
      await out.abort();
      throw err;
    }
  } catch (err) {
    return exitForOutputFailure('ecr convert', err);
  } finally {
    stopCleanup();
  }
  return 0;
}
