/**
 * The held-out split and the search over CCI weights. Groups, not records, are split, so the
 * candidates of one prompt never sit on both sides. The search scores every point of a grid
 * on the weight simplex on the fitting part only; the caller evaluates the winner on the
 * held-out part.
 */
import type { Weights } from '../core/config.js';
import { auroc, prr, seededRandom } from './statistics.js';
import { bestTauForFbeta, type Objective } from './tau-search.js';
import { weightedCci, type MetricVector } from './labelled-input.js';

/** Marks each group held out (1) or fitting (0): a seeded shuffle, `share` of the groups held out, at least one on each side. */
export function splitGroups(groupCount: number, share: number, seed: number): Uint8Array {
  const heldOut = new Uint8Array(groupCount);
  if (groupCount < 2) return heldOut;
  const order = Array.from({ length: groupCount }, (_, i) => i);
  const rnd = seededRandom(seed);
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  const k = Math.min(groupCount - 1, Math.max(1, Math.round(share * groupCount)));
  for (let i = 0; i < k; i++) heldOut[order[i]] = 1;
  return heldOut;
}

/** Every weight vector on the simplex whose entries are multiples of 1/steps (steps = 10: 1001 points). */
export function simplexGrid(steps: number): Weights[] {
  const out: Weights[] = [];
  for (let a = 0; a <= steps; a++)
    for (let b = 0; b <= steps - a; b++)
      for (let c = 0; c <= steps - a - b; c++) {
        for (let d = 0; d <= steps - a - b - c; d++) {
          const e = steps - a - b - c - d;
          out.push([a / steps, b / steps, c / steps, d / steps, e / steps]);
        }
      }
  return out;
}

export interface LabelledMetrics {
  metrics: readonly MetricVector[];
  labels: readonly boolean[];
}

/** The objective's value on some records under some weights; for F-beta, at its best tau on those records. */
export function objectiveValue(data: LabelledMetrics, weights: Weights, objective: Objective): { value: number; tau: number | null } {
  const cci = data.metrics.map((m) => weightedCci(m, weights));
  if (objective.kind === 'fbeta') return bestTauForFbeta(cci, data.labels, objective.beta);
  const r = objective.kind === 'auroc' ? auroc(cci, data.labels) : prr(cci, data.labels);
  return { value: r.value ?? Number.NaN, tau: null };
}

export interface WeightSearchResult {
  weights: Weights;
  fitValue: number;
  evaluated: number;
}

/**
 * Grid search on the fitting data. The configured weights are tried first, so that on a tie
 * they stay. Undefined objective values (one label class) never win.
 */
export function searchWeights(fit: LabelledMetrics, objective: Objective, configured: Weights, steps = 10): WeightSearchResult {
  const candidates = [configured, ...simplexGrid(steps)];
  let best = { weights: configured, fitValue: -Infinity };
  for (const w of candidates) {
    const { value } = objectiveValue(fit, w, objective);
    if (value > best.fitValue) best = { weights: w, fitValue: value };
  }
  return { ...best, evaluated: candidates.length };
}
