/** `ecr-engine/testing`: what the project's own tests use, for yours: a real loopback LLM server and synthetic data. */
export { LoopbackServer, type LoopbackOptions, type LogEntry, type FailureRule, type FailureAction, type ContentlessAnswer } from './loopback-server.js';
export { syntheticBatch, type SyntheticOptions } from './synthetic-batch.js';
export { generateCalibrationData, type CalibrationDataOptions } from './synthetic-calibration.js';
