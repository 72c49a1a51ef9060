export * from './process-metrics.js';
export * from './request-stats.js';
