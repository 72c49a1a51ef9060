/** Public API of the ECR engine. */
export * from './errors.js';
export * from './config.js';
export * from './batch.js';
export * from './select.js';
export * from './score.js';
export { scoreRecords, type RecordResult, type RecordsResult } from './records/score-records.js';
export type { TrajectoryRecord } from './records/record.js';
export type { BackendName, BackendChoice, ScoreBackend, ComputeOptions, BackendOutput } from './backends/backend.js';
export { getBackend, chooseBackend, disposeBackends } from './backends/registry.js';
export * from './pipeline/index.js';
export * from './llm/index.js';
export * from './cache/index.js';
export * from './monitoring/index.js';
export * from './loopback/index.js';
export { allocateSharedBatch, allocateSharedMetrics, isSharedArray, type SharedBatchShape, type WritableBatch, type FloatDType } from './backends/cpu/shared.js';
export { syntheticBatch, type SyntheticOptions } from './bench/synthetic.js';
export * from './calibration/index.js';
