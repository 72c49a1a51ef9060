/**
 * `ecr score --queue redis://HOST:PORT INPUT... --out DIR [--work-dir DIR]`: the same scoring as
 * `ecr score`, spread over `ecr worker` processes through a BullMQ queue (src/queue/).
 *
 * Each input is planned into shards that never split a group (src/queue/shard-plan.ts), the
 * shards are enqueued and scored by the workers, and when every shard of every input has
 * completed, each input's output is assembled in input order and renamed into DIR under the
 * input's file name. As in a single-process run, nothing is written when any record is invalid,
 * and an existing output is replaced only on success.
 *
 * `--resume RUN` collects a run whose submitter is gone (killed, or gave up at --timeout): the
 * run's manifest in the work directory says what to wait for and where the outputs go.
 */
import os from 'node:os';
import path from 'node:path';
import { stat } from 'node:fs/promises';
import { toResolvedConfig } from '../core/config.js';
import { UsageError } from '../core/errors.js';
import { plural } from '../core/plural.js';
import { checkQueueUrl, redactUrl } from '../queue/queue-url.js';
import { planShards } from '../queue/shard-plan.js';
import { checkQueueName, DEFAULT_QUEUE_NAME, FIXED_BACKENDS, SHARD_JOB_FORMAT, type FixedBackend, type ShardJob } from '../queue/shard-job.js';
import { adoptRunDir, concatenateInto, createRunDir, placeInput, startHeartbeat, sweepOrphans, writeManifest, type RunDir, type RunManifest } from '../queue/run-dir.js';
import { inputChange, stampOf } from '../queue/input-change.js';
import { cleanUpOnInterrupt } from './interrupt.js';
import { removeOnInterrupt } from '../engine/io/temporary.js';
import { parseArgs } from '../core/parse-args.js';
import { maxLineBytes, positiveIntegerFlag, exitForOutputFailure, readJsonConfig } from './io.js';
import { OutputWriteError } from '../engine/io/sink.js';
import { describeFsError } from '../engine/io/fs-error.js';
import { inspectInput, type InputInfo } from '../engine/io/input.js';
import { openOutput, type Output } from '../engine/io/output-file.js';
import { refuseNotJsonlFile } from '../engine/jsonl/not-jsonl.js';

/** The default --orphan-grace: a day to notice a killed submitter and collect its run with --resume. */
const DEFAULT_ORPHAN_GRACE_S = 86_400;
/** Below this a live run on another machine (heartbeat seen late through a shared filesystem) could be swept. */
const MIN_ORPHAN_GRACE_S = 300;

export const OPTIONS = {
  queue: { type: 'string' },
  'queue-name': { type: 'string', default: DEFAULT_QUEUE_NAME },
  out: { type: 'string' },
  'work-dir': { type: 'string' },
  config: { type: 'string' },
  window: { type: 'string' },
  'shard-bytes': { type: 'string' },
  backend: { type: 'string' },
  compact: { type: 'string' },
  attempts: { type: 'string', default: '3' },
  'no-worker-notice': { type: 'string', default: '2000' },
  timeout: { type: 'string' },
  resume: { type: 'string' },
  'orphan-grace': { type: 'string', default: String(DEFAULT_ORPHAN_GRACE_S) },
  help: { type: 'boolean', short: 'h' },
} as const;

