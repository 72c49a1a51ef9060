/**
 * `ecr calibrate`'s computation (ECR-SPEC section 8.2): tau for a target admission share with
 * a bootstrap interval over groups; with labels, discrimination, the objective's tau (and
 * optionally weights) fitted on one part of the groups and evaluated on the held-out rest, a
 * calibrated CCI -> probability map, and the selection lift; and the configuration to save.
 */
import type { ResolvedConfig, Weights } from '../core/config.js';
import { weightsObject } from '../engine/score-batch.js';
import { weightedCci, type CalibrationSet } from './labelled-input.js';
import { applyProbabilityMap, type ProbabilityMap, type Provenance } from '../core/probability-map.js';
import { selectPerGroup, selectionLift, type SelectionLift } from './selection-lift.js';
import {
  auroc,
  bootstrapInterval,
  bothClassesOrReason,
  brierScore,
  expectedCalibrationError,
  fitIsotonicMap,
  fitPlattMap,
  prr,
  reliabilityBins,
  riskCoverage,
  type Interval,
  type Maybe,
  type ReliabilityBin,
  type RiskCoveragePoint,
} from './statistics.js';
import { admissionCurve, fbetaAt, ResampledTau, tauForAdmission, TAU_GRID, type AdmissionPoint, type Objective } from './tau-search.js';
import { objectiveValue, searchWeights, splitGroups } from './weight-search.js';

export interface CalibrateOptions {
  targetAdmission: number;
  objective: Objective;
  method: 'isotonic' | 'platt';
  searchWeights: boolean;
  /** Share of groups held out for evaluation. */
  holdout: number;
  seed: number;
  bootstrapReplicates: number;
  /** Weight grid resolution: entries are multiples of 1/gridSteps. */
  gridSteps: number;
  /** Explicit split (1 = held out), by group index; default: a seeded shuffle of the groups. */
  heldOut?: Uint8Array;
}

export const DEFAULT_CALIBRATE_OPTIONS: Omit<CalibrateOptions, 'objective'> = {
  targetAdmission: 0.75,
  method: 'isotonic',
  searchWeights: false,
  holdout: 0.3,
  seed: 1,
  bootstrapReplicates: 1000,
  gridSteps: 10,
};

export interface LabelledResult {
  fitGroups: number;
  heldOutGroups: number;
  fitRecords: number;
  heldOutRecords: number;
  /** The input configuration on every labelled record (nothing fitted). */
  input: { auroc: Maybe; prr: Maybe };
  search: {
    objective: string;
    weightsSearched: boolean;
    candidatesEvaluated: number;
    /** The objective on the fitting part and on the held-out part, for the chosen config and the input config. */
    fitValue: number;
    heldOutValue: number;
    inputHeldOutValue: number;
  };
  /** The chosen configuration on the held-out part. */
  heldOut: { auroc: Maybe; prr: Maybe; riskCoverage: RiskCoveragePoint[] };
  /** Null when the fitting labels are all of one class: no map can be estimated from them. */
  probability: {
    method: 'isotonic' | 'platt';
    map: ProbabilityMap;
    ece: { before: number; after: number };
    brier: { before: number; after: number };
    reliabilityBefore: ReliabilityBin[];
    reliabilityAfter: ReliabilityBin[];
  } | null;
  /**
   * Set when the fitting labels are all of one class: the objective (NaN values), its tau and
   * the probability map are undefined, so tau comes from the target admission and no map is saved.
   */
  oneClass?: string;
  lift: SelectionLift | null;
  liftReason?: string;
  chosenWeights: Weights;
  /** The objective's tau (F-beta objectives), else null (tau from the target admission). */
  chosenTau: number | null;
}

export interface CalibrationResult {
  records: number;
  groups: number;
  labelledRecords: number;
  inputConfig: ResolvedConfig;
  admission: {
    target: number;
    /** Under the chosen weights, over every record. */
    tau: number;
    achieved: number;
    interval: Interval | null;
    intervalReason?: string;
    curve: AdmissionPoint[];
  };
  labelled: LabelledResult | null;
  labelledReason?: string;
  /** `admission` and `fallback`: the rates at the chosen tau, over every record and group. */
  chosen: { weights: Weights; tau: number; tauSource: 'objective' | 'target-admission'; admission: number; fallback: number };
  /** CCI of every record under the chosen weights. */
  cci: number[];
  /** JSON to save: valid input to `ecr score`, `ecr run` (and the gateway). */
  outputConfig: Record<string, unknown>;
  /** What the reader must know although the run succeeded (the CLI prints each to stderr). */
  warnings: string[];
}

