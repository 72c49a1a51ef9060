/**
 * What `ecr run` does around one pipeline run, without its argv: the shared Redis cache tier,
 * opened for the run, waited for briefly (a Redis that is down does not stop the run: the
 * in-process caches serve alone), and closed after it.
 */
import { RedisStore } from '../cache/redis-store.js';

export interface RedisTierOptions {
  url: string;
  /** Time to live of the entries this run writes, in seconds (default: the store's). */
  ttlSeconds?: number;
  /** Limit of one Redis operation in ms; past it the run goes on without Redis (default: the store's). */
  timeoutMs?: number;
  /** One line for the user: the store's rate-limited warnings, and "redis not reachable". */
  onWarn: (message: string) => void;
}

/**
 * Runs `run` with the Redis store of `options` (undefined without options), ready or given up on
 * after max(1 s, timeoutMs). A database the server refuses is a configuration error, thrown (exit
 * 2), not a Redis that is down.
 */
export async function withRedisTier<T>(options: RedisTierOptions | undefined, run: (redis: RedisStore | undefined) => Promise<T>): Promise<T> {
  const redis =
    options !== undefined
      ? new RedisStore({ url: options.url, ttlSeconds: options.ttlSeconds, timeoutMs: options.timeoutMs, onWarn: options.onWarn })
      : undefined;
  try {
    if (redis && !(await redis.ready(Math.max(1000, redis.timeoutMs)))) {
      if (redis.configError) throw redis.configError;
      options!.onWarn('redis not reachable: running with the in-process cache only');
    }
    return await run(redis);
  } finally {
    await redis?.close();
  }
}
