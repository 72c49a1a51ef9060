/** The `--queue` URL: checked before anything heavy is loaded, and shown without its password. */
import { parseRedisUrl, redactRedisUrl, type RedisTarget } from '../redis-url.js';
import { UsageError } from '../errors.js';

/** A URL without its password, for messages. */
export function redactUrl(url: string): string {
  return redactRedisUrl(url);
}

/**
 * Checks `--queue URL` as the cache checks `--redis` (src/redis-url.ts: redis://, rediss://,
 * redis+sentinel://, the database index); returns the ioredis options it names.
 */
export function checkQueueUrl(url: string, flag = '--queue'): RedisTarget {
  try {
    return parseRedisUrl(url);
  } catch (err) {
    throw new UsageError(`${flag}: ${(err as Error).message}`);
  }
}