function downsample<T>(xs: T[], max: number): T[] {
  if (xs.length <= max) return xs;
  const out: T[] = [];
  for (let k = 0; k < max; k++) out.push(xs[Math.round((k * (xs.length - 1)) / (max - 1))]);
  return out;
}

export function runCalibration(set: CalibrationSet, config: ResolvedConfig, opts: CalibrateOptions, provenance: Provenance): CalibrationResult {
  const groupIndex = set.records.map((r) => r.groupIndex);
  const members = Array.from({ length: set.groupCount }, () => [] as number[]);
  set.records.forEach((r, i) => members[r.groupIndex].push(i));

  let weights: Weights = config.weights;
  let labelled: LabelledResult | null = null;
  let labelledReason: string | undefined;
  let objectiveTau: number | null = null;
  const labelledIdx = set.records.map((r, i) => (r.label !== null ? i : -1)).filter((i) => i >= 0);

  if (labelledIdx.length === 0) labelledReason = `no record has a "${set.labelField}" label`;
  else if (set.groupCount < 2) labelledReason = 'one group only: the held-out split and the bootstrap need at least two groups';
  else {
    const heldOut = opts.heldOut ?? splitGroups(set.groupCount, opts.holdout, opts.seed);
    const fitIdx = labelledIdx.filter((i) => !heldOut[groupIndex[i]]);
    const evalIdx = labelledIdx.filter((i) => heldOut[groupIndex[i]]);
    if (fitIdx.length === 0 || evalIdx.length === 0) {
      labelledReason = `the labelled records fall on one side of the held-out split (${fitIdx.length} fitting, ${evalIdx.length} held out); label records of more groups`;
    } else {
      labelled = fitAndEvaluate(set, config, opts, fitIdx, evalIdx, heldOut, members);
      weights = labelled.chosenWeights;
      objectiveTau = labelled.chosenTau;
    }
  }

  const cci = set.records.map((r) => weightedCci(r.metrics, weights));
  const tauAdm = tauForAdmission(cci, opts.targetAdmission);
  const resampled = new ResampledTau(cci, groupIndex, set.groupCount);
  const interval =
    set.groupCount >= 2
      ? bootstrapInterval(set.groupCount, (sample) => resampled.tau(sample, opts.targetAdmission), opts.bootstrapReplicates, opts.seed)
      : null;
  const curve = admissionCurve(cci, groupIndex, set.groupCount, TAU_GRID);
  const tau = objectiveTau ?? tauAdm;
  const achieved = cci.filter((c) => c >= tauAdm).length / cci.length;
  const atChosen = admissionCurve(cci, groupIndex, set.groupCount, [tau])[0];

  const outputConfig: Record<string, unknown> = {
    weights: weightsObject(weights),
    tau,
    lambda: config.lambda,
    shrinkTarget: config.shrinkTarget,
    evbMode: config.evbMode,
    ...(config.crWeights ? { crWeights: [...config.crWeights] } : {}),
    confIndex: config.confIndex,
    vmax: config.vmax,
    ...(config.dmax !== null ? { dmax: config.dmax } : {}),
    ...(labelled?.probability ? { calibration: labelled.probability.map } : {}),
    provenance,
  };
  return {
    records: set.records.length,
    groups: set.groupCount,
    labelledRecords: labelledIdx.length,
    inputConfig: config,
    admission: {
      target: opts.targetAdmission,
      tau: tauAdm,
      achieved,
      interval,
      ...(interval ? {} : { intervalReason: 'undefined: the bootstrap resamples groups and the input has one' }),
      curve,
    },
    labelled,
    ...(labelledReason ? { labelledReason } : {}),
    chosen: { weights, tau, tauSource: objectiveTau !== null ? 'objective' : 'target-admission', admission: atChosen.admission, fallback: atChosen.fallback },
    cci,
    outputConfig,
    warnings: labelled?.oneClass ? [labelled.oneClass] : [],
  };
}

