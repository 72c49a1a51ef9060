/**
 * Redis connections for the shard queue (ioredis, which BullMQ drives). The URL is checked and the
 * server probed once at start, so a wrong address or database is one clear line within seconds
 * instead of a process that retries forever in silence; after that, BullMQ's own reconnection
 * takes over.
 */
import { Redis } from 'ioredis';
import { EcrError } from '../core/errors.js';
import { checkDatabase, isSelectRefused, parseRedisUrl, RedisDatabaseError } from '../cache/redis-url.js';
import { redactUrl } from './queue-url.js';

/** The server could not be reached (exit 1, as for an unreachable LLM server). */
export class QueueUnavailableError extends EcrError {
  constructor(url: string, reason: string) {
    super('ECR_QUEUE_UNAVAILABLE', `cannot reach Redis at ${url}: ${reason}`);
  }
}

/**
 * A client for one BullMQ object (BullMQ requires maxRetriesPerRequest: null on blocking ones).
 * It has an 'error' listener from birth: until BullMQ adds its own, ioredis would print any error
 * as an "Unhandled error event" stack. BullMQ forwards the errors to its object's 'error' event,
 * where the caller's queueErrorHandler reports them.
 */
export function queueClient(url: string): Redis {
  const client = new Redis({ ...parseRedisUrl(url), maxRetriesPerRequest: null, enableReadyCheck: true });
  client.on('error', () => {});
  return client;
}

/**
 * Connects once without retrying: resolves when Redis answers PING and has the URL's database,
 * else a QueueUnavailableError (exit 1) or a RedisDatabaseError (a usage error, exit 2).
 */
export async function probeRedis(url: string, timeoutMs = 5000): Promise<void> {
  const { db, ...target } = parseRedisUrl(url);
  // Without `db`: ioredis would select it while connecting and go on in database 0 when refused.
  const probe = new Redis({
    ...target,
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    connectTimeout: timeoutMs,
    enableOfflineQueue: false,
  });
  let failure: Error | null = null;
  probe.on('error', (err: Error) => {
    failure ??= err;
  });
  try {
    try {
      await probe.connect();
      await probe.ping();
    } catch (err) {
      const e = failure ?? (err as Error);
      const code = (e as NodeJS.ErrnoException).code;
      throw new QueueUnavailableError(redactUrl(url), code ? `${code}` : e.message);
    }
    await checkDatabase(probe, url, db);
  } finally {
    probe.disconnect();
  }
}

/**
 * The 'error' listener of a BullMQ object. A refused SELECT (the URL's database is gone, say
 * after a restart with another configuration) goes to `fatal`: working on in database 0 would mix
 * runs. An error of BullMQ's own (a numeric code: a job's key or lock missing, as after Redis lost
 * its data) is logged with its message; connection errors, which ioredis retries, one line per
 * 10 s at most.
 */
export function queueErrorHandler(what: string, url: string, log: (line: string) => void, fatal: (err: RedisDatabaseError) => void): (err: Error) => void {
  let last = 0;
  let stopped = false;
  return (err) => {
    if (stopped) return;
    if (isSelectRefused(err)) {
      stopped = true;
      fatal(new RedisDatabaseError(url, parseRedisUrl(url).db ?? 0, `SELECT: ${err.message}`));
      return;
    }
    const code = (err as NodeJS.ErrnoException).code as unknown;
    if (typeof code === 'number') {
      log(
        `${err.message.replace(/\.?\s*$/, '')}: the job is no longer this process's in Redis (Redis lost it, the run ended, or the lock expired and another worker took it); the submitter keeps track of the shard`,
      );
      return;
    }
    const now = Date.now();
    if (now - last < 10_000) return;
    last = now;
    log(`${what}: ${typeof code === 'string' && code !== '' ? code : err.message} (retrying)`);
  };
}
