/**
 * The paper's section 7.2 maturity checks M1-M4 with its thresholds (ECR-SPEC section 8.3):
 * each is PASS, FAIL, INSUFFICIENT-DATA (fewer samples than its statistics need) or
 * NOT-APPLICABLE (with the reason), with the values measured.
 */
import { EigenvalueDecomposition, Matrix } from 'ml-matrix';
import type { ResolvedConfig } from '../core/config.js';
import { InputError } from '../core/errors.js';
import type { CalibrationRecord, CalibrationSet } from './labelled-input.js';
import { weightedCci, whereIs } from './labelled-input.js';
import { selectPerGroup } from './selection-lift.js';
import { median, quantile } from './statistics.js';
import { plural } from '../core/plural.js';

export type Verdict = 'PASS' | 'FAIL' | 'INSUFFICIENT-DATA' | 'NOT-APPLICABLE';

export interface Measurement {
  name: string;
  value: number;
  comparison: '<' | '>=';
  threshold: number;
  pass: boolean;
}

export interface CheckResult {
  id: 'M1' | 'M1-floor-free' | 'M2' | 'M3' | 'M4';
  title: string;
  verdict: Verdict;
  measurements: Measurement[];
  /** What the check's statistics were computed over, and the least it takes (absent when NOT-APPLICABLE). */
  sample?: { size: number; minimum: number; unit: string };
  /** Why NOT-APPLICABLE or INSUFFICIENT-DATA, or what the reader must know next to the verdict. */
  note?: string;
}

export interface MaturityResult {
  checks: CheckResult[];
  /**
   * 0 when every applicable check passes, 3 when one fails, 4 when none fails but one has too
   * little data for a verdict (ECR-SPEC section 8.3).
   */
  exitCode: 0 | 3 | 4;
  /** M3's explained-variance ratios, largest first (empty when not applicable). */
  explainedVariance: number[];
  /** M2's drift values, one per consecutive turn pair. */
  drift: number[];
  /** M4's similarity per prompt with paraphrases. */
  paraphraseSimilarity: number[];
  /** The EVB floor the configuration imposes (lambda under identity shrinkage), or 0. */
  evbFloor: number;
}

export const THRESHOLDS = {
  m1MedianEvb: 0.3,
  m1MedianCr: 0.6,
  m1P95Evb: 0.5,
  m2MedianDrift: 0.4,
  m2P95Drift: 0.6,
  m3FirstComponent: 0.6,
  m4MedianSimilarity: 0.85,
};

/**
 * The least sample each check's statistics need before PASS or FAIL means anything (ECR-SPEC
 * section 8.3). Medians and 95th percentiles are order statistics, so the minima are the
 * distribution-free ones: the smallest n for which the sample brackets the quantile with 95%
 * confidence whatever the distribution.
 */
export const MINIMUM_SAMPLES = {
  /** A 95th percentile: the sample maximum is a 95% upper confidence bound on it only once 1 - 0.95^n >= 0.95, n >= 59 (Wilks). */
  percentile95: 59,
  /** A median: [min, max] covers it with 95% confidence only once 1 - 2 * 0.5^n >= 0.95, n >= 6. */
  median: 6,
  /**
   * PCA, per component: the largest sample eigenvalue is biased upward when the sample is small
   * against m (below m + 1 vectors the covariance is singular and one component's share is
   * inflated by construction); 10 independent observations per variable is the usual minimum.
   * A trajectory's steps are not independent, so trajectories count, not steps.
   */
  pcaPerComponent: 10,
};

function measure(name: string, value: number, comparison: '<' | '>=', threshold: number): Measurement {
  return { name, value, comparison, threshold, pass: comparison === '<' ? value < threshold : value >= threshold };
}

function verdictOf(ms: Measurement[]): Verdict {
  return ms.every((m) => m.pass) ? 'PASS' : 'FAIL';
}

