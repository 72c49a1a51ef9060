/**
 * `ecr calibrate INPUT [--target-admission 0.75] [--labels FIELD] [--objective f1|fbeta:B|prr|auroc]
 *  [--out config.json] [--report report.html] ...` (ECR-SPEC section 8.2).
 */
import { parseArgs } from '../core/parse-args.js';
import { promises as fs } from 'node:fs';
import { UsageError } from '../core/errors.js';
import { DEFAULT_CALIBRATE_OPTIONS, runCalibration, type CalibrateOptions, type CalibrationResult } from '../calibration/calibrate.js';
import { calibrationReport } from '../calibration/calibration-report.js';
import { parseObjective } from '../calibration/tau-search.js';
import { positiveIntegerFlag } from './io.js';
import { plural } from '../core/plural.js';
import { LABELLED_INPUT_OPTIONS, readLabelledInput } from './labelled-args.js';

const HELP = `usage: ecr calibrate INPUT|- [--config FILE] [--target-admission 0.75] [--labels FIELD]
                     [--objective f1|fbeta:B|prr|auroc] [--search-weights] [--calibration isotonic|platt]
                     [--holdout 0.3] [--seed 1] [--bootstrap 1000] [--out config.json] [--report report.html]
                     [--backend auto|webgpu|cpu|cpu-reference] [--format jsonl|parquet|arrow]

INPUT is JSONL, Parquet or Arrow IPC (by extension, or --format): raw trajectories (scored first with
--config) or scored records (ecr score output in any of its formats, or a gateway audit log), with
optional labels "correct": true|false (or the field --labels names, at the top level or in "meta").
Without labels: the tau admitting --target-admission of the trajectories, with a bootstrap 95%
interval over groups. With labels: AUROC, PRR, the objective's tau (and with --search-weights the
CCI weights) fitted on 1 - holdout of the groups and evaluated on the held-out rest, a calibrated
CCI -> probability map (saved as "calibration", so ecr score prints pCorrect) and the selection lift.
--out writes the chosen configuration (valid input to ecr score and ecr run); --report an HTML report.`;

function unitNumber(name: string, text: string, open = false): number {
  const x = Number(text);
  if (!Number.isFinite(x) || x <= 0 || (open ? x >= 1 : x > 1)) throw new UsageError(`--${name} must be a number in (0, ${open ? '1)' : '1]'}, got "${text}"`);
  return x;
}

export async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        ...LABELLED_INPUT_OPTIONS,
        'target-admission': { type: 'string', default: '0.75' },
        objective: { type: 'string', default: 'f1' },
        'search-weights': { type: 'boolean', default: false },
        calibration: { type: 'string', default: 'isotonic' },
        holdout: { type: 'string', default: '0.3' },
        seed: { type: 'string', default: '1' },
        bootstrap: { type: 'string', default: '1000' },
        out: { type: 'string' },
        report: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    throw new UsageError(`${(err as Error).message}\n${HELP}`);
  }
  const { values: v, positionals } = parsed;
  if (v.help) {
    process.stdout.write(HELP + '\n');
    return 0;
  }
  if (v.calibration !== 'isotonic' && v.calibration !== 'platt') throw new UsageError(`--calibration must be isotonic or platt, got "${v.calibration}"`);
  const options: CalibrateOptions = {
    ...DEFAULT_CALIBRATE_OPTIONS,
    targetAdmission: unitNumber('target-admission', v['target-admission']),
    objective: parseObjective(v.objective),
    method: v.calibration,
    searchWeights: v['search-weights'],
    holdout: unitNumber('holdout', v.holdout, true),
    seed: positiveIntegerFlag('seed', v.seed),
    bootstrapReplicates: positiveIntegerFlag('bootstrap', v.bootstrap),
  };
  const { set, config } = await readLabelledInput(v, positionals, HELP);
  const provenance = {
    file: set.file,
    sha256: set.sha256,
    records: set.records.length,
    groups: set.groupCount,
    labelled: set.labelled,
    date: new Date().toISOString(),
    command: ['ecr', 'calibrate', ...argv].join(' '),
  };
  const result = runCalibration(set, config, options, provenance);
  for (const w of result.warnings) process.stderr.write(`ecr calibrate: warning: ${w}\n`);
  process.stdout.write(summary(result) + '\n');
  if (v.out) await fs.writeFile(v.out, JSON.stringify(result.outputConfig, null, 2) + '\n');
  if (v.report) await fs.writeFile(v.report, await calibrationReport(set, result));
  return 0;
}

