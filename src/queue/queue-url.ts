/** The `--queue` URL: checked before anything heavy is loaded, and shown without its password. */
import { checkRedisUrlOption, type RedisTarget } from '../cache/redis-url.js';

/** A URL without its credentials, for messages (the one redactor, core/redact-url.ts). */
export { redactUrl } from '../core/redact-url.js';

/**
 * Checks `--queue URL` as the cache checks `--redis` (cache/redis-url.ts: redis://, rediss://,
 * redis+sentinel://, the database index); returns the ioredis options it names.
 */
export function checkQueueUrl(url: string, flag = '--queue'): RedisTarget {
  return checkRedisUrlOption(url, flag);
}
