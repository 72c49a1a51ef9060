/**
 * The submitting side of a distributed `ecr score`: enqueues the shard jobs of one run as BullMQ
 * jobs, follows them through BullMQ's event stream until every one has completed, and fails the
 * run with the first shard that failed for good (after its attempts, or at once for an
 * unrecoverable failure such as a work directory the worker cannot see).
 *
 * While waiting it watches the workers connected to the queue: with none for a couple of seconds
 * it says so (and again whenever the last one goes away), instead of waiting silently.
 *
 * Redis is not trusted to keep the run: after every reconnection, and every `reconcileMs`, each
 * shard not yet seen to complete is looked up. A shard whose job is gone (a Redis restarted
 * without its data, an event stream trimmed) counts as done when its output file is in the run
 * directory, and is submitted again otherwise; one found failed fails the run as its event would.
 */
import { stat } from 'node:fs/promises';
import { Queue, QueueEvents } from 'bullmq';
import type { Redis } from 'ioredis';
import { EcrError } from '../core/errors.js';
import { plural } from '../core/plural.js';
import { RedisDatabaseError } from '../cache/redis-url.js';
import { DEFAULT_QUEUE_NAME, decodeFailure, shardJobId, type ShardJob, type ShardResult } from './shard-job.js';
import { queueClient, queueErrorHandler } from './connection.js';
import { inputChange } from './input-change.js';
import { redactUrl } from './queue-url.js';
import { QueueProgress } from './progress.js';

export interface SubmitSettings {
  url: string;
  queueName: string;
  /** Tries per shard before the run fails (BullMQ `attempts`); retries back off from 500 ms. */
  attempts: number;
  /** How long no worker may be connected before the submitter says so. */
  noWorkerNoticeMs: number;
  /** Give up waiting after this long (null: no limit); the shards stay queued, to be collected by --resume. */
  timeoutMs: number | null;
  /** The command that collects this run later (said when the run is left queued). */
  resumeCommand: string;
  /** Some of the run's jobs may be in Redis already (--resume): each is looked up before it is added. */
  adopt: boolean;
  /** How often the run's jobs are checked against Redis besides each reconnection (default 30 s). */
  reconcileMs?: number;
}

export interface RunReport {
  /** Shards per backend that computed them ("?" where only the shard's output file told that it was done). */
  backends: Map<string, number>;
}

/** The run gave up waiting (--timeout) with shards still queued; its directory is kept for --resume. */
export class RunTimeoutError extends EcrError {
  constructor(message: string) {
    super('ECR_RUN_TIMEOUT', message);
  }
}

/** Writes a line to stderr, clearing a progress line a terminal may be showing. */
function notice(line: string): void {
  process.stderr.write(`${process.stderr.isTTY ? '\r\x1b[2K' : ''}ecr score: ${line}\n`);
}

const describeShard = (j: ShardJob) => `shard ${j.index + 1} of ${j.count} of ${j.inputName} (from line ${j.firstLine}, ${j.records} records)`;
const exists = (file: string) =>
  stat(file).then(
    () => true,
    () => false,
  );