/**
 * The check with its sample: PASS or FAIL from the measurements when the sample reaches the
 * minimum, else INSUFFICIENT-DATA (the measurements are kept, for information) and why.
 */
function judged(
  id: CheckResult['id'],
  title: string,
  ms: Measurement[],
  size: number,
  minimum: number,
  [one, many]: [string, string],
  why: string,
  note?: string,
): CheckResult {
  const sample = { size, minimum, unit: many };
  if (size >= minimum) return { id, title, verdict: verdictOf(ms), measurements: ms, sample, ...(note ? { note } : {}) };
  const short = `insufficient data: ${plural(size, one, many)}, ${id} needs at least ${minimum} (${why}); no PASS or FAIL from so few.`;
  return { id, title, verdict: 'INSUFFICIENT-DATA', measurements: ms, sample, note: note ? `${short} ${note}` : short };
}

const P95_WHY = 'below 59 the sample cannot bound a 95th percentile with 95% confidence';

const notApplicable = (id: CheckResult['id'], title: string, note: string): CheckResult => ({ id, title, verdict: 'NOT-APPLICABLE', measurements: [], note });

/** lambda when EVB = min(1, (1 - lambda) tr(S)/m + lambda) (identity target, trace mode), else 0. */
export function evbFloorOf(config: ResolvedConfig): number {
  return config.evbMode === 'trace' && config.shrinkTarget === 'identity' && typeof config.lambda === 'number' ? config.lambda : 0;
}

function m1(set: CalibrationSet, config: ResolvedConfig): CheckResult[] {
  const evb = set.records.map((r) => r.metrics[0]);
  const cr = set.records.map((r) => r.metrics[1]);
  const ms = [
    measure('median EVB', median(evb), '<', THRESHOLDS.m1MedianEvb),
    measure('median CR', median(cr), '<', THRESHOLDS.m1MedianCr),
    measure('95th percentile EVB', quantile(evb, 0.95), '<', THRESHOLDS.m1P95Evb),
  ];
  const floor = evbFloorOf(config);
  const title = 'M1: evaluative variance and contradiction';
  const n = set.records.length;
  const judge = (id: CheckResult['id'], t: string, m: Measurement[], note?: string) =>
    judged(id, t, m, n, MINIMUM_SAMPLES.percentile95, ['record', 'records'], P95_WHY, note);
  if (floor === 0) return [judge('M1', title, ms)];
  const cannot = floor >= THRESHOLDS.m1MedianEvb ? `: median EVB < ${THRESHOLDS.m1MedianEvb} cannot pass whatever the data` : '';
  const main = judge(
    'M1',
    title,
    ms,
    `EVB has a floor of lambda = ${floor}: the configuration shrinks toward the identity (ECR-SPEC section 6), so every EVB is at least ${floor} and M1's thresholds, which assume no floor, are not comparable${cannot}. The floor-free value tr(S)/m is checked below; this verdict stays the configured one.`,
  );
  // EVB = min(1, (1 - lambda) tr(S)/m + lambda): inverted, exact where EVB < 1 (a lower bound at 1).
  const free = evb.map((e) => (floor < 1 ? (e - floor) / (1 - floor) : 0));
  const fms = [
    measure('median tr(S)/m', median(free), '<', THRESHOLDS.m1MedianEvb),
    measure('median CR', median(cr), '<', THRESHOLDS.m1MedianCr),
    measure('95th percentile tr(S)/m', quantile(free, 0.95), '<', THRESHOLDS.m1P95Evb),
  ];
  return [
    main,
    judge(
      'M1-floor-free',
      'M1, floor-free: tr(S)/m = (EVB - lambda)/(1 - lambda) in place of EVB',
      fms,
      "Informational: the unshrunk covariance trace per component, to which M1's thresholds apply as the paper intends.",
    ),
  ];
}

function meanStep(steps: number[][]): number[] {
  const m = steps[0].length;
  const out = new Array<number>(m).fill(0);
  for (const row of steps) for (let j = 0; j < m; j++) out[j] += row[j] / steps.length;
  return out;
}

