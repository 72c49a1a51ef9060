/** Public API of calibration and maturity (ECR-SPEC section 8). */
export { readCalibrationSet, type CalibrationSet, type CalibrationRecord, type ReadOptions } from './labelled-input.js';
export { runCalibration, DEFAULT_CALIBRATE_OPTIONS, type CalibrateOptions, type CalibrationResult, type LabelledResult } from './calibrate.js';
export { runMaturity, formatMaturity, THRESHOLDS as MATURITY_THRESHOLDS, MINIMUM_SAMPLES as MATURITY_MINIMUM_SAMPLES, type MaturityResult, type CheckResult, type Verdict } from './maturity.js';
export { renderReport, type ReportInput } from './report.js';
export { formatAuditLogLine, type AuditLogEntry } from '../core/audit-line.js';
export { pCorrectOf, type Provenance } from '../core/probability-map.js';
export { auroc, prr, riskCoverage } from './statistics.js';
export { applyProbabilityMap, type ProbabilityMap } from '../core/probability-map.js';
