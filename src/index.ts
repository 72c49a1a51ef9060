/**
 * `ecr-engine`: scoring only. Trajectories in, the five metrics, CCI, admissibility and the
 * selection per group out, on the CPU or WebGPU. The LLM pipeline, the gateway, calibration, the
 * Redis cache and the test helpers have their own entry points (`ecr-engine/pipeline`,
 * `/server`, `/calibration`, `/cache`, `/testing`), so that importing this one loads none of
 * their dependencies.
 */
export { scoreBatch, type ScoreOptions, type BatchResult, type AuditTrace, type CandidateAudit, type NamedWeights } from './engine/score-batch.js';
export { scoreRecords, type ScoreRecordsOptions, type RecordResult, type RecordsResult } from './engine/score-records.js';
export type { TrajectoryRecord } from './engine/record.js';
export {
  resolveConfig,
  PRESETS,
  DEFAULTS,
  type EcrConfig,
  type ResolvedConfig,
  type PresetName,
  type Weights,
  type EvbMode,
  type ShrinkTarget,
} from './core/config.js';
export type { ProbabilityMap, IsotonicMap, PlattMap, Provenance } from './core/probability-map.js';
export type { Batch, FloatArray, MetricArrays, MetricValues } from './core/batch.js';
export type { GroupSelection, SelectionReason } from './core/select.js';
export { EcrError, InputError, ConfigError, UsageError, BackendUnavailableError, GpuError, type InputLocation } from './core/errors.js';
export { getBackend, disposeBackends, type BackendOptions } from './backends/registry.js';
export type { BackendName, BackendChoice, ScoreBackend, ComputeOptions, BackendOutput } from './backends/backend.js';
export type { CpuBackendOptions } from './backends/cpu/index.js';
export type { WebGpuBackendOptions } from './backends/webgpu/options.js';
export type { AdapterKind, AdapterPreference } from './backends/webgpu/device/kinds.js';
export type { MetricsKernelKind, MetricsKernelPreference } from './backends/webgpu/tuning.js';
export { allocateSharedBatch, allocateSharedMetrics, type SharedBatchShape, type WritableBatch, type FloatDType } from './backends/cpu/shared.js';
