export * from './canonical-json.js';
export * from './keyed-cache.js';
