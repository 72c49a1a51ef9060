export * from './pipeline.js';
export * from './types.js';
export * from './errors.js';
export * from './risk.js';
export * from './signals.js';
export * from './unroll.js';
export * from './drop-in.js';