// NaN: an objective undefined on the data (one label class), said rather than printed as a number.
const f = (x: number, d = 3) => (Number.isFinite(x) ? x.toFixed(d) : 'undefined');
const ci = (i: { low: number; high: number } | null) => (i ? `[${f(i.low)}, ${f(i.high)}]` : '(interval undefined)');

/** The lines `ecr calibrate` prints: what a reader needs to decide on tau and deployment. */
export function summary(r: CalibrationResult): string {
  const lines = [
    `records ${r.records}, groups ${r.groups}, labelled ${r.labelledRecords}`,
    `tau for ${f(r.admission.target, 2)} admission: ${f(r.admission.tau, 4)} 95% CI ${r.admission.interval ? ci(r.admission.interval) : r.admission.intervalReason} (admits ${f(r.admission.achieved)})`,
  ];
  const L = r.labelled;
  if (!L) lines.push(`labels: ${r.labelledReason}`);
  else {
    // An undefined statistic prints its reason, which names it.
    const m = (name: string, x: { value: number | null; reason?: string }) => (x.value === null ? x.reason! : `${name} ${f(x.value)}`);
    lines.push(
      `split: ${plural(L.fitGroups, 'group')} fitted (${plural(L.fitRecords, 'labelled record')}), ${L.heldOutGroups} held out (${plural(L.heldOutRecords, 'record')})`,
      `${m('AUROC', L.input.auroc)}, ${m('PRR', L.input.prr)} (input config, all labelled records)`,
      `held out: ${m('AUROC', L.heldOut.auroc)}, ${m('PRR', L.heldOut.prr)} (chosen config)`,
      `objective ${L.search.objective}: fitted ${f(L.search.fitValue)}, held out ${f(L.search.heldOutValue)} (input config held out: ${f(L.search.inputHeldOutValue)})${L.search.weightsSearched ? `; ${plural(L.search.candidatesEvaluated, 'weight vector')} tried` : ''}`,
      L.probability
        ? `calibration (${L.probability.method}, held out): ECE ${f(L.probability.ece.before)} -> ${f(L.probability.ece.after)}, Brier ${f(L.probability.brier.before)} -> ${f(L.probability.brier.after)}`
        : 'calibration: none (one label class on the fitting groups; no map saved)',
    );
    if (L.lift) {
      const e = (x: { value: number; interval: { low: number; high: number } | null }) => `${f(x.value)} ${ci(x.interval)}`;
      lines.push(
        `selection accuracy on ${plural(L.lift.groups, 'held-out group')}: ECR ${e(L.lift.selected)}, first ${e(L.lift.first)}, random ${e(L.lift.random)}`,
        `selection lift: over first ${e(L.lift.liftOverFirst)}, over random ${e(L.lift.liftOverRandom)}`,
      );
    } else lines.push(`selection lift: ${L.liftReason}`);
  }
  const w = r.chosen.weights;
  lines.push(
    `chosen: tau ${f(r.chosen.tau, 4)} (${r.chosen.tauSource}), weights [${w.map((x) => f(x, 2)).join(', ')}]; admits ${f(r.chosen.admission)} of trajectories, fallback in ${f(r.chosen.fallback)} of groups`,
  );
  return lines.join('\n');
}
