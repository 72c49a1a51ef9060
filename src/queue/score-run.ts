/**
 * A distributed `ecr score --queue` run without its argv: the inputs checked, planned into shards
 * that never split a group (shard-plan.ts), queued for the `ecr worker` processes (submit.ts), and,
 * once every shard of every input has completed, each input's output assembled in input order and
 * renamed into the output directory under the input's file name. As in a single-process run,
 * nothing is written when any record is invalid, and an existing output is replaced only on
 * success. A run whose submitter is gone (killed, or gave up at its timeout) is collected with
 * resumeRun: the run's manifest in the work directory says what to wait for and where the outputs go.
 *
 * BullMQ and ioredis load only when Redis is first contacted (prepareQueue).
 */
import path from 'node:path';
import { stat } from 'node:fs/promises';
import { UsageError } from '../core/errors.js';
import { plural } from '../core/plural.js';
import { OutputWriteError } from '../engine/io/sink.js';
import { describeFsError } from '../engine/io/fs-error.js';
import { inspectInput, type InputInfo } from '../engine/io/input.js';
import { openOutput, type Output } from '../engine/io/output-file.js';
import { removeOnInterrupt } from '../engine/io/temporary.js';
import { refuseNotJsonlFile } from '../engine/jsonl/not-jsonl.js';
import { planShards } from './shard-plan.js';
import { SHARD_JOB_FORMAT, type FixedBackend, type ShardJob } from './shard-job.js';
import {
  adoptRunDir,
  concatenateInto,
  createRunDir,
  placeInput,
  startHeartbeat,
  sweepOrphans,
  writeManifest,
  type RunDir,
  type RunManifest,
} from './run-dir.js';
import { inputChange, stampOf } from './input-change.js';

/** What every run of one submitter shares: where the queue is, how long to wait, where runs live. */
export interface QueueRunSettings {
  url: string;
  queueName: string;
  attempts: number;
  noWorkerNoticeMs: number;
  timeoutMs: number | null;
  workDir: string;
  /** The command that collects run `id` later (said when the submitter stops waiting). */
  resumeCommand: (id: string) => string;
  /** One line for the user (warnings; the CLI prefixes its name). */
  warn: (line: string) => void;
}

export interface NewRun {
  inputs: string[];
  /** inspectInput of each input (checkRunInputs). */
  infos: InputInfo[];
  outDir: string;
  /** The configuration as read (already checked); written into the run directory for the workers. */
  rawConfig: unknown;
  window: number;
  shardBytes: number;
  lineCap: number;
  /** The backend every shard must use, or null for each worker's own. */
  fixed: { backend: FixedBackend | null; compact: 'unorm16' | null };
}

/**
 * Checks the inputs of a new run (regular JSONL files, read by byte ranges on the workers, with
 * distinct file names) and the output directory; returns what inspectInput learned of each.
 */
export async function checkRunInputs(inputs: readonly string[], outDir: string): Promise<InputInfo[]> {
  const infos: InputInfo[] = [];
  const names = new Map<string, string>();
  for (const input of inputs) {
    if (input === '-') throw new UsageError('--queue needs its inputs as files (the workers read byte ranges of them); save stdin to a file first');
    const info = await inspectInput(input);
    if (!info.stat?.isFile()) throw new UsageError(`${input}: --queue needs a regular file (the workers read byte ranges of it)`);
    await refuseNotJsonlFile(input, input, 'queue');
    const base = path.basename(input);
    const clash = names.get(base);
    if (clash !== undefined)
      throw new UsageError(`${clash} and ${input} would both be written to --out ${path.join(outDir, base)}; give inputs different file names`);
    names.set(base, input);
    infos.push(info);
  }
  const dir = await stat(outDir).catch((err) => {
    throw new UsageError(`cannot write --out ${outDir}: ${describeFsError(err)}`);
  });
  if (!dir.isDirectory()) throw new UsageError(`--out ${outDir} must be a directory with --queue (one output file per input is written there)`);
  return infos;
}

/**
 * Reaches Redis (a RedisUnavailableError otherwise) and removes the runs in the work directory
 * whose submitter has been gone `graceMs` (0: never), except `keep`, the run being collected.
 */
export async function prepareQueue(c: QueueRunSettings, graceMs: number, keep?: string): Promise<void> {
  const { probeRedis } = await import('./connection.js');
  await probeRedis(c.url);
  await sweepOrphans(c.workDir, graceMs, c.warn, c.resumeCommand, keep);
}