/** Runs every job (all inputs, in order) on the queue's workers; resolves when all completed. */
export async function runShardJobs(jobs: ShardJob[], s: SubmitSettings): Promise<RunReport> {
  const report: RunReport = { backends: new Map() };
  if (jobs.length === 0) return report;
  const where = `${redactUrl(s.url)} (queue "${s.queueName}")`;
  const pending = new Map<string, ShardJob>();
  for (const j of jobs) pending.set(jobIdOf(j), j);
  const progress = new QueueProgress(
    jobs.length,
    jobs.reduce((n, j) => n + j.records, 0),
  );

  let done = false;
  let outcome = null as Error | null;
  let settle!: { resolve: () => void; reject: (err: Error) => void };
  const finished = new Promise<void>((resolve, reject) => {
    settle = { resolve, reject };
  });
  finished.catch(() => {}); // awaited below; a failure while the jobs are still being added is not unhandled
  const fail = (err: Error) => {
    if (done) return;
    done = true;
    outcome = err;
    settle.reject(err);
  };
  const succeed = () => {
    if (done) return;
    done = true;
    settle.resolve();
  };

  const shardCompleted = (id: string, returnvalue: unknown) => {
    const j = pending.get(id);
    if (!j) return; // another run's shard, or a duplicate event
    pending.delete(id);
    const result = parseResult(returnvalue);
    progress.shardDone(result?.records ?? j.records);
    const label = result?.backend ?? '?';
    report.backends.set(label, (report.backends.get(label) ?? 0) + 1);
    if (pending.size === 0) succeed();
  };
  const shardFailed = async (j: ShardJob, reason: string) => {
    const err = decodeFailure(reason, describeShard(j));
    // An input rewritten in place makes a worker fail on a line that was fine: say so instead.
    const changed = await inputChange(j.input, j.inputName, { size: j.inputSize, mtimeMs: j.inputMtimeMs }, err.message.replace(/\s*\n\s*/g, '; '));
    fail(changed ?? err);
  };

  let queueConnection: Redis | undefined;
  let eventsConnection: Redis | undefined;
  let queue: Queue | undefined;
  let events: QueueEvents | undefined;
  let watch: ReturnType<typeof setInterval> | undefined;
  let reconcileTimer: ReturnType<typeof setInterval> | undefined;
  let timeout: ReturnType<typeof setTimeout> | undefined;
  try {
    queueConnection = queueClient(s.url);
    eventsConnection = queueClient(s.url);
    const q = new Queue(s.queueName, { connection: queueConnection });
    queue = q;
    q.on('error', queueErrorHandler(`Redis at ${where}`, s.url, notice, fail));
    // Follow the event stream from the server's present, read before the first job exists, so no
    // completion can be missed between adding the jobs and the first read of the stream.
    const [sec, usec] = await queueConnection.time();
    const startId = `${Number(sec) * 1000 + Math.floor(Number(usec) / 1000) - 1}-0`;
    const ev = new QueueEvents(s.queueName, { connection: eventsConnection, lastEventId: startId });
    events = ev;
    ev.on('error', queueErrorHandler(`Redis events at ${where}`, s.url, notice, fail));
    await ev.waitUntilReady();
    ev.on('completed', ({ jobId, returnvalue }) => shardCompleted(jobId, returnvalue));
    ev.on('failed', ({ jobId, failedReason }) => {
      const j = pending.get(jobId);
      if (j) void shardFailed(j, failedReason);
    });
    ev.on('stalled', ({ jobId }) => {
      const j = pending.get(jobId);
      if (j) notice(`${describeShard(j)}: its worker stopped renewing the lock (killed or stuck); BullMQ put the shard back in the queue`);
    });
    watch = watchWorkers(q, s, where, progress);
    if (s.timeoutMs !== null) {
      const limit = s.timeoutMs;
      timeout = setTimeout(() => {
        const left = pending.size;
        fail(
          new RunTimeoutError(
            `the run did not finish within --timeout ${limit / 1000} s (${plural(left, 'shard')} of ${jobs.length} not done); ` +
              `its shards stay queued and its directory is kept: collect it later with: ${s.resumeCommand}`,
          ),
        );
      }, limit);
    }

    const add = (list: ShardJob[]) =>
      q.addBulk(
        list.map((j) => ({
          name: 'shard',
          data: j,
          opts: {
            jobId: jobIdOf(j),
            attempts: s.attempts,
            backoff: { type: 'exponential', delay: 500 },
            // A completed shard's record lives on as its output file; a failed one is kept a day for inspection.
            removeOnComplete: true,
            removeOnFail: { age: 24 * 3600 },
          },
        })),
      );

    /**
     * Looks up every shard not yet seen to complete; adds again those whose job is gone without an
     * output. `adopting` (a resumed run): a job found failed is tried again instead of failing the run.
     */
    const reconcile = async (adopting: boolean): Promise<number> => {
      const lost: ShardJob[] = [];
      const ids = [...pending.keys()];
      for (let i = 0; i < ids.length && !done; i += 200) {
        await Promise.all(
          ids.slice(i, i + 200).map(async (id) => {
            const j = pending.get(id);
            if (!j) return;
            const state = await q.getJobState(id);
            if (state === 'failed') {
              if (adopting) {
                await q.remove(id);
                lost.push(j);
                return;
              }
              const job = await q.getJob(id);
              await shardFailed(j, job?.failedReason ?? 'failed (its reason was not kept)');
              return;
            }
            if (state === 'completed') {
              shardCompleted(id, (await q.getJob(id))?.returnvalue);
              return;
            }
            if (state !== 'unknown') return; // waiting, delayed or active: a worker will get to it
            // A job is removed when it completes, after its output was renamed into place.
            if (await exists(j.output)) shardCompleted(id, null);
            else lost.push(j);
          }),
        );
      }
      if (lost.length > 0 && !done) await add(lost);
      return lost.length;
    };

    if (s.adopt) {
      const again = await reconcile(true);
      notice(`resumed run: ${plural(jobs.length - pending.size, 'shard')} done, ${pending.size - again} still queued, ${again} submitted again`);
    } else {
      await add(jobs);
    }

    // From here on, every reconnection (and now and then, a quiet check) compares the run with Redis.
    let checking: Promise<void> | null = null;
    let again = false;
    const check = () => {
      if (done) return;
      if (checking) {
        again = true;
        return;
      }
      checking = (async () => {
        do {
          again = false;
          const n = await reconcile(false);
          if (n > 0)
            notice(
              `${plural(n, 'queued shard')} of this run had vanished from Redis at ${where} (restarted without its data?); submitted them again from the run directory`,
            );
        } while (again && !done);
      })()
        .catch(() => {
          // Redis failed mid-check: the reconnection that follows checks again.
        })
        .finally(() => {
          checking = null;
        });
    };
    queueConnection.on('ready', check);
    reconcileTimer = setInterval(check, s.reconcileMs ?? 30_000);
    reconcileTimer.unref();
    if (pending.size === 0) succeed();
    await finished;
  } finally {
    if (!done) fail(new Error('stopped')); // an exception above: nothing waits for `finished` any more
    if (watch) clearInterval(watch);
    if (reconcileTimer) clearInterval(reconcileTimer);
    if (timeout) clearTimeout(timeout);
    progress.finish(outcome === null);
    // Workers need not spend time on a run that has failed; shards being scored finish on their
    // own. A run left for --resume keeps its shards; a refused database must not be written to.
    if (outcome !== null && pending.size > 0 && queue && !(outcome instanceof RunTimeoutError) && !(outcome instanceof RedisDatabaseError)) {
      const q = queue;
      await withLimit(Promise.allSettled([...pending.keys()].map((id) => q.remove(id))), 5000);
    }
    // A Redis that is down would hold BullMQ's close for ever: bounded, then the sockets are dropped.
    await withLimit(Promise.allSettled([events?.close(), queue?.close()]), 5000);
    // Clients passed in are the caller's to close (BullMQ leaves them open).
    queueConnection?.disconnect();
    eventsConnection?.disconnect();
  }
  return report;
}