const HELP = `usage: ecr score --queue redis://HOST:PORT INPUT... --out DIR [--work-dir DIR] [--config FILE]
       ecr score --queue redis://HOST:PORT --resume RUN [--work-dir DIR] [--out DIR]

Scores the inputs on the "ecr worker" processes of a BullMQ queue and writes DIR/<input's file name>
for each input: the same bytes as "ecr score INPUT --out FILE" on one process (see --backend).
  --queue URL             the Redis server of the queue (redis://, rediss:// or redis+sentinel://, with /db if any)
  --queue-name NAME       BullMQ queue name (default ${DEFAULT_QUEUE_NAME}; the same as the workers')
  --out DIR               an existing directory for the outputs (each replaced only when the whole run succeeded)
  --work-dir DIR          shared directory for shard inputs and outputs (default TMPDIR; several machines: a shared filesystem)
  --config FILE           ECR configuration, as for ecr score
  --window N              records scored per batch in a worker (default 8192)
  --shard-bytes N         target shard size in bytes (default 16777216); a shard never splits a group
  --backend B             compute every shard with B (cpu, cpu-reference or webgpu) whatever the workers' own --backend
  --compact unorm16       with --backend webgpu: upload E as unorm16
  --attempts N            tries per shard before the run fails (default 3)
  --no-worker-notice MS   say so when no worker has been connected this long (default 2000)
  --timeout S             stop waiting S seconds after queueing, leaving the run for --resume (default: no limit)
  --resume RUN            collect the run RUN (ecr-run-...) in --work-dir whose submitter was killed or timed out
  --orphan-grace S        remove runs in --work-dir whose submitter has been gone S seconds (default ${DEFAULT_ORPHAN_GRACE_S}; 0 = never)
  -h, --help              print this help
Inputs must be regular files, unchanged until the run ends. Exit codes: 0 success, 2 bad input or arguments (the
message names line and field), 1 Redis unreachable, a shard failed for another reason or --timeout, 130/143 interrupted.
Without --backend each worker uses its own, and the submitter warns when a run's shards were computed by different backends.`;

interface Common {
  url: string;
  queueName: string;
  attempts: number;
  noWorkerNoticeMs: number;
  timeoutMs: number | null;
  workDir: string;
  resumeCommand: (id: string) => string;
}

const warn = (line: string) => process.stderr.write(`ecr score: ${line}\n`);

function fixedBackend(backend: string | undefined, compact: string | undefined): { backend: FixedBackend | null; compact: 'unorm16' | null } {
  if (backend === undefined) {
    if (compact !== undefined) throw new UsageError('--compact with --queue needs --backend webgpu (without --backend, --compact is each worker\'s choice: ecr worker --compact)');
    return { backend: null, compact: null };
  }
  if (!FIXED_BACKENDS.includes(backend as FixedBackend)) {
    throw new UsageError(`--backend with --queue fixes the backend of every shard: one of ${FIXED_BACKENDS.join(', ')}, got "${backend}" (leave it out to let each worker use its own)`);
  }
  if (compact !== undefined && (compact !== 'unorm16' || backend !== 'webgpu')) throw new UsageError(`--compact must be "unorm16", with --backend webgpu; got --compact ${compact} --backend ${backend}`);
  return { backend: backend as FixedBackend, compact: compact === undefined ? null : 'unorm16' };
}