/** Everything fitted uses `fitIdx` only; everything reported as held-out uses `evalIdx` only. */
function fitAndEvaluate(
  set: CalibrationSet,
  config: ResolvedConfig,
  opts: CalibrateOptions,
  fitIdx: number[],
  evalIdx: number[],
  heldOut: Uint8Array,
  members: number[][],
): LabelledResult {
  const recs = set.records;
  const labels = recs.map((r) => r.label);
  const part = (idx: number[]) => ({ metrics: idx.map((i) => recs[i].metrics), labels: idx.map((i) => labels[i] as boolean) });
  const fit = part(fitIdx);
  const evalPart = part(evalIdx);
  const cciUnder = (w: Weights, idx: number[]) => idx.map((i) => weightedCci(recs[i].metrics, w));

  const allLabelled = [...fitIdx, ...evalIdx];
  const inputCciAll = cciUnder(config.weights, allLabelled);
  const allLabels = allLabelled.map((i) => labels[i] as boolean);

  // One label class on the fitting part: F-beta is 0 (or 1) at every tau, the ranking objectives
  // are undefined and the map would be constant 0 (or 1); nothing is fitted, as for auroc/prr the
  // tau comes from the target admission, and no map is saved for pCorrect to repeat.
  const noFit = bothClassesOrReason(fit.labels);
  const oneClass =
    noFit === null
      ? undefined
      : `one label class on the fitting groups (${noFit}): the ${opts.objective.name} objective and the probability map are undefined; tau falls back to the target admission, the input weights are kept and no "calibration" map is saved`;

  const search =
    noFit !== null
      ? { weights: config.weights, fitValue: Number.NaN, evaluated: 0 }
      : opts.searchWeights
        ? searchWeights(fit, opts.objective, config.weights, opts.gridSteps)
        : { weights: config.weights, fitValue: objectiveValue(fit, config.weights, opts.objective).value, evaluated: 1 };
  const weights = search.weights;
  const fitted = noFit !== null ? { value: Number.NaN, tau: null } : objectiveValue(fit, weights, opts.objective);
  const evalCci = cciUnder(weights, evalIdx);
  const inputEvalCci = cciUnder(config.weights, evalIdx);
  let heldOutValue: number, inputHeldOutValue: number;
  if (noFit !== null) {
    heldOutValue = Number.NaN;
    inputHeldOutValue = Number.NaN;
  } else if (opts.objective.kind === 'fbeta') {
    heldOutValue = fbetaAt(evalCci, evalPart.labels, fitted.tau!, opts.objective.beta);
    inputHeldOutValue = fbetaAt(inputEvalCci, evalPart.labels, config.tau, opts.objective.beta);
  } else {
    heldOutValue = objectiveValue(evalPart, weights, opts.objective).value;
    inputHeldOutValue = objectiveValue(evalPart, config.weights, opts.objective).value;
  }

  let probability: LabelledResult['probability'] = null;
  if (noFit === null) {
    const fitCci = cciUnder(weights, fitIdx);
    const map = opts.method === 'platt' ? fitPlattMap(fitCci, fit.labels) : fitIsotonicMap(fitCci, fit.labels);
    const calibrated = evalCci.map((c) => applyProbabilityMap(map, c));
    probability = {
      method: opts.method,
      map,
      ece: { before: expectedCalibrationError(evalCci, evalPart.labels), after: expectedCalibrationError(calibrated, evalPart.labels) },
      brier: { before: brierScore(evalCci, evalPart.labels), after: brierScore(calibrated, evalPart.labels) },
      reliabilityBefore: reliabilityBins(evalCci, evalPart.labels),
      reliabilityAfter: reliabilityBins(calibrated, evalPart.labels),
    };
  }

  // Lift on the held-out groups, with the tau the saved configuration will use.
  const tau =
    fitted.tau ??
    tauForAdmission(
      recs.map((r) => weightedCci(r.metrics, weights)),
      opts.targetAdmission,
    );
  const allCci = recs.map((r) => weightedCci(r.metrics, weights));
  const { selected } = selectPerGroup(
    allCci,
    recs.map((r) => r.groupIndex),
    set.groupCount,
    tau,
    recs.map((r) => r.baseScore),
    (i) => heldOut[recs[i].groupIndex] === 1,
  );
  const heldOutMembers = members.map((m, g) => (heldOut[g] ? m : []));
  const lift = selectionLift(heldOutMembers, selected, labels, opts.bootstrapReplicates, opts.seed);

  return {
    fitGroups: heldOut.length - heldOut.reduce((s, x) => s + x, 0),
    heldOutGroups: heldOut.reduce((s, x) => s + x, 0),
    fitRecords: fitIdx.length,
    heldOutRecords: evalIdx.length,
    input: { auroc: auroc(inputCciAll, allLabels), prr: prr(inputCciAll, allLabels) },
    search: {
      objective: opts.objective.name,
      weightsSearched: opts.searchWeights && noFit === null,
      candidatesEvaluated: search.evaluated,
      fitValue: fitted.value,
      heldOutValue,
      inputHeldOutValue,
    },
    heldOut: {
      auroc: auroc(evalCci, evalPart.labels),
      prr: prr(evalCci, evalPart.labels),
      riskCoverage: downsample(riskCoverage(evalCci, evalPart.labels), 200),
    },
    probability,
    ...(oneClass ? { oneClass } : {}),
    lift,
    ...(lift ? {} : { liftReason: 'no held-out group has two or more candidates, all labelled' }),
    chosenWeights: weights,
    chosenTau: fitted.tau,
  };
}
