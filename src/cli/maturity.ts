/**
 * `ecr maturity INPUT [--config FILE] [--labels FIELD] [--report report.html]`: the paper's
 * section 7.2 checks M1-M4 (ECR-SPEC section 8.3). Exit 0 when every applicable check passes,
 * 3 when one fails, 2 for bad input.
 */
import { parseArgs } from 'node:util';
import { promises as fs } from 'node:fs';
import { toResolvedConfig } from '../config.js';
import { UsageError } from '../errors.js';
import { BACKEND_CHOICES, type BackendChoice } from '../backends/backend.js';
import { readCalibrationSet } from '../calibration/labelled-input.js';
import { formatMaturity, runMaturity } from '../calibration/maturity.js';
import { renderReport } from '../calibration/report.js';
import { readJsonConfig } from './io.js';

const HELP = `usage: ecr maturity INPUT|- [--config FILE] [--labels FIELD] [--report report.html] [--backend B]

Applies the paper's maturity checks to JSONL trajectories or scored records (as ecr calibrate reads):
  M1  median EVB < 0.3, median CR < 0.6, 95th percentile EVB < 0.5
      (with identity shrinkage EVB >= lambda: the floor-free tr(S)/m is checked too, labelled)
  M2  drift across dialogue turns (records with "dialogue" and "turn"): median < 0.4, p95 < 0.6
  M3  first principal component of the evaluative vectors explains < 60% of their variance
  M4  answers to paraphrased prompts ("variant") agree: embedding cosine (a proxy for BERTScore) >= 0.85
Prints PASS, FAIL or NOT-APPLICABLE per check with the measured values.
Exit codes: 0 every applicable check passes, 3 a check fails, 2 bad input or arguments, 1 internal failure.`;

export async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv, allowPositionals: true,
      options: { config: { type: 'string' }, labels: { type: 'string' }, report: { type: 'string' }, backend: { type: 'string', default: 'auto' }, help: { type: 'boolean', short: 'h' } },
    });
  } catch (err) {
    throw new UsageError(`${(err as Error).message}\n${HELP}`);
  }
  const { values: v, positionals } = parsed;
  if (v.help) { process.stdout.write(HELP + '\n'); return 0; }
  if (positionals.length !== 1) throw new UsageError(`expected exactly one INPUT file or -, got ${positionals.length}\n${HELP}`);
  const backend = v.backend as BackendChoice;
  if (!BACKEND_CHOICES.includes(backend)) throw new UsageError(`--backend must be one of ${BACKEND_CHOICES.join(', ')}, got "${v.backend}"`);
  const config = toResolvedConfig(v.config ? await readJsonConfig(v.config) : {});
  const set = await readCalibrationSet(positionals[0], { config, labels: v.labels, backend });
  const result = runMaturity(set, config);
  process.stdout.write(formatMaturity(result) + '\n');
  if (v.report) await fs.writeFile(v.report, await renderReport({ title: `ECR maturity: ${set.file}`, set, config, maturity: result }));
  return result.exitCode;
}
