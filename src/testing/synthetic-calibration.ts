/**
 * The generative process behind data/calibration-synthetic.jsonl, the labelled data set the
 * calibration demo and tests use. It is synthetic: correctness depends on how stable a
 * candidate's trajectory is, with noise, so CCI should separate correct from incorrect answers
 * well but not perfectly. Deterministic for a given seed (scripts/generate-calibration-data.mjs).
 *
 * Per prompt (group) a difficulty ~ N(0, 0.8). A base evaluative state has its m components at
 * evenly spaced levels 0.1 + 0.8 (j + 0.5)/m (+ N(0, 0.03)) in a random order. Prompts
 * 0..(dialogues*turns-1) form dialogues of `turns` turns whose base state takes a N(0, 0.05)
 * step per turn; the remaining
 * prompts come in pairs of paraphrases (`variant`) sharing a base state and a true answer.
 * Per candidate an instability s = u^2 (u uniform): E[0] = base + N(0, 0.05), then each step
 * adds N(0, 0.02 + 0.25 s) per component (clipped to [0, 1]). The candidate is correct with
 * probability sigmoid(2 - 6 s - difficulty). Embeddings: a correct answer points along its
 * prompt's true-answer direction, a wrong one along a random direction, each step with
 * N(0, 0.1 + 0.5 s) noise per dimension.
 */
import { seededRandom } from '../calibration/statistics.js';

export interface CalibrationDataOptions {
  seed: number;
  dialogues: number;
  turns: number;
  paraphrasePairs: number;
  candidates: number;
  steps: number;
  components: number;
  embeddingDim: number;
}

export const CALIBRATION_DATA_DEFAULTS: CalibrationDataOptions = {
  seed: 2026,
  dialogues: 40,
  turns: 4,
  paraphrasePairs: 30,
  candidates: 4,
  steps: 5,
  components: 5,
  embeddingDim: 8,
};

const clip01 = (x: number) => Math.min(1, Math.max(0, x));
const round4 = (x: number) => Math.round(x * 1e4) / 1e4;
const round3 = (x: number) => Math.round(x * 1e3) / 1e3;

/** The data set as JSONL text (one trajectory per line, labels and keys in `meta`). */
export function generateCalibrationData(options: Partial<CalibrationDataOptions> = {}): string {
  const o = { ...CALIBRATION_DATA_DEFAULTS, ...options };
  const rnd = seededRandom(o.seed);
  const gauss = () => Math.sqrt(-2 * Math.log(1 - rnd())) * Math.cos(2 * Math.PI * rnd());
  const vector = (n: number, f: () => number) => Array.from({ length: n }, f);
  const unit = () => {
    const v = vector(o.embeddingDim, gauss);
    const n = Math.hypot(...v);
    return v.map((x) => x / n);
  };
  // Components evenly spread over [0.1, 0.9] in a random order, so their ranking is clear and
  // contradictions come from unstable trajectories rather than from near-ties.
  const baseState = () => {
    const levels = Array.from({ length: o.components }, (_, j) => 0.1 + (0.8 * (j + 0.5)) / o.components + 0.03 * gauss());
    for (let j = levels.length - 1; j > 0; j--) {
      const k = Math.floor(rnd() * (j + 1));
      [levels[j], levels[k]] = [levels[k], levels[j]];
    }
    return levels.map(clip01);
  };
  const lines: string[] = [];
  let g = 0;

  const prompt = (base: number[], truth: number[], meta: Record<string, unknown>) => {
    const group = `g${String(g++).padStart(3, '0')}`;
    const difficulty = 0.8 * gauss();
    for (let c = 0; c < o.candidates; c++) {
      const s = rnd() ** 2;
      const steps: number[][] = [];
      let row = base.map((b) => clip01(b + 0.05 * gauss()));
      steps.push(row);
      for (let t = 1; t < o.steps; t++) {
        row = row.map((x) => clip01(x + (0.02 + 0.25 * s) * gauss()));
        steps.push(row);
      }
      const correct = rnd() < 1 / (1 + Math.exp(-(2 - 6 * s - difficulty)));
      const direction = correct ? truth : unit();
      const embeddings = steps.map(() => direction.map((x) => x + ((0.1 + 0.5 * s) * gauss()) / Math.sqrt(o.embeddingDim)));
      lines.push(
        JSON.stringify({
          id: `${group}/c${c}`,
          group,
          steps: steps.map((r) => r.map(round4)),
          embeddings: embeddings.map((r) => r.map(round3)),
          meta: { correct, ...meta },
        }),
      );
    }
  };

  for (let d = 0; d < o.dialogues; d++) {
    let base = baseState();
    for (let turn = 1; turn <= o.turns; turn++) {
      if (turn > 1) base = base.map((b) => clip01(b + 0.05 * gauss()));
      prompt(base, unit(), { dialogue: `d${String(d).padStart(2, '0')}`, turn });
    }
  }
  for (let p = 0; p < o.paraphrasePairs; p++) {
    const base = baseState();
    const truth = unit();
    for (let k = 0; k < 2; k++) prompt(base, truth, { variant: `p${String(p).padStart(2, '0')}` });
  }
  return lines.join('\n') + '\n';
}
