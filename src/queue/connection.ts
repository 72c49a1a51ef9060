/**
 * Redis connections for the shard queue (ioredis, which BullMQ drives). The URL is checked and the
 * server probed once at start, so a wrong address is one clear line within seconds instead of a
 * process that retries forever in silence; after that, BullMQ's own reconnection takes over.
 */
import { Redis } from 'ioredis';
import { EcrError } from '../errors.js';
import { redactUrl } from './queue-url.js';

/** The server could not be reached (exit 1, as for an unreachable LLM server). */
export class QueueUnavailableError extends EcrError {
  constructor(url: string, reason: string) {
    super('ECR_QUEUE_UNAVAILABLE', `cannot reach Redis at ${url}: ${reason}`);
  }
}

/** A client for one BullMQ object (BullMQ requires maxRetriesPerRequest: null on blocking ones). */
export function queueClient(url: string): Redis {
  return new Redis(url, { maxRetriesPerRequest: null, enableReadyCheck: true });
}

/** Connects once without retrying: resolves when Redis answers PING, else a QueueUnavailableError. */
export async function probeRedis(url: string, timeoutMs = 5000): Promise<void> {
  const probe = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: timeoutMs, enableOfflineQueue: false });
  let failure: Error | null = null;
  probe.on('error', (err: Error) => { failure ??= err; });
  try {
    await probe.connect();
    await probe.ping();
  } catch (err) {
    const e = failure ?? (err as Error);
    const code = (e as NodeJS.ErrnoException).code;
    throw new QueueUnavailableError(redactUrl(url), code ? `${code}` : e.message);
  } finally {
    probe.disconnect();
  }
}

/** An 'error' listener for a BullMQ connection that keeps retrying: one line per 10 s at most. */
export function retryingErrorLog(what: string, log: (line: string) => void): (err: Error) => void {
  let last = 0;
  return (err) => {
    const now = Date.now();
    if (now - last < 10_000) return;
    last = now;
    log(`${what}: ${(err as NodeJS.ErrnoException).code ?? err.message} (retrying)`);
  };
}
