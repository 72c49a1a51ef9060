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
import { mkdtemp, rm } from 'node:fs/promises';
import { createWriteStream } from 'node:fs';
import { once } from 'node:events';
import os from 'node:os';
import path from 'node:path';
import type { Writable } from 'node:stream';
import { toResolvedConfig, type ResolvedConfig } from '../config.js';
import { pCorrectOf } from '../calibration/probability-map.js';
import { InputError, UsageError } from '../errors.js';
import { BACKEND_CHOICES, type BackendChoice, type ComputeOptions } from '../backends/backend.js';
import { setWebGpuAdapter, type AdapterPreference } from '../gpu/adapter.js';
import { GroupSelector } from '../select.js';
import { checkRecord, parseJsonLine, type CheckedRecord } from '../records/record.js';
import { GroupKeys, scoreWindow, type WindowScores } from '../records/score-records.js';
import { AtomicOutput, Progress, checkReadable, readJsonConfig, readLines, writeChunk } from './io.js';

const HELP = `usage: ecr score FILE|- [--config FILE] [--backend auto|webgpu|cpu|cpu-reference] [--out FILE] [--window N]
                 [--adapter auto|native|opengles] [--compact unorm16]

Scores one trajectory per JSONL line and writes one result line per input line, in order:
  {"id", "group", "EVB", "CR", "TS", "ES", "PD", "CCI", "admissible", "selected"}
  (with "pCorrect" before "selected" when the config has a "calibration" map from ecr calibrate)
--window N   records scored per batch (default 8192); memory grows with N, not with the file.
--adapter    WebGPU adapter to use (default: native, then OpenGL ES; also ECR_WEBGPU_ADAPTER).
--compact    upload E to the GPU as unorm16 (webgpu only; see the README for the tolerance).
Exit codes: 0 success, 2 bad input or arguments (the message names line and field), 1 internal failure.`;

/** Invalid lines reported before giving up, so one run shows most problems of a file. */
const MAX_REPORTED_ERRORS = 20;

export async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv, allowPositionals: true,
      options: {
        config: { type: 'string' }, backend: { type: 'string', default: 'auto' }, out: { type: 'string' },
        window: { type: 'string', default: '8192' }, help: { type: 'boolean', short: 'h' },
        adapter: { type: 'string' }, compact: { type: 'string' },
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
  if (values.compact !== undefined && values.compact !== 'unorm16') throw new UsageError(`--compact must be "unorm16", got "${values.compact}"`);
  const compute: ComputeOptions = values.compact ? { compact: 'unorm16' } : {};
  const input = positionals[0];
  await checkReadable(input);
  const config = toResolvedConfig(values.config ? await readJsonConfig(values.config) : {});

  const out = values.out ? new AtomicOutput(values.out) : null;
  try {
    await scoreStream(input, config, backend, compute, window, out ? out.stream : process.stdout);
    if (out) await out.commit();
  } catch (err) {
    if (out) await out.abort();
    throw err;
  }
  return 0;
}

function resultPrefix(r: CheckedRecord, w: WindowScores, j: number, config: ResolvedConfig): string {
  const m = w.metrics;
  const p = pCorrectOf(config, m.cci[j]);
  // Without the closing brace: `selected` is appended once the group's selection is known.
  return `{"id":${JSON.stringify(r.id)},"group":${JSON.stringify(r.group)},"EVB":${m.evb[j]},"CR":${m.cr[j]},"TS":${m.ts[j]},`
    + `"ES":${m.es[j]},"PD":${m.pd[j]},"CCI":${m.cci[j]},"admissible":${w.admissible[j] === 1}${p === null ? '' : `,"pCorrect":${p}`}`;
}

/** Results of all windows so far, on disk, once the input outgrew one window. */
interface Spill { dir: string; file: string; stream: Writable }

async function scoreStream(input: string, config: ResolvedConfig, backend: BackendChoice, compute: ComputeOptions, windowSize: number, sink: Writable): Promise<void> {
  const groups = new GroupKeys();
  const selector = new GroupSelector(config.tau);
  const progress = new Progress('ecr score');
  const errors: InputError[] = [];
  let records: CheckedRecord[] = [];
  let lines: number[] = [];
  let pending: string[] = []; // result prefixes of the first window, kept in memory
  // Assigned inside flush(); the annotation keeps TypeScript from narrowing it to null below.
  let spill = null as Spill | null;
  let scored = 0;
  let lineNo = 0;

  const flush = async () => {
    if (records.length === 0 || errors.length > 0) { records = []; lines = []; return; }
    const firstLine = lines;
    const w = await scoreWindow(records, scored, config, backend, groups, selector, (i) => ({ line: firstLine[i - scored] }), compute);
    const prefixes = records.map((r, j) => resultPrefix(r, w, j, config));
    scored += records.length;
    records = []; lines = [];
    if (spill) {
      await writeChunk(spill.stream, prefixes.join('\n') + '\n');
    } else if (pending.length === 0) {
      pending = prefixes;
    } else {
      // A second window: move everything to a temporary file to keep memory bounded.
      const dir = await mkdtemp(path.join(os.tmpdir(), 'ecr-score-'));
      const file = path.join(dir, 'results.jsonl');
      spill = { dir, file, stream: createWriteStream(file) };
      await writeChunk(spill.stream, pending.join('\n') + '\n' + prefixes.join('\n') + '\n');
      pending = [];
    }
    progress.update(scored);
  };

  try {
    for await (const text of readLines(input)) {
      lineNo++;
      if (text.trim() === '') continue;
      try {
        records.push(checkRecord(parseJsonLine(text, lineNo), { line: lineNo }, lineNo));
        lines.push(lineNo);
      } catch (err) {
        if (!(err instanceof InputError)) throw err;
        errors.push(err);
        if (errors.length >= MAX_REPORTED_ERRORS) break;
      }
      if (records.length >= windowSize) await flush();
    }
    await flush();
    if (errors.length > 0) {
      const more = errors.length >= MAX_REPORTED_ERRORS ? `\n(stopped after ${MAX_REPORTED_ERRORS} invalid lines)` : '';
      throw new InputError(`${errors.length} invalid line${errors.length > 1 ? 's' : ''}; nothing was written:\n  ${errors.map((e) => e.message).join('\n  ')}${more}`);
    }

    const selectedIndex = new Set(selector.results().map((s) => s.selectedIndex));
    const finish = (prefix: string, i: number) => `${prefix},"selected":${selectedIndex.has(i)}}\n`;
    if (!spill) {
      await writeChunk(sink, pending.map(finish).join(''));
    } else {
      spill.stream.end();
      await once(spill.stream, 'finish');
      let i = 0;
      let chunk: string[] = [];
      for await (const prefix of readLines(spill.file)) {
        chunk.push(finish(prefix, i++));
        if (chunk.length >= 8192) { await writeChunk(sink, chunk.join('')); chunk = []; }
      }
      await writeChunk(sink, chunk.join(''));
    }
    progress.done(scored);
  } finally {
    if (spill) await rm(spill.dir, { recursive: true, force: true });
  }
}
