/** The HTML report of a calibration: the chosen configuration's maturity checks beside the calibration itself. */
import { toResolvedConfig } from '../core/config.js';
import type { CalibrationResult } from './calibrate.js';
import type { CalibrationSet } from './labelled-input.js';
import { runMaturity } from './maturity.js';
import { renderReport } from './report.js';

export async function calibrationReport(set: CalibrationSet, calibration: CalibrationResult): Promise<string> {
  const chosen = toResolvedConfig(calibration.outputConfig);
  return renderReport({ title: `ECR calibration: ${set.file}`, set, config: chosen, calibration, maturity: runMaturity(set, chosen) });
}