function selectedSet(set: CalibrationSet, config: ResolvedConfig): Set<number> {
  const cci = set.records.map((r) => weightedCci(r.metrics, config.weights));
  const { selected } = selectPerGroup(
    cci,
    set.records.map((r) => r.groupIndex),
    set.groupCount,
    config.tau,
    set.records.map((r) => r.baseScore),
  );
  return new Set([...selected].filter((i) => i >= 0));
}

/**
 * M2 drift (ECR-SPEC section 8.3): per dialogue, a turn's state is the mean evaluative vector
 * (over steps) of its selected candidates (of all its candidates when none is selected); the
 * drift between consecutive turns is the Euclidean distance of their states divided by sqrt(m),
 * in [0, 1].
 */
export function dialogueDrift(records: readonly CalibrationRecord[], selected: Set<number>): number[] {
  const dialogues = new Map<string, Map<number, number[]>>();
  records.forEach((r, i) => {
    if (r.dialogue === undefined || r.turn === undefined) return;
    const key = `${typeof r.dialogue}:${r.dialogue}`;
    let turns = dialogues.get(key);
    if (!turns) dialogues.set(key, (turns = new Map<number, number[]>()));
    let list = turns.get(r.turn);
    if (!list) turns.set(r.turn, (list = []));
    list.push(i);
  });
  const drift: number[] = [];
  for (const turns of dialogues.values()) {
    const ordered = [...turns.entries()].sort((a, b) => a[0] - b[0]);
    let prev: number[] | null = null;
    for (const [, idx] of ordered) {
      const chosen = idx.filter((i) => selected.has(i));
      const use = chosen.length ? chosen : idx;
      const means = use.map((i) => meanStep(records[i].steps!));
      const m = means[0].length;
      for (const [k, mv] of means.entries()) {
        if (mv.length !== m)
          throw new InputError(
            `has ${plural(mv.length, 'component')} per step, other candidates of its dialogue turn have ${m}; M2 compares evaluative vectors`,
            { ...whereIs(records[use[k]]), id: String(records[use[k]].id), field: 'steps' },
          );
      }
      const state = means[0].map((_, j) => means.reduce((s, v) => s + v[j], 0) / means.length);
      if (prev) {
        if (prev.length !== state.length)
          throw new InputError(`dialogue turns with different component counts (${prev.length} and ${state.length}); M2 compares evaluative vectors`, {
            ...whereIs(records[use[0]]),
            id: String(records[use[0]].id),
            field: 'steps',
          });
        drift.push(Math.sqrt(state.reduce((s, x, j) => s + (x - prev![j]) ** 2, 0)) / Math.sqrt(state.length));
      }
      prev = state;
    }
  }
  return drift;
}

/**
 * Explained-variance ratios of the principal components of the rows (largest first): the
 * eigenvalues of the sample covariance, from ml-matrix's symmetric eigendecomposition (the m x m
 * covariance is accumulated in one pass, so millions of rows need no n x m matrix).
 */
export function explainedVarianceRatios(rows: Iterable<readonly number[]>, m: number): number[] {
  const sum = new Float64Array(m);
  const cross = new Float64Array(m * m);
  let n = 0;
  for (const row of rows) {
    n++;
    for (let a = 0; a < m; a++) {
      sum[a] += row[a];
      for (let b = a; b < m; b++) cross[a * m + b] += row[a] * row[b];
    }
  }
  const cov = new Matrix(m, m);
  for (let a = 0; a < m; a++)
    for (let b = a; b < m; b++) {
      const c = (cross[a * m + b] - (sum[a] * sum[b]) / n) / Math.max(1, n - 1);
      cov.set(a, b, c);
      cov.set(b, a, c);
    }
  const eig = new EigenvalueDecomposition(cov, { assumeSymmetric: true }).realEigenvalues.map((x) => Math.max(0, x)).sort((a, b) => b - a);
  const total = eig.reduce((s, x) => s + x, 0);
  return total > 0 ? eig.map((x) => x / total) : [];
}

