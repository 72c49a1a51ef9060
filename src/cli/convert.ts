/**
 * `ecr convert IN OUT [--format F] [--window N]`: the arguments and the exit code. The work
 * (every row validated as ecr score validates it, OUT replaced only on success) is
 * engine/convert.ts.
 */
import { parseArgs } from '../core/parse-args.js';
import { UsageError } from '../core/errors.js';
import { formatOf } from '../engine/columnar/format.js';
import { convertFile } from '../engine/convert.js';
import { inspectInput } from '../engine/io/input.js';
import { cleanUpOnInterrupt } from './interrupt.js';
import { exitForOutputFailure, positiveIntegerFlag } from './io.js';

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
      args: argv,
      allowPositionals: true,
      options: { format: { type: 'string' }, window: { type: 'string', default: '65536' }, help: { type: 'boolean', short: 'h' } },
    });
  } catch (err) {
    throw new UsageError(`${(err as Error).message}\n${HELP}`);
  }
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(HELP + '\n');
    return 0;
  }
  if (positionals.length !== 2) throw new UsageError(`expected IN and OUT, got ${positionals.length} argument${positionals.length === 1 ? '' : 's'}\n${HELP}`);
  const [inFile, outFile] = positionals;
  const window = positiveIntegerFlag('window', values.window);
  const inFormat = formatOf(inFile, values.format);
  const outFormat = outFile === '-' ? 'jsonl' : formatOf(outFile);
  const info = await inspectInput(inFile);

  const stopCleanup = cleanUpOnInterrupt();
  try {
    const rows = await convertFile({ inFile, inputInfo: info, inFormat, outFile, outFormat, windowSize: window });
    if (rows === 0) process.stderr.write(`ecr convert: warning: no records in ${inFile === '-' ? 'stdin' : inFile}; wrote an empty ${outFile}\n`);
  } catch (err) {
    return exitForOutputFailure('ecr convert', err);
  } finally {
    stopCleanup();
  }
  return 0;
}
