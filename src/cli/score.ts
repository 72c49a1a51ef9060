/**
 * `ecr score FILE|- [--config FILE] [--backend B] [--out FILE] [--window N]` (ECR-SPEC section 5).
 *
 * Streaming in bounded memory: records are read in windows, each window is bucketed by shape and
 * scored; every result is offered to one selector for the whole input, because a group's
 * selection depends on all its members wherever they appear. When the input is larger than one
 * window, results wait in a temporary file until the selection is known, then are written out
 * in input order with their `selected` flag. Nothing is written if any record is invalid.
 */
import { parseArgs } from 'node:util';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { toResolvedConfig, type ResolvedConfig } from '../config.js';
import { InputError, UsageError } from '../errors.js';
import { BACKEND_CHOICES, type BackendChoice, type ComputeOptions } from '../backends/backend.js';
import { setWebGpuAdapter, setWebGpuAdapterReport, type AdapterPreference } from '../gpu/adapter.js';
import { GroupSelector } from '../select.js';
import { checkRecord, parseJsonLine, type CheckedRecord } from '../records/record.js';
import { GroupKeys, scoreWindow } from '../records/score-records.js';
import { cleanUpOnInterrupt, removeOnInterrupt } from './interrupt.js';
import {
  DEFAULT_MAX_LINE_BYTES, OutputWriteError, Progress, Sink, inspectInput, isRegularFile, openInput, readJsonConfig, readLines,
} from './io.js';
import { openOutput, stdoutOutput } from './out-file.js';
import { SelectedFlags, resultPrefix } from './score-output.js';
import { arrowLayoutOf, formatOf } from '../columnar/format.js';

