/**
 * The submitting side of a distributed `ecr score`: enqueues the shard jobs of one run as BullMQ
 * jobs, follows them through BullMQ's event stream until every one has completed, and fails the
 * run with the first shard that failed for good (after its attempts, or at once for an
 * unrecoverable failure such as a work directory the worker cannot see).
 *
 * While waiting it watches the workers connected to the queue: with none for a couple of seconds
 * it says so (and again whenever the last one goes away), instead of waiting silently.
 */
import { Queue, QueueEvents } from 'bullmq';
import { DEFAULT_QUEUE_NAME, decodeFailure, shardJobId, type ShardJob, type ShardResult } from './shard-job.js';
import { queueClient, retryingErrorLog } from './connection.js';
import { redactUrl } from './queue-url.js';
import { QueueProgress } from './progress.js';

export interface SubmitSettings {
  url: string;
  queueName: string;
  /** Tries per shard before the run fails (BullMQ `attempts`); retries back off from 500 ms. */
  attempts: number;
  /** How long no worker may be connected before the submitter says so. */
  noWorkerNoticeMs: number;
}

/** Writes a line to stderr, clearing a progress line a terminal may be showing. */
function notice(line: string): void {
  process.stderr.write(`${process.stderr.isTTY ? '\r\x1b[2K' : ''}ecr score: ${line}\n`);
}

const describeShard = (j: ShardJob) => `shard ${j.index + 1} of ${j.count} of ${j.inputName} (from line ${j.firstLine}, ${j.records} records)`;

/** Runs every job (all inputs, in order) on the queue's workers; resolves when all completed. */
export async function runShardJobs(jobs: ShardJob[], s: SubmitSettings): Promise<void> {
  if (jobs.length === 0) return;
  const where = `${redactUrl(s.url)} (queue "${s.queueName}")`;
  const queueConnection = queueClient(s.url);
  const eventsConnection = queueClient(s.url);
  const queue = new Queue(s.queueName, { connection: queueConnection });
  queue.on('error', retryingErrorLog(`Redis at ${where}`, notice));
  // Follow the event stream from the server's present, read before the first job exists, so no
  // completion can be missed between adding the jobs and the first read of the stream.
  const [sec, usec] = await queueConnection.time();
  const startId = `${Number(sec) * 1000 + Math.floor(Number(usec) / 1000) - 1}-0`;
  const events = new QueueEvents(s.queueName, { connection: eventsConnection, lastEventId: startId });
  events.on('error', retryingErrorLog(`Redis events at ${where}`, notice));

  const pending = new Map<string, ShardJob>();
  for (const j of jobs) pending.set(jobIdOf(j), j);
  const progress = new QueueProgress(jobs.length, jobs.reduce((n, j) => n + j.records, 0));
  let watch: ReturnType<typeof setInterval> | undefined;
  let ok = false;
  try {
    await events.waitUntilReady();
    const finished = new Promise<void>((resolve, reject) => {
      events.on('completed', ({ jobId, returnvalue }) => {
        const j = pending.get(jobId);
        if (!j) return; // another run's shard, or a duplicate event
        pending.delete(jobId);
        const result = parseResult(returnvalue);
        progress.shardDone(result?.records ?? j.records);
        if (pending.size === 0) resolve();
      });
      events.on('failed', ({ jobId, failedReason }) => {
        const j = pending.get(jobId);
        if (!j) return;
        reject(decodeFailure(failedReason, describeShard(j)));
      });
      events.on('stalled', ({ jobId }) => {
        const j = pending.get(jobId);
        if (j) notice(`${describeShard(j)}: its worker stopped renewing the lock (killed or stuck); BullMQ put the shard back in the queue`);
      });
      watch = watchWorkers(queue, s, where, progress);
    });
    finished.catch(() => {}); // awaited below; a failure while the jobs are still being added is not unhandled
    await queue.addBulk(jobs.map((j) => ({
      name: 'shard',
      data: j,
      opts: {
        jobId: jobIdOf(j), attempts: s.attempts, backoff: { type: 'exponential', delay: 500 },
        // A completed shard's record lives on as its output file; a failed one is kept a day for inspection.
        removeOnComplete: true, removeOnFail: { age: 24 * 3600 },
      },
    })));
    await finished;
    ok = true;
  } finally {
    if (watch) clearInterval(watch);
    progress.finish(ok);
    if (!ok && pending.size > 0) {
      // Workers need not spend time on a run that has failed; shards being scored finish on their own.
      await Promise.allSettled([...pending.keys()].map((id) => queue.remove(id)));
    }
    await Promise.allSettled([events.close(), queue.close()]);
    // Clients passed in are the caller's to close (BullMQ leaves them open).
    queueConnection.disconnect();
    eventsConnection.disconnect();
  }
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
        noneSince = null; told = false;
        return;
      }
      noneSince ??= Date.now();
      if (!told && Date.now() - noneSince >= s.noWorkerNoticeMs) {
        told = true;
        const left = progress.state.shards - progress.state.shardsDone;
        notice(`no ecr worker is connected to ${where}; ${left} shard${left === 1 ? '' : 's'} waiting. `
          + `Start one with: ecr worker --queue ${redactUrl(s.url)}${s.queueName === DEFAULT_QUEUE_NAME ? '' : ` --queue-name ${s.queueName}`}`);
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
  const timer = setInterval(() => { void check(); }, Math.min(500, s.noWorkerNoticeMs));
  timer.unref();
  return timer;
}
