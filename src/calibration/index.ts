/** `ecr-engine/calibration`: what `ecr calibrate` and `ecr maturity` run (ECR-SPEC section 8). */
export { readCalibrationSet, type CalibrationSet, type CalibrationRecord, type ReadOptions } from './labelled-input.js';
export { runCalibration, DEFAULT_CALIBRATE_OPTIONS, type CalibrateOptions, type CalibrationResult, type LabelledResult } from './calibrate.js';
export {
  runMaturity,
  formatMaturity,
  THRESHOLDS as MATURITY_THRESHOLDS,
  MINIMUM_SAMPLES as MATURITY_MINIMUM_SAMPLES,
  type MaturityResult,
  type CheckResult,
  type Verdict,
} from './maturity.js';
export { renderReport, type ReportInput } from './report.js';
export { auroc, prr, riskCoverage } from './statistics.js';
export { formatAuditLogLine, type AuditLogEntry } from '../core/audit-line.js';
export { applyProbabilityMap, pCorrectOf, type ProbabilityMap, type Provenance } from '../core/probability-map.js';
export type { MetricVector } from './labelled-input.js';
export type { AdmissionPoint, Objective } from './tau-search.js';
export type { SelectionLift, Estimate } from './selection-lift.js';
export type { Interval, Maybe, ReliabilityBin, RiskCoveragePoint } from './statistics.js';
export type { Measurement } from './maturity.js';
