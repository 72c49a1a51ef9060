export * from './canonical-json.js';
export * from './keyed-cache.js';
export { NAMESPACE_RE } from './namespace.js';
export * from './redis-codec.js';
export * from './redis-keys.js';
export { REDIS_DEFAULTS, RedisStore, type L2Lookup, type RedisStoreOptions } from './redis-store.js';
export type { RedisHealth } from './redis-health.js';
export * from './tiered-cache.js';
export { RedisDatabaseError, RedisUrlError, checkRedisUrl, redisConnectionOptions, type RedisTarget } from './redis-url.js';