/** Submits a new run and waits for it; returns 0 when every output was written. */
export async function submitRun(c: QueueRunSettings, r: NewRun): Promise<number> {
  const outputs: Output[] = [];
  try {
    // Opened (and so checked) before any input is read, as in a single-process run.
    const outPaths = r.inputs.map((p) => path.resolve(r.outDir, path.basename(p)));
    for (let i = 0; i < r.inputs.length; i++) outputs.push(await openOutput(outPaths[i], r.infos[i]));
    const run = await createRunDir(c.workDir, r.rawConfig);
    const manifest: RunManifest = { format: 1, created: new Date().toISOString(), queueName: c.queueName, inputs: [], jobs: [] };
    return await collect(run, manifest, outputs, c, false, async () => {
      for (let i = 0; i < r.inputs.length; i++) {
        const name = r.inputs[i];
        const input = await placeInput(run, name, i);
        const stamp = await stampOf(input);
        const plan = await planShards(input, r.shardBytes, r.lineCap);
        // The plan is only as good as the bytes it read.
        const changed = await inputChange(input, name, stamp);
        if (changed) throw changed;
        manifest.inputs.push({ name, output: outPaths[i], placed: input, size: stamp.size, mtimeMs: stamp.mtimeMs });
        plan.shards.forEach((shard, k) =>
          manifest.jobs.push({
            format: SHARD_JOB_FORMAT,
            run: run.id,
            inputName: name,
            inputIndex: i,
            input,
            start: shard.start,
            end: shard.end,
            firstLine: shard.firstLine,
            records: shard.records,
            output: path.join(run.shardsDir, `${i}-${k}.jsonl`),
            config: run.config,
            window: r.window,
            lineCap: r.lineCap,
            index: k,
            count: plan.shards.length,
            inputSize: stamp.size,
            inputMtimeMs: stamp.mtimeMs,
            backend: r.fixed.backend,
            compact: r.fixed.compact,
          } satisfies ShardJob),
        );
        if (plan.records === 0)
          c.warn(`warning: no records in ${name} (empty or blank lines only); wrote an empty ${path.join(r.outDir, path.basename(name))}`);
      }
      await writeManifest(run, manifest);
    });
  } catch (err) {
    await Promise.allSettled(outputs.map((o) => o.abort()));
    throw err;
  }
}

/** A run to collect (`--resume RUN`), found and checked before anything is waited for. */
export interface AdoptedRun {
  run: RunDir;
  manifest: RunManifest;
}

/**
 * Checks `out` (when given), reaches Redis, sweeps orphans (not this run, which may be past its
 * grace) and takes over run `id` from the work directory.
 */
export async function adoptRun(c: QueueRunSettings, id: string, out: string | undefined, graceMs: number): Promise<AdoptedRun> {
  if (out !== undefined) {
    const outDir = await stat(out).catch((err) => {
      throw new UsageError(`cannot write --out ${out}: ${describeFsError(err)}`);
    });
    if (!outDir.isDirectory()) throw new UsageError(`--out ${out} must be a directory with --queue`);
  }
  await prepareQueue(c, graceMs, id);
  const adopted = await adoptRunDir(c.workDir, id);
  if (adopted.manifest.queueName !== c.queueName)
    throw new UsageError(`--resume ${id}: the run was queued on --queue-name ${adopted.manifest.queueName}, not ${c.queueName}`);
  return adopted;
}

/** Waits for what is left of an adopted run and writes its outputs (into `out` when given, else where the run said). */
export async function resumeRun(c: QueueRunSettings, { run, manifest }: AdoptedRun, out: string | undefined): Promise<number> {
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
    throw err;
  }
}

/**
 * Owns `run` while it is prepared (`prepare`: placing inputs, planning, the manifest), queued and
 * scored, then writes each input's output. The run directory is removed at the end, whatever the
 * outcome, except after a timeout, when it is left for resumeRun.
 */
async function collect(
  run: RunDir,
  manifest: RunManifest,
  outputs: Output[],
  c: QueueRunSettings,
  adopt: boolean,
  prepare: () => Promise<void>,
): Promise<number> {
  const forget = removeOnInterrupt(run.dir);
  const stopHeartbeat = startHeartbeat(run);
  let keep = false;
  try {
    await prepare();
    const { runShardJobs, RunTimeoutError } = await import('./submit.js');
    let report;
    try {
      report = await runShardJobs(manifest.jobs, {
        url: c.url,
        queueName: c.queueName,
        attempts: c.attempts,
        noWorkerNoticeMs: c.noWorkerNoticeMs,
        timeoutMs: c.timeoutMs,
        resumeCommand: c.resumeCommand(run.id),
        adopt,
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
      c.warn(
        `warning: the shards of this run were computed by different backends (${mixed.map(([b, n]) => `${b}: ${plural(n, 'shard')}`).join(', ')}); ` +
          'results can differ from a single-process run in the last digits. Fix one backend for the run with --backend',
      );
    }
    for (let i = 0; i < outputs.length; i++) {
      const files = manifest.jobs
        .filter((j) => j.inputIndex === i)
        .sort((a, b) => a.index - b.index)
        .map((j) => j.output);
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