function m3(set: CalibrationSet): { check: CheckResult; ratios: number[] } {
  const title = 'M3: no single dominant evaluative direction (PCA)';
  if (set.kind !== 'trajectories')
    return { check: notApplicable('M3', title, 'needs the evaluative vectors (raw trajectories with "steps"); the input holds scored records'), ratios: [] };
  const widths = new Set(set.records.map((r) => r.steps![0].length));
  if (widths.size > 1)
    return { check: notApplicable('M3', title, `trajectories have different component counts (${[...widths].join(', ')}); PCA needs one`), ratios: [] };
  const m = [...widths][0];
  if (m < 2) return { check: notApplicable('M3', title, 'one component per step: PCA needs at least 2'), ratios: [] };
  const ratios = explainedVarianceRatios(
    (function* () {
      for (const r of set.records) yield* r.steps!;
    })(),
    m,
  );
  if (ratios.length === 0) return { check: notApplicable('M3', title, 'the evaluative vectors have no variance'), ratios };
  const ms = [measure("first component's share of variance", ratios[0], '<', THRESHOLDS.m3FirstComponent)];
  const minimum = MINIMUM_SAMPLES.pcaPerComponent * m;
  return {
    check: judged(
      'M3',
      title,
      ms,
      set.records.length,
      minimum,
      ['trajectory', 'trajectories'],
      `${MINIMUM_SAMPLES.pcaPerComponent} per component for m = ${m}: fewer inflate the first component's share`,
    ),
    ratios,
  };
}

function cosine(a: readonly number[], b: readonly number[]): number {
  let ab = 0,
    aa = 0,
    bb = 0;
  for (let j = 0; j < a.length; j++) {
    ab += a[j] * b[j];
    aa += a[j] * a[j];
    bb += b[j] * b[j];
  }
  return aa < 1e-24 || bb < 1e-24 ? 0 : ab / Math.sqrt(aa * bb);
}

/**
 * M4 with embedding cosine standing in for BERTScore: per prompt (`variant` key), the mean
 * pairwise cosine of the final-step embeddings of the answers selected for its paraphrases
 * (one group per paraphrase).
 */
export function paraphraseSimilarity(set: CalibrationSet, selected: Set<number>): number[] | string {
  const byVariant = new Map<string, Set<number>>();
  set.records.forEach((r, i) => {
    if (r.variant === undefined || !selected.has(i)) return;
    const key = `${typeof r.variant}:${r.variant}`;
    let s = byVariant.get(key);
    if (!s) byVariant.set(key, (s = new Set()));
    s.add(i);
  });
  const sims: number[] = [];
  for (const chosen of byVariant.values()) {
    const answers = [...chosen];
    if (answers.length < 2) continue;
    const emb = answers.map((i) => {
      const e = set.records[i].embeddings;
      if (!e)
        throw new InputError('M4 needs "embeddings" on records with a "variant" (the final step\'s embedding stands for the answer)', {
          ...whereIs(set.records[i]),
          id: String(set.records[i].id),
          field: 'embeddings',
        });
      return e[e.length - 1];
    });
    let s = 0,
      pairs = 0;
    for (let a = 0; a < emb.length; a++)
      for (let b = a + 1; b < emb.length; b++) {
        if (emb[a].length !== emb[b].length)
          throw new InputError(`embedding width ${emb[b].length} differs from ${emb[a].length} of another paraphrase's answer`, {
            ...whereIs(set.records[answers[b]]),
            id: String(set.records[answers[b]].id),
            field: 'embeddings',
          });
        s += cosine(emb[a], emb[b]);
        pairs++;
      }
    sims.push(s / pairs);
  }
  return sims.length ? sims : 'no prompt has answers selected for two or more paraphrases (groups) sharing a "variant"';
}