export async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, options: { ...OPTIONS, adapter: { type: 'string' } } });
  } catch (err) {
    throw new UsageError(`${(err as Error).message}\n${HELP}`);
  }
  const { values, positionals } = parsed;
  if (values.help) { process.stdout.write(HELP + '\n'); return 0; }
  if (values.adapter !== undefined) throw new UsageError('--adapter is chosen by each worker with --queue (ecr worker --adapter ...), not by the submitter');
  const url = values.queue ?? '';
  checkQueueUrl(url);
  const queueName = checkQueueName(values['queue-name']);
  const attempts = positiveIntegerFlag('attempts', values.attempts);
  const noWorkerNoticeMs = positiveIntegerFlag('no-worker-notice', values['no-worker-notice']);
  const timeoutMs = values.timeout === undefined ? null : positiveIntegerFlag('timeout', values.timeout) * 1000;
  const graceS = values['orphan-grace'] === '0' ? 0 : positiveIntegerFlag('orphan-grace', values['orphan-grace']);
  if (graceS !== 0 && graceS < MIN_ORPHAN_GRACE_S) {
    throw new UsageError(`--orphan-grace must be 0 (never remove) or at least ${MIN_ORPHAN_GRACE_S} seconds (a live submitter on another machine could look gone for longer), got ${graceS}`);
  }
  const workDir = values['work-dir'] ?? os.tmpdir();
  const resumeCommand = (id: string) => `ecr score --queue ${redactUrl(url)}${queueName === DEFAULT_QUEUE_NAME ? '' : ` --queue-name ${queueName}`} --resume ${id} --work-dir ${path.resolve(workDir)}`;
  const common: Common = { url, queueName, attempts, noWorkerNoticeMs, timeoutMs, workDir, resumeCommand };

  if (values.resume !== undefined) {
    if (positionals.length > 0) throw new UsageError(`--resume takes no INPUT: the run's inputs are in its directory (got ${positionals.join(' ')})`);
    for (const flag of ['config', 'window', 'shard-bytes', 'backend', 'compact'] as const) {
      if (values[flag] !== undefined) throw new UsageError(`--${flag} is the run's own with --resume (fixed when it was submitted)`);
    }
    return resume(values.resume, values.out, graceS, common);
  }

  const fixed = fixedBackend(values.backend, values.compact);
  if (positionals.length === 0) throw new UsageError(`expected at least one input FILE\n${HELP}`);
  if (values.out === undefined) throw new UsageError('--out DIR is required with --queue (one output file per input is written there)');
  const window = positiveIntegerFlag('window', values.window ?? '8192');
  const shardBytes = positiveIntegerFlag('shard-bytes', values['shard-bytes'] ?? String(16 << 20));
  const lineCap = maxLineBytes();

  const infos: InputInfo[] = [];
  const names = new Map<string, string>();
  for (const input of positionals) {
    if (input === '-') throw new UsageError('--queue needs its inputs as files (the workers read byte ranges of them); save stdin to a file first');
    const info = await inspectInput(input);
    if (!info.stat?.isFile()) throw new UsageError(`${input}: --queue needs a regular file (the workers read byte ranges of it)`);
    await refuseNotJsonlFile(input, input, 'queue');
    const base = path.basename(input);
    const clash = names.get(base);
    if (clash !== undefined) throw new UsageError(`${clash} and ${input} would both be written to --out ${path.join(values.out, base)}; give inputs different file names`);
    names.set(base, input);
    infos.push(info);
  }
  const outDir = await stat(values.out).catch((err) => { throw new UsageError(`cannot write --out ${values.out}: ${describeFsError(err)}`); });
  if (!outDir.isDirectory()) throw new UsageError(`--out ${values.out} must be a directory with --queue (one output file per input is written there)`);
  const rawConfig = values.config ? await readJsonConfig(values.config) : {};
  toResolvedConfig(rawConfig); // a bad configuration fails here, before anything is queued
  // BullMQ and ioredis load only once the arguments are known to be good.
  const { probeRedis } = await import('../queue/connection.js');
  await probeRedis(url);
  await sweepOrphans(workDir, graceS * 1000, warn, resumeCommand);

  const stopCleanup = cleanUpOnInterrupt();
  const outputs: Output[] = [];
  try {
    // Opened (and so checked) before any input is read, as in a single-process run.
    const outPaths = positionals.map((p) => path.resolve(values.out!, path.basename(p)));
    for (let i = 0; i < positionals.length; i++) outputs.push(await openOutput(outPaths[i], infos[i]));
    const run = await createRunDir(workDir, rawConfig);
    const manifest: RunManifest = { format: 1, created: new Date().toISOString(), queueName, inputs: [], jobs: [] };
    return await collect(run, manifest, outputs, common, false, async () => {
      for (let i = 0; i < positionals.length; i++) {
        const input = await placeInput(run, positionals[i], i);
        const stamp = await stampOf(input);
        const plan = await planShards(input, shardBytes, lineCap);
        // The plan is only as good as the bytes it read.
        const changed = await inputChange(input, positionals[i], stamp);
        if (changed) throw changed;
        manifest.inputs.push({ name: positionals[i], output: outPaths[i], placed: input, size: stamp.size, mtimeMs: stamp.mtimeMs });
        plan.shards.forEach((shard, k) => manifest.jobs.push({
          format: SHARD_JOB_FORMAT, run: run.id, inputName: positionals[i], inputIndex: i, input,
          start: shard.start, end: shard.end, firstLine: shard.firstLine, records: shard.records,
          output: path.join(run.shardsDir, `${i}-${k}.jsonl`), config: run.config, window, lineCap, index: k, count: plan.shards.length,
          inputSize: stamp.size, inputMtimeMs: stamp.mtimeMs, backend: fixed.backend, compact: fixed.compact,
        }));
        if (plan.records === 0) warn(`warning: no records in ${positionals[i]} (empty or blank lines only); wrote an empty ${path.join(values.out!, path.basename(positionals[i]))}`);
      }
      await writeManifest(run, manifest);
    });
  } catch (err) {
    await Promise.allSettled(outputs.map((o) => o.abort()));
    return exitForOutputFailure('ecr score', err);
  } finally {
    stopCleanup();
  }
}

