/**
 * The bundled examples (data/) that `ecr demo` scores: the paper's worked example and a small
 * file of stable and drifting trajectories, each with its configuration.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BackendChoice } from '../backends/backend.js';
import type { BackendOptions } from '../backends/options.js';
import type { TrajectoryRecord } from './record.js';
import { scoreRecords, type RecordsResult } from './score-records.js';

const DATA_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'data');

function load(name: string): { records: TrajectoryRecord[]; config: unknown } {
  // Shipped files; scoreRecords checks every record and the configuration anyway.
  const records = readFileSync(path.join(DATA_DIR, `${name}.jsonl`), 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as TrajectoryRecord);
  const config: unknown = JSON.parse(readFileSync(path.join(DATA_DIR, `${name}.config.json`), 'utf8'));
  return { records, config };
}

export interface ExampleResults {
  /** The paper's worked example (section 6): proxy mode, lambda 0, tau 0.65. */
  paper: RecordsResult;
  /** Support-bot candidates, 3 prompts x 4 candidates, 4 steps each (preset compliance, tau 0.8). */
  stableAndDrifting: RecordsResult;
}

export async function scoreExamples(backend: BackendChoice, backendOptions?: BackendOptions): Promise<ExampleResults> {
  const paper = load('paper-worked-example');
  const paperRes = await scoreRecords(paper.records, paper.config, { backend, backendOptions });
  const drift = load('stable-and-drifting');
  const driftRes = await scoreRecords(drift.records, drift.config, { backend, backendOptions });
  return { paper: paperRes, stableAndDrifting: driftRes };
}
