/** Public API of the ECR engine. */
export * from './core/errors.js';
export * from './core/config.js';
export * from './core/batch.js';
export * from './core/select.js';
export * from './engine/score-batch.js';
export { scoreRecords, type RecordResult, type RecordsResult } from './engine/score-records.js';
export type { TrajectoryRecord } from './engine/record.js';
export type { BackendName, BackendChoice, ScoreBackend, ComputeOptions, BackendOutput } from './backends/backend.js';
export { getBackend, chooseBackend, disposeBackends } from './backends/registry.js';
export * from './pipeline/index.js';
export * from './llm/index.js';
export * from './cache/index.js';
export * from './monitoring/index.js';
export * from './testing/index.js';
export { allocateSharedBatch, allocateSharedMetrics, isSharedArray, type SharedBatchShape, type WritableBatch, type FloatDType } from './backends/cpu/shared.js';
export { syntheticBatch, type SyntheticOptions } from './testing/synthetic-batch.js';
export * from './calibration/index.js';