function withLimit(p: Promise<unknown>, ms: number): Promise<unknown> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    p,
    new Promise((r) => {
      timer = setTimeout(r, ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

const jobIdOf = (j: ShardJob) => shardJobId(j.run, j.inputIndex, j.index);

function parseResult(value: unknown): ShardResult | null {
  try {
    const v = (typeof value === 'string' ? JSON.parse(value) : value) as ShardResult;
    return typeof v?.records === 'number' ? v : null;
  } catch {
    return null;
  }
}

/** Polls the queue's worker count; notices when there has been none for `noWorkerNoticeMs`. */
function watchWorkers(queue: Queue, s: SubmitSettings, where: string, progress: QueueProgress): ReturnType<typeof setInterval> {
  let noneSince: number | null = null;
  let told = false;
  let listing = true;
  let busy = false;
  const check = async () => {
    if (busy || !listing) return;
    busy = true;
    try {
      const count = await queue.getWorkersCount();
      progress.state.workers = count;
      if (count > 0) {
        if (told) notice(`${count} worker${count === 1 ? '' : 's'} connected; scoring`);
        noneSince = null;
        told = false;
        return;
      }
      noneSince ??= Date.now();
      if (!told && Date.now() - noneSince >= s.noWorkerNoticeMs) {
        told = true;
        const left = progress.state.shards - progress.state.shardsDone;
        notice(
          `no ecr worker is connected to ${where}; ${left} shard${left === 1 ? '' : 's'} waiting. ` +
            `Start one with: ecr worker --queue ${redactUrl(s.url)}${s.queueName === DEFAULT_QUEUE_NAME ? '' : ` --queue-name ${s.queueName}`}`,
        );
      }
    } catch (err) {
      // Some hosted Redis services refuse CLIENT LIST, which BullMQ counts workers with.
      const message = (err as Error).message;
      if (/unknown command|NOPERM|not allowed|disabled/i.test(message)) {
        listing = false;
        notice(`cannot count the workers on ${where} (${message}); waiting without that check`);
      }
    } finally {
      busy = false;
    }
  };
  void check();
  const timer = setInterval(
    () => {
      void check();
    },
    Math.min(500, s.noWorkerNoticeMs),
  );
  timer.unref();
  return timer;
}
