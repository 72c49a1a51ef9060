/**
 * The working side: a BullMQ worker that scores shards. A shard is a byte range of an input in
 * the shared work directory; it is read as a stream and scored by `scoreStream`, the function a
 * single-process `ecr score` runs, so its result lines are those a single-process run writes for
 * the same lines. They go to a file beside the shard's output and are renamed into place once
 * complete: a worker killed mid-shard leaves at most a temporary file, never a partial output,
 * and a shard scored twice (a stalled worker that was only slow) renames identical bytes.
 *
 * BullMQ holds a lock on each active job that the worker renews; when a worker dies the lock
 * expires and the stalled-job check of any live worker puts the shard back in the queue.
 */
import { createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import { readFile, rename, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { UnrecoverableError, Worker, type Job } from 'bullmq';
import { toResolvedConfig, type ResolvedConfig } from '../core/config.js';
import type { BackendChoice, ComputeOptions } from '../backends/backend.js';
import { scoreStream } from '../engine/jsonl/score-stream.js';
import { JsonlWorkers } from '../engine/jsonl/jsonl-workers.js';
import { checkedJsonlStream } from '../engine/jsonl/not-jsonl.js';
import { Sink } from '../engine/io/sink.js';
import { Progress } from '../engine/io/progress.js';
import { UsageError } from '../core/errors.js';
import type { RedisDatabaseError } from '../cache/redis-url.js';
import { getBackend, type BackendOptions } from '../backends/registry.js';
import { checkShardJob, encodeFailure, ShardFailedError, type ShardJob, type ShardResult } from './shard-job.js';
import { queueClient, queueErrorHandler } from './connection.js';
import { inputChange, InputChangedError } from './input-change.js';

export interface WorkerSettings {
  url: string;
  queueName: string;
  backend: BackendChoice;
  compute: ComputeOptions;
  /** Options of this worker's backend instances (the adapter, its report); default: the defaults. */
  backendOptions?: BackendOptions;
  /** JSONL parse threads per shard (ecr score's --threads; 0 = on the worker's main thread). */
  threads: number;
  /** Shards scored at once by this process. */
  concurrency: number;
  /** BullMQ lock duration: how long a silent worker keeps its shard (default 30 s). */
  lockDurationMs: number;
  /** BullMQ stalled-job check interval (default 30 s); a dead worker's shard returns within lock + interval. */
  stalledIntervalMs: number;
  /** Shown in logs and stored on each job it processes (BullMQ's processedBy). */
  name: string;
  log: (line: string) => void;
  /** Redis refused the URL's database on a reconnection: the worker must stop (exit 2), not work in database 0. */
  onFatal: (err: RedisDatabaseError) => void;
}

export const defaultWorkerName = () => `${os.hostname()}:${process.pid}`;

function closed(stream: WriteStream): Promise<void> {
  return new Promise((resolve, reject) => {
    if (stream.closed) {
      resolve();
      return;
    }
    stream.once('close', resolve);
    stream.once('error', reject);
  });
}

/** The run's configuration, read once per run and kept while the worker lives (runs are few). */
const configs = new Map<string, Promise<ResolvedConfig>>();
function configOf(file: string): Promise<ResolvedConfig> {
  let c = configs.get(file);
  if (!c) {
    c = readFile(file, 'utf8').then((text) => toResolvedConfig(JSON.parse(text)));
    c.catch(() => configs.delete(file));
    configs.set(file, c);
  }
  return c;
}

/**
 * Parse workers per run, kept across its shards: starting a pool per shard (threads, module
 * loading, JIT warm-up) doubled the CPU a queued run took. A pool is made with its run's
 * configuration (the workers format pCorrect with it); pools of other runs are closed once idle.
 */
const pools = new Map<string, { pool: JsonlWorkers; users: number }>();
function acquirePool(configFile: string, config: ResolvedConfig, threads: number): JsonlWorkers {
  let entry = pools.get(configFile);
  if (entry && entry.pool.broken && entry.users === 0) {
    void entry.pool.close();
    pools.delete(configFile);
    entry = undefined;
  }
  if (!entry) {
    for (const [file, other] of pools)
      if (other.users === 0) {
        void other.pool.close();
        pools.delete(file);
      }
    entry = { pool: new JsonlWorkers(threads, config), users: 0 };
    pools.set(configFile, entry);
  }
  entry.users++;
  return entry.pool;
}
function releasePool(configFile: string): void {
  const entry = pools.get(configFile);
  if (entry) entry.users--;
}
/** Stops every idle pool (the worker is shutting down). */
export async function closePools(): Promise<void> {
  const idle = [...pools].filter(([, e]) => e.users === 0);
  for (const [file] of idle) pools.delete(file);
  await Promise.all(idle.map(([, e]) => e.pool.close()));
}

/**
 * Scores one shard into its output file; the core of a job, usable without a queue. Returns the
 * record count and what computed it (the backend names, with the compact option).
 */
export async function scoreShard(
  job: ShardJob,
  backend: BackendChoice,
  compute: ComputeOptions,
  threads: number,
  backendOptions?: BackendOptions,
): Promise<{ records: number; backend: string }> {
  const stamp = { size: job.inputSize, mtimeMs: job.inputMtimeMs };
  const changed = await inputChange(job.input, job.inputName, stamp);
  if (changed) throw changed;
  const config = await configOf(job.config);
  const backendsUsed = new Set<string>();
  const tmp = `${job.output}.${randomUUID().slice(0, 8)}.tmp`;
  // flush: fsync before close, so the rename publishes bytes that are on disk (and, on NFS, on the server).
  const stream = createWriteStream(tmp, { flush: true });
  const sink = new Sink(stream, `the shard output ${tmp}`);
  try {
    const raw = createReadStream(job.input, { start: job.start, end: job.end - 1, highWaterMark: 1 << 20 });
    const source = job.start === 0 ? checkedJsonlStream(raw, job.inputName, 'queue') : raw;
    const parseWorkers = acquirePool(job.config, config, threads);
    let n: number;
    try {
      n = await scoreStream(
        source,
        {
          config,
          backend,
          compute,
          backendOptions,
          windowSize: job.window,
          lineCap: job.lineCap,
          firstLine: job.firstLine,
          threads,
          parseWorkers,
          // The worker logs a line per shard; the submitter shows the progress of the whole run.
          progress: new Progress('ecr worker', { write: () => true, isTTY: false }),
          backendsUsed,
        },
        sink,
      );
    } catch (err) {
      // A file rewritten in place while it was read fails on a line cut short: name the cause.
      throw (await inputChange(job.input, job.inputName, stamp, (err as Error).message.replace(/\s*\n\s*/g, '; '))) ?? err;
    } finally {
      releasePool(job.config);
    }
    await sink.finish();
    await closed(stream);
    if (n !== job.records) {
      throw new ShardFailedError(`scored ${n} records where the plan counted ${job.records}; was ${job.inputName} changed during the run?`);
    }
    await rename(tmp, job.output);
    const names = [...backendsUsed].sort().join('+') || String(backend);
    return { records: n, backend: compute.compact ? `${names} (${compute.compact})` : names };
  } catch (err) {
    stream.destroy();
    await rm(tmp, { force: true });
    throw err;
  }
}

/** BullMQ's processor: scores the shard, or fails the job with an error the submitter can decode. */
async function processShard(job: Job, s: WorkerSettings): Promise<ShardResult> {
  let shard: ShardJob;
  try {
    shard = checkShardJob(job.data);
  } catch (err) {
    throw new UnrecoverableError(encodeFailure(err));
  }
  const what = `shard ${shard.index + 1}/${shard.count} of ${shard.inputName}`;
  // A run directory this worker cannot see is a deployment error or an abandoned run: retrying
  // here cannot help, and the submitter (if still waiting) should say so at once.
  const runDir = path.dirname(shard.config);
  const seen = await stat(runDir).then(
    () => true,
    () => false,
  );
  if (!seen) {
    const err = new UsageError(
      `the run directory ${runDir} does not exist on worker ${s.name}: is --work-dir on a filesystem shared by every machine, at the same path? (or the run ended: its submitter stopped and removed it, or it was removed as an orphan)`,
    );
    s.log(`${what}: ${err.message}`);
    throw new UnrecoverableError(encodeFailure(err));
  }
  // A run that fixed its backend is computed with it here, whatever this worker's own --backend;
  // a worker that cannot run it refuses the shard for good, naming itself (the run fails: send
  // such runs to a queue whose workers can run the backend).
  const backend = shard.backend ?? s.backend;
  const compute: ComputeOptions = shard.backend ? (shard.compact ? { compact: shard.compact } : {}) : s.compute;
  if (shard.backend && shard.backend !== s.backend) {
    try {
      await getBackend(shard.backend, s.backendOptions);
    } catch (err) {
      s.log(`${what}: the run fixed --backend ${shard.backend}, which cannot run here: ${(err as Error).message}`);
      throw new UnrecoverableError(
        encodeFailure(
          new ShardFailedError(`worker ${s.name} cannot run the run's --backend ${shard.backend}: ${(err as Error).message}`, 'ECR_BACKEND_UNAVAILABLE'),
        ),
      );
    }
  }
  const started = Date.now();
  try {
    const { records, backend: used } = await scoreShard(shard, backend, compute, s.threads, s.backendOptions);
    s.log(`${what}: ${records.toLocaleString('en-US')} records from line ${shard.firstLine} in ${((Date.now() - started) / 1000).toFixed(2)} s (${used})`);
    return { records, worker: s.name, backend: used };
  } catch (err) {
    const attempts = job.opts.attempts ?? 1;
    s.log(`${what} failed (attempt ${job.attemptsMade + 1} of ${attempts}): ${(err as Error).message.replace(/\n\s*/g, ' ')}`);
    // A changed input stays changed: trying again would only fail again.
    if (err instanceof InputChangedError) throw new UnrecoverableError(encodeFailure(err));
    throw new Error(encodeFailure(err), { cause: err });
  }
}

/** Starts the worker; resolves with `close`, which lets active shards finish, then disconnects. */
export async function startShardWorker(s: WorkerSettings): Promise<{ worker: Worker; close: () => Promise<void> }> {
  const connection = queueClient(s.url);
  let worker: Worker;
  try {
    worker = new Worker(s.queueName, (job) => processShard(job, s), {
      connection,
      name: s.name,
      concurrency: s.concurrency,
      lockDuration: s.lockDurationMs,
      stalledInterval: s.stalledIntervalMs,
      // A shard that kills its worker twice (out of memory, say) fails instead of killing them all.
      maxStalledCount: 2,
      autorun: false,
    });
  } catch (err) {
    // An open connection would keep the process alive after the error is reported.
    connection.disconnect();
    throw err;
  }
  worker.on('error', queueErrorHandler('Redis', s.url, s.log, s.onFatal));
  void worker.run().catch((err: Error) => s.log(`stopped: ${err.message}`));
  await worker.waitUntilReady();
  return {
    worker,
    close: async () => {
      await worker.close();
      await closePools();
      connection.disconnect();
    },
  };
}