/** `--resume RUN`: takes over a run whose owner is gone, waits for what is left, writes its outputs. */
async function resume(id: string, out: string | undefined, graceS: number, c: Common): Promise<number> {
  if (out !== undefined) {
    const outDir = await stat(out).catch((err) => { throw new UsageError(`cannot write --out ${out}: ${describeFsError(err)}`); });
    if (!outDir.isDirectory()) throw new UsageError(`--out ${out} must be a directory with --queue`);
  }
  const { probeRedis } = await import('../queue/connection.js');
  await probeRedis(c.url);
  // The run being collected may be past its grace: it is not swept.
  await sweepOrphans(c.workDir, graceS * 1000, warn, c.resumeCommand, id);
  const { run, manifest } = await adoptRunDir(c.workDir, id);
  if (manifest.queueName !== c.queueName) throw new UsageError(`--resume ${id}: the run was queued on --queue-name ${manifest.queueName}, not ${c.queueName}`);
  const stopCleanup = cleanUpOnInterrupt();
  const outputs: Output[] = [];
  try {
    for (const input of manifest.inputs) {
      const changed = await inputChange(input.placed, input.name, input);
      if (changed) throw changed;
    }
    for (const input of manifest.inputs) {
      const target = out === undefined ? input.output : path.resolve(out, path.basename(input.output));
      outputs.push(await openOutput(target, { stat: await stat(input.placed) }));
    }
    return await collect(run, manifest, outputs, c, true, async () => {});
  } catch (err) {
    await Promise.allSettled(outputs.map((o) => o.abort()));
    return exitForOutputFailure('ecr score', err);
  } finally {
    stopCleanup();
  }
}

/**
 * Owns `run` while it is prepared (`prepare`: placing inputs, planning, the manifest), queued and
 * scored, then writes each input's output. The run directory is removed at the end, whatever the
 * outcome, except after --timeout, when it is left for --resume.
 */
async function collect(run: RunDir, manifest: RunManifest, outputs: Output[], c: Common, adopt: boolean, prepare: () => Promise<void>): Promise<number> {
  const forget = removeOnInterrupt(run.dir);
  const stopHeartbeat = startHeartbeat(run);
  let keep = false;
  try {
    await prepare();
    const { runShardJobs, RunTimeoutError } = await import('../queue/submit.js');
    let report;
    try {
      report = await runShardJobs(manifest.jobs, {
        url: c.url, queueName: c.queueName, attempts: c.attempts, noWorkerNoticeMs: c.noWorkerNoticeMs,
        timeoutMs: c.timeoutMs, resumeCommand: c.resumeCommand(run.id), adopt,
      });
    } catch (err) {
      keep = err instanceof RunTimeoutError;
      throw err;
    }
    // Checked once more: an input rewritten in place after its last shard was read still passes the workers' checks.
    for (const input of manifest.inputs) {
      const changed = await inputChange(input.placed, input.name, input);
      if (changed) throw changed;
    }
    const mixed = [...report.backends].filter(([label]) => label !== '?');
    if (mixed.length > 1) {
      warn(`warning: the shards of this run were computed by different backends (${mixed.map(([b, n]) => `${b}: ${plural(n, 'shard')}`).join(', ')}); `
        + 'results can differ from a single-process run in the last digits. Fix one backend for the run with --backend');
    }
    for (let i = 0; i < outputs.length; i++) {
      const files = manifest.jobs.filter((j) => j.inputIndex === i).sort((a, b) => a.index - b.index).map((j) => j.output);
      try {
        await concatenateInto(files, outputs[i].sink);
      } catch (err) {
        throw new OutputWriteError(`--out ${manifest.inputs[i].output}`, err);
      }
    }
    for (const o of outputs) await o.commit();
    return 0;
  } finally {
    stopHeartbeat();
    if (!keep) await run.remove();
    forget();
  }
}

