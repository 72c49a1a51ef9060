/** `ecr-engine/cache`: the shared Redis tier behind the pipeline's in-process caches. */
export { REDIS_DEFAULTS, RedisStore, type L2Lookup, type RedisStoreOptions } from './redis-store.js';
export type { RedisHealth } from './redis-health.js';
export { RedisDatabaseError, RedisUrlError, type RedisTarget } from './redis-url.js';
export type { CacheStats } from './keyed-cache.js';
export type { CacheControl } from './tiered-cache.js';