const HELP = `usage: ecr score FILE|- [--config FILE] [--backend auto|webgpu|cpu|cpu-reference] [--out FILE] [--window N]
                 [--adapter auto|native|opengles] [--compact unorm16] [--format jsonl|parquet|arrow]
       ecr score --queue redis://HOST:PORT INPUT... --out DIR [--work-dir DIR]   (on ecr worker processes;
                 "ecr score --queue URL --help" lists its options)

Scores one trajectory per JSONL line and writes one result line per input line, in order:
  {"id", "group", "EVB", "CR", "TS", "ES", "PD", "CCI", "admissible", "selected"}
  (with "pCorrect" before "selected" when the config has a "calibration" map from ecr calibrate)
--window N   records scored per batch (default 8192); memory grows with N, not with the file.
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

/** Invalid lines reported before giving up, so one run shows most problems of a file. */
const MAX_REPORTED_ERRORS = 20;

const ARRAY_HINT = 'hint: this looks like a JSON array; ecr score reads JSONL, one JSON object per line'
  + " (convert with: jq -c '.[]' FILE)";

const formatBytes = (n: number) => (n % (1 << 20) === 0 ? `${n / (1 << 20)} MiB` : `${n}-byte`);

/** The line-length cap: 64 MiB, or ECR_MAX_LINE_BYTES (for tests that should not write 64 MiB). */
function maxLineBytes(): number {
  const env = process.env.ECR_MAX_LINE_BYTES;
  if (env === undefined || env === '') return DEFAULT_MAX_LINE_BYTES;
  const n = Number(env);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`ECR_MAX_LINE_BYTES must be a positive integer, got "${env}"`);
  return n;
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
        adapter: { type: 'string' }, compact: { type: 'string' }, format: { type: 'string' },
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
  const window = Number(values.window);
  if (!Number.isInteger(window) || window < 1) throw new UsageError(`--window must be a positive integer, got "${values.window}"`);
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
        scored = await scoreStream(openInput(input), { config, backend, compute, windowSize: window, lineCap }, out.sink);
      } else {
        // Parquet or Arrow on either side: the columnar path (src/columnar/), loaded only then.
        const { scoreToOutput } = await import('../columnar/score-columnar.js');
        scored = await scoreToOutput(
          { file: input, format: inFormat, stream: isRegularFile(input, inputInfo) ? null : openInput(input), open: () => openInput(input), windowSize: window, lineCap },
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
    if (err instanceof OutputWriteError) {
      process.stderr.write(`ecr score: ${err.message}\n`);
      return 1;
    }
    throw err;
  } finally {
    stopCleanup();
  }
  return 0;
}

export interface ScoreSettings {
  config: ResolvedConfig;
  backend: BackendChoice;
  compute: ComputeOptions;
  windowSize: number;
  lineCap: number;
  /** Line number of the source's first line (1; a shard of a file, src/queue/, starts further on). */
  firstLine?: number;
}

/** Results of all windows so far, on disk, once the input outgrew one window. */
interface Spill { dir: string; file: string; sink: Sink; forget: () => void }

async function startSpill(): Promise<Spill> {
  let dir: string;
  try {
    dir = await mkdtemp(path.join(os.tmpdir(), 'ecr-score-'));
  } catch (err) {
    throw new OutputWriteError(`a temporary directory in ${os.tmpdir()} (set TMPDIR)`, err);
  }
  const forget = removeOnInterrupt(dir);
  const file = path.join(dir, 'results.jsonl');
  return { dir, file, sink: new Sink(createWriteStream(file), `temporary results in ${dir}`), forget };
}

/**
 * Scores every record of `source` and writes the results to `sink`; returns the record count.
 * `ecr worker` scores each shard of a distributed run with this same function (src/queue/).
 */
export async function scoreStream(source: Readable, s: ScoreSettings, sink: Sink): Promise<number> {
  const groups = new GroupKeys();
  const selector = new GroupSelector(s.config.tau);
  const progress = new Progress('ecr score');
  const errors: InputError[] = [];
  let looksLikeArray = false;
  let records: CheckedRecord[] = [];
  let lines: number[] = [];
  let pending: string[] = []; // result prefixes of the first window, kept in memory
  // Assigned inside flush(); the annotation keeps TypeScript from narrowing it to null below.
  let spill = null as Spill | null;
  let scored = 0;
  let lineNo = (s.firstLine ?? 1) - 1;

  const flush = async () => {
    if (records.length === 0 || errors.length > 0) { records = []; lines = []; return; }
    const windowLines = lines;
    const w = await scoreWindow(records, scored, s.config, s.backend, groups, selector, (i) => ({ line: windowLines[i - scored] }), s.compute);
    const prefixes = records.map((r, j) => resultPrefix(r, w, j, windowLines[j], s.config));
    scored += records.length;
    records = []; lines = [];
    if (spill) {
      await spill.sink.write(prefixes.join('\n') + '\n');
    } else if (pending.length === 0) {
      pending = prefixes;
    } else {
      // A second window: move everything to a temporary file to keep memory bounded.
      spill = await startSpill();
      await spill.sink.write(pending.join('\n') + '\n' + prefixes.join('\n') + '\n');
      pending = [];
    }
    progress.update(scored);
  };

  try {
    for await (const text of readLines(source, s.lineCap)) {
      lineNo++;
      if (typeof text !== 'string') {
        errors.push(new InputError(`the line is ${text.bytes} bytes, longer than the ${formatBytes(s.lineCap)} limit on one record; it was skipped`, { line: lineNo }));
        if (errors.length >= MAX_REPORTED_ERRORS) break;
        continue;
      }
      if (text.trim() === '') continue;
      try {
        records.push(checkRecord(parseJsonLine(text, lineNo), { line: lineNo }, lineNo, text));
        lines.push(lineNo);
      } catch (err) {
        if (!(err instanceof InputError)) throw err;
        errors.push(err);
        if (/^\s*\[/.test(text)) looksLikeArray = true;
        if (errors.length >= MAX_REPORTED_ERRORS) break;
      }
      if (records.length >= s.windowSize) await flush();
    }
    await flush();
    if (errors.length > 0) {
      const more = errors.length >= MAX_REPORTED_ERRORS ? `\n(stopped after ${MAX_REPORTED_ERRORS} invalid lines)` : '';
      const hint = looksLikeArray ? `\n${ARRAY_HINT}` : '';
      throw new InputError(`${errors.length} invalid line${errors.length > 1 ? 's' : ''}; nothing was written:\n  ${errors.map((e) => e.message).join('\n  ')}${more}${hint}`);
    }

    const flags = new SelectedFlags(selector.selectedIndices());
    if (!spill) {
      await sink.write(pending.map((p) => flags.finish(p)).join(''));
    } else {
      await spill.sink.finish();
      let chunk: string[] = [];
      for await (const prefix of readLines(createReadStream(spill.file, { highWaterMark: 1 << 20 }))) {
        // Prefixes are a few hundred bytes; an overlong one would mean the spill file was damaged.
        if (typeof prefix !== 'string') throw new Error(`temporary results in ${spill.dir} are damaged (a ${prefix.bytes}-byte line)`);
        chunk.push(flags.finish(prefix));
        if (chunk.length >= 8192) { await sink.write(chunk.join('')); chunk = []; }
      }
      await sink.write(chunk.join(''));
    }
    progress.done(scored);
    return scored;
  } finally {
    if (spill) {
      await rm(spill.dir, { recursive: true, force: true });
      spill.forget();
    }
  }
}
