export * from './provider.js';
export * from './errors.js';
export * from './retry.js';
export * from './openai-compatible.js';
export * from './sample-choices.js';
export * from './embedder.js';
export * from './settings.js';
export * from './function-provider.js';
