export * from './canonical-json.js';
export * from './keyed-cache.js';
export { NAMESPACE_RE } from './namespace.js';
export * from './redis-codec.js';
export * from './redis-keys.js';
export * from './redis-store.js';
export * from './tiered-cache.js';
export { RedisDatabaseError, RedisUrlError } from './redis-url.js';