export function runMaturity(set: CalibrationSet, config: ResolvedConfig): MaturityResult {
  const checks: CheckResult[] = [...m1(set, config)];
  const selected = selectedSet(set, config);
  const hasDialogue = set.records.some((r) => r.dialogue !== undefined);
  let drift: number[] = [];
  const m2Title = 'M2: drift across dialogue turns';
  if (!hasDialogue) checks.push(notApplicable('M2', m2Title, 'no record carries "dialogue" and "turn"'));
  else if (set.kind !== 'trajectories') checks.push(notApplicable('M2', m2Title, 'drift compares evaluative vectors: needs raw trajectories with "steps"'));
  else {
    drift = dialogueDrift(set.records, selected);
    if (drift.length === 0) checks.push(notApplicable('M2', m2Title, 'no dialogue has two or more turns'));
    else {
      const ms = [
        measure('median drift', median(drift), '<', THRESHOLDS.m2MedianDrift),
        measure('95th percentile drift', quantile(drift, 0.95), '<', THRESHOLDS.m2P95Drift),
      ];
      checks.push(judged('M2', m2Title, ms, drift.length, MINIMUM_SAMPLES.percentile95, ['turn pair', 'turn pairs'], P95_WHY));
    }
  }
  const { check: m3check, ratios } = m3(set);
  checks.push(m3check);
  const m4Title = 'M4: answers agree across paraphrased prompts (embedding cosine, a proxy for BERTScore)';
  let paraphrase: number[] = [];
  if (!set.records.some((r) => r.variant !== undefined)) checks.push(notApplicable('M4', m4Title, 'no record carries "variant"'));
  else if (set.kind !== 'trajectories') checks.push(notApplicable('M4', m4Title, 'needs embeddings: raw trajectories with "embeddings"'));
  else {
    const sims = paraphraseSimilarity(set, selected);
    if (typeof sims === 'string') checks.push(notApplicable('M4', m4Title, sims));
    else {
      paraphrase = sims;
      const ms = [measure('median cross-paraphrase cosine (proxy for BERTScore)', median(sims), '>=', THRESHOLDS.m4MedianSimilarity)];
      checks.push(
        judged(
          'M4',
          m4Title,
          ms,
          sims.length,
          MINIMUM_SAMPLES.median,
          ['prompt', 'prompts'],
          'below 6 the sample cannot bracket a median with 95% confidence',
          "Embedding cosine of the selected answers stands in for BERTScore; the threshold 0.85 is this engine's (ECR-SPEC section 8.3).",
        ),
      );
    }
  }
  // The floor-free M1 is informational: the configured verdict decides the exit code. A failure
  // on enough data outranks a check that could not decide.
  const decisive = checks.filter((c) => c.id !== 'M1-floor-free');
  const exitCode = decisive.some((c) => c.verdict === 'FAIL') ? 3 : decisive.some((c) => c.verdict === 'INSUFFICIENT-DATA') ? 4 : 0;
  return { checks, exitCode, explainedVariance: ratios, drift, paraphraseSimilarity: paraphrase, evbFloor: evbFloorOf(config) };
}

/** The text `ecr maturity` prints: one line per check, then its measurements and note. */
export function formatMaturity(result: MaturityResult): string {
  const lines: string[] = [];
  for (const c of result.checks) {
    // Without a verdict, an "ok" or "no" per value would read as one.
    const mark = (m: Measurement) => (c.verdict === 'INSUFFICIENT-DATA' ? '' : `: ${m.pass ? 'ok' : 'no'}`);
    const vals = c.measurements.map((m) => `${m.name} ${m.value.toFixed(4)} (${m.comparison} ${m.threshold}${mark(m)})`).join('; ');
    lines.push(
      `${c.id.padEnd(13)} ${c.verdict.padEnd(17)} ${c.title}${vals ? `\n${' '.repeat(14)}${vals}` : ''}${c.note ? `\n${' '.repeat(14)}${c.note}` : ''}`,
    );
  }
  return lines.join('\n');
}
