/**
 * `ecr maturity INPUT [--config FILE] [--labels FIELD] [--report report.html] [--json]`: the
 * paper's section 7.2 checks M1-M4 (ECR-SPEC section 8.3). Exit 0 when every applicable check
 * passes, 3 when one fails, 4 when none fails but one lacks the data for a verdict, 2 for bad input.
 */
import { parseArgs } from '../core/parse-args.js';
import { promises as fs } from 'node:fs';
import { UsageError } from '../core/errors.js';
import { formatMaturity, runMaturity } from '../calibration/maturity.js';
import { renderReport } from '../calibration/report.js';
import { LABELLED_INPUT_OPTIONS, readLabelledInput } from './labelled-args.js';

const HELP = `usage: ecr maturity INPUT|- [--config FILE] [--labels FIELD] [--report report.html] [--json] [--backend B]
                    [--format jsonl|parquet|arrow]

Applies the paper's maturity checks to trajectories or scored records in JSONL, Parquet or Arrow
(as ecr calibrate reads them):
  M1  median EVB < 0.3, median CR < 0.6, 95th percentile EVB < 0.5
      (with identity shrinkage EVB >= lambda: the floor-free tr(S)/m is checked too, labelled)
  M2  drift across dialogue turns (records with "dialogue" and "turn"): median < 0.4, p95 < 0.6
  M3  first principal component of the evaluative vectors explains < 60% of their variance
  M4  answers to paraphrased prompts ("variant") agree: embedding cosine (a proxy for BERTScore) >= 0.85
Prints PASS, FAIL, INSUFFICIENT-DATA or NOT-APPLICABLE per check with the measured values (--json:
one JSON object instead). A check needs a least sample before PASS or FAIL: M1 59 records, M2 59
turn pairs (95th percentiles), M3 10 trajectories per component, M4 6 prompts (a median).
Exit codes: 0 every applicable check passes, 3 a check fails, 4 none fails but one has insufficient
data, 2 bad input or arguments, 1 internal failure.`;

export async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: { ...LABELLED_INPUT_OPTIONS, report: { type: 'string' }, json: { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h' } },
    });
  } catch (err) {
    throw new UsageError(`${(err as Error).message}\n${HELP}`);
  }
  const { values: v, positionals } = parsed;
  if (v.help) {
    process.stdout.write(HELP + '\n');
    return 0;
  }
  const { set, config } = await readLabelledInput(v, positionals, HELP);
  const result = runMaturity(set, config);
  if (v.json) {
    const { checks, exitCode, evbFloor, explainedVariance } = result;
    const input = { file: set.file, sha256: set.sha256, kind: set.kind, records: set.records.length, groups: set.groupCount };
    process.stdout.write(JSON.stringify({ input, exitCode, checks, evbFloor, explainedVariance }) + '\n');
  } else process.stdout.write(formatMaturity(result) + '\n');
  if (v.report) await fs.writeFile(v.report, await renderReport({ title: `ECR maturity: ${set.file}`, set, config, maturity: result }));
  return result.exitCode;
}
