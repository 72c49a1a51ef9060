/**
 * `ecr score FILE|- [--config FILE] [--backend B] [--out FILE] [--window N] [--threads N]`
 * (ECR-SPEC section 5): the arguments and the exit code. The work is engine/score-file.ts.
 */
import { parseArgs } from '../core/parse-args.js';
import { toResolvedConfig } from '../core/config.js';
import { UsageError } from '../core/errors.js';
import { BACKEND_CHOICES, type BackendChoice, type ComputeOptions } from '../backends/backend.js';
import { cleanUpOnInterrupt } from './interrupt.js';
import { adapterFlag, backendOptionsFromEnv } from './backend-env.js';
import { exitForOutputFailure, parseThreadsFlag, positiveIntegerFlag, readJsonConfig } from './io.js';
import { inspectInput } from '../engine/io/input.js';
import { formatOf } from '../engine/columnar/format.js';
import { scoreFile } from '../engine/score-file.js';

const HELP = `usage: ecr score FILE|- [--config FILE] [--backend auto|webgpu|cpu|cpu-reference] [--out FILE] [--window N]
                 [--threads N] [--adapter auto|native|opengles] [--compact unorm16] [--format jsonl|parquet|arrow]
       ecr score --queue redis://HOST:PORT INPUT... --out DIR [--work-dir DIR]   (on ecr worker processes;
                 "ecr score --queue URL --help" lists its options)

Scores one trajectory per JSONL line and writes one result line per input line, in order:
  {"id", "group", "EVB", "CR", "TS", "ES", "PD", "CCI", "admissible", "selected"}
  (with "pCorrect" before "selected" when the config has a "calibration" map from ecr calibrate)
--window N   records scored per batch (default 8192); memory grows with N, not with the file.
--threads N  JSONL parse threads (default: one per core, none for a file of at most 1 MiB); 0 parses
             on the main thread.
--adapter    WebGPU adapter to use (default: native, then OpenGL ES; also ECR_WEBGPU_ADAPTER).
--compact    upload E to the GPU as unorm16 (webgpu only; tolerance: src/backends/webgpu/README.md).
--out FILE   write results to FILE (replaced only on success; a symlink is followed, a FIFO streamed into);
             FILE.parquet or FILE.arrow (.arrows: IPC stream) writes a columnar file, anything else JSONL.
--format F   the input's format when its name does not say it (default: by extension; .parquet, .arrow,
             .arrows, .feather are columnar, anything else JSONL). Columnar schema: docs/formats.md.
--queue URL  score on the ecr worker processes of a Redis queue (with --out DIR, --work-dir DIR; see docs/deployment.md).
Input lines are limited to 64 MiB. An empty input prints a warning and exits 0.
Exit codes: 0 success, 2 bad input or arguments (the message names line and field), 1 internal failure,
130/143 interrupted by SIGINT/SIGTERM (temporary files removed, an existing --out untouched).`;

export async function main(argv: string[]): Promise<number> {
  // Distributed scoring parses its own options (src/cli/score-queue.ts, src/queue/).
  if (argv.some((a) => a === '--queue' || a.startsWith('--queue='))) return (await import('./score-queue.js')).main(argv);
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        config: { type: 'string' },
        backend: { type: 'string', default: 'auto' },
        out: { type: 'string' },
        window: { type: 'string', default: '8192' },
        help: { type: 'boolean', short: 'h' },
        adapter: { type: 'string' },
        compact: { type: 'string' },
        format: { type: 'string' },
        threads: { type: 'string' },
      },
    });
  } catch (err) {
    throw new UsageError(`${(err as Error).message}\n${HELP}`);
  }
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(HELP + '\n');
    return 0;
  }
  if (positionals.length !== 1) throw new UsageError(`expected exactly one input FILE or -, got ${positionals.length}\n${HELP}`);
  const backend = values.backend as BackendChoice;
  if (!BACKEND_CHOICES.includes(backend)) throw new UsageError(`--backend must be one of ${BACKEND_CHOICES.join(', ')}, got "${values.backend}"`);
  const window = positiveIntegerFlag('window', values.window);
  // Checked here, used when the input is known to be large: an explicit count is kept as given.
  const threads = values.threads === undefined ? undefined : parseThreadsFlag(values.threads);
  const adapter = adapterFlag(values.adapter);
  const backendOptions = backendOptionsFromEnv(process.env, { adapter, reportAdapter: true });
  if (values.compact !== undefined && values.compact !== 'unorm16') throw new UsageError(`--compact must be "unorm16", got "${values.compact}"`);
  const compute: ComputeOptions = values.compact ? { compact: 'unorm16' } : {};
  const input = positionals[0];
  const inputInfo = await inspectInput(input);
  const config = toResolvedConfig(values.config ? await readJsonConfig(values.config) : {});
  const inFormat = formatOf(input, values.format);

  const stopCleanup = cleanUpOnInterrupt();
  try {
    const scored = await scoreFile({
      input,
      inputInfo,
      inFormat,
      out: values.out || undefined,
      config,
      backend,
      compute,
      backendOptions,
      windowSize: window,
      threads,
    });
    if (scored === 0) {
      const name = input === '-' ? 'stdin' : input;
      process.stderr.write(`ecr score: warning: no records in ${name} (empty or blank lines only)${values.out ? `; wrote an empty ${values.out}` : ''}\n`);
    }
  } catch (err) {
    return exitForOutputFailure('ecr score', err);
  } finally {
    stopCleanup();
  }
  return 0;
}
