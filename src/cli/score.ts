/**
 * `ecr score FILE|- [--config FILE] [--backend B] [--out FILE] [--window N] [--threads N]`
 * (ECR-SPEC section 5): the arguments, the input and the output. The streaming engine, parse
 * workers, windows, selection and spill file, is score-jsonl.ts.
 */
import { parseArgs } from '../core/parse-args.js';
import { toResolvedConfig } from '../core/config.js';
import { UsageError } from '../core/errors.js';
import { BACKEND_CHOICES, type BackendChoice, type ComputeOptions } from '../backends/backend.js';
import { setWebGpuAdapter, setWebGpuAdapterReport, type AdapterPreference } from '../backends/webgpu/device/adapter.js';
import { cleanUpOnInterrupt } from './interrupt.js';
import { maxLineBytes, exitForOutputFailure, parseThreadsFlag, positiveIntegerEnv, positiveIntegerFlag, readJsonConfig } from './io.js';
import { inspectInput, isRegularFile, openInput } from '../engine/io/input.js';
import { openOutput, stdoutOutput } from '../engine/io/output-file.js';
import { scoreStream } from '../engine/jsonl/score-stream.js';
import { DEFAULT_CHUNK_BYTES } from '../engine/io/lines.js';
import { arrowLayoutOf, formatOf } from '../engine/columnar/format.js';
import { checkedJsonlInput } from '../engine/jsonl/not-jsonl.js';


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
--compact    upload E to the GPU as unorm16 (webgpu only; see the README for the tolerance).
--out FILE   write results to FILE (replaced only on success; a symlink is followed, a FIFO streamed into);
             FILE.parquet or FILE.arrow (.arrows: IPC stream) writes a columnar file, anything else JSONL.
--format F   the input's format when its name does not say it (default: by extension; .parquet, .arrow,
             .arrows, .feather are columnar, anything else JSONL). Columnar schema: see the README.
--queue URL  score on the ecr worker processes of a Redis queue (with --out DIR, --work-dir DIR; see the README).
Input lines are limited to 64 MiB. An empty input prints a warning and exits 0.
Exit codes: 0 success, 2 bad input or arguments (the message names line and field), 1 internal failure,
130/143 interrupted by SIGINT/SIGTERM (temporary files removed, an existing --out untouched).`;


/** Bytes per parse chunk: 1 MiB, or ECR_JSONL_CHUNK_BYTES (tests use tiny chunks to cross many chunk boundaries). */
function chunkBytes(): number | undefined {
  return positiveIntegerEnv('ECR_JSONL_CHUNK_BYTES');
}

export async function main(argv: string[]): Promise<number> {
  // Distributed scoring parses its own options (src/cli/score-queue.ts, src/queue/).
  if (argv.some((a) => a === '--queue' || a.startsWith('--queue='))) return (await import('./score-queue.js')).main(argv);
  let parsed;
  try {
    parsed = parseArgs({
      args: argv, allowPositionals: true,
      options: {
        config: { type: 'string' }, backend: { type: 'string', default: 'auto' }, out: { type: 'string' },
        window: { type: 'string', default: '8192' }, help: { type: 'boolean', short: 'h' },
        adapter: { type: 'string' }, compact: { type: 'string' }, format: { type: 'string' }, threads: { type: 'string' },
      },
    });
  } catch (err) {
    throw new UsageError(`${(err as Error).message}\n${HELP}`);
  }
  const { values, positionals } = parsed;
  if (values.help) { process.stdout.write(HELP + '\n'); return 0; }
  if (positionals.length !== 1) throw new UsageError(`expected exactly one input FILE or -, got ${positionals.length}\n${HELP}`);
  const backend = values.backend as BackendChoice;
  if (!BACKEND_CHOICES.includes(backend)) throw new UsageError(`--backend must be one of ${BACKEND_CHOICES.join(', ')}, got "${values.backend}"`);
  const window = positiveIntegerFlag('window', values.window!);
  const threads = parseThreadsFlag(values.threads);
  if (values.adapter !== undefined) setWebGpuAdapter(values.adapter as AdapterPreference);
  setWebGpuAdapterReport(true);
  if (values.compact !== undefined && values.compact !== 'unorm16') throw new UsageError(`--compact must be "unorm16", got "${values.compact}"`);
  const compute: ComputeOptions = values.compact ? { compact: 'unorm16' } : {};
  const lineCap = maxLineBytes();
  const input = positionals[0];
  const inputInfo = await inspectInput(input);
  const config = toResolvedConfig(values.config ? await readJsonConfig(values.config) : {});
  const inFormat = formatOf(input, values.format);
  const outFormat = values.out ? formatOf(values.out) : 'jsonl';

  const stopCleanup = cleanUpOnInterrupt();
  try {
    // Opened (and so checked) before the first input byte is read: a run never fails at the end
    // for an output it could not have written.
    const out = values.out ? await openOutput(values.out, inputInfo) : stdoutOutput();
    let scored: number;
    try {
      if (inFormat === 'jsonl' && outFormat === 'jsonl') {
        const inputBytes = inputInfo.stat?.isFile() ? inputInfo.stat.size : null;
        const chunk = chunkBytes() ?? DEFAULT_CHUNK_BYTES;
        // A file of one chunk has nothing to split: starting parse workers (~0.1 s) would only
        // slow it down. An explicit --threads is kept as given.
        const parseThreads = values.threads === undefined && inputBytes !== null && inputBytes <= chunk ? 0 : threads;
        scored = await scoreStream(await checkedJsonlInput(input, () => openInput(input), isRegularFile(input, inputInfo)), { config, backend, compute, windowSize: window, lineCap, threads: parseThreads, inputBytes, chunkBytes: chunk }, out.sink);
      } else {
        // Parquet or Arrow on either side: the columnar path (src/engine/columnar/), loaded only then.
        const { scoreToOutput } = await import('../engine/columnar/score-columnar.js');
        scored = await scoreToOutput(
          { file: input, format: inFormat, stream: isRegularFile(input, inputInfo) ? null : openInput(input), windowSize: window, lineCap },
          { format: outFormat, arrowLayout: arrowLayoutOf(values.out ?? '-'), sink: out.sink },
          { config, backend, compute },
        );
      }
      await out.commit();
    } catch (err) {
      await out.abort();
      throw err;
    }
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
