#!/usr/bin/env node
// Regenerates data/calibration-synthetic.jsonl from its documented generative process
// (src/testing/synthetic-calibration.ts). Run after `npm run build`:
//   node scripts/generate-calibration-data.mjs [OUT]
import { writeFileSync } from 'node:fs';
import { generateCalibrationData } from '../dist/testing/synthetic-calibration.js';

const out = process.argv[2] ?? new URL('../data/calibration-synthetic.jsonl', import.meta.url);
writeFileSync(out, generateCalibrationData());
