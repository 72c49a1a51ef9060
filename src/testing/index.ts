export * from './loopback-server.js';
export { generateCalibrationData, type CalibrationDataOptions } from './synthetic-calibration.js';
