/**
 * The evaluative vector of one step (m = 5, each in [0, 1]), in this component order:
 *
 *   0 confidence   mean token probability exp(logprob) when logprobs were returned; otherwise
 *                  (1 + c) / (2 + c + h) from c certainty markers and h hedges (0.5 with neither).
 *   1 retrieval    (1 + cos(step, context)) / 2, context = prompt (+ retrieval context if given).
 *   2 uncertainty  mean normalized entropy of the per-token top-logprob distribution (the returned
 *                  alternatives plus one bucket for the remaining mass, over ln(k + 1)); a token
 *                  without alternatives uses the binary entropy of its own probability; without
 *                  logprobs, 1 - exp(-hedges per 25 words).
 *   3 safety       the pluggable SafetyScorer (default: marker-based).
 *   4 consistency  (1 + cos(step t, step t-1)) / 2; step 0 takes the value of the 0-1 pair.
 *
 * confIndex 0 (the default) therefore points at confidence for the ES fallback.
 */
import type { TokenLogprob } from '../llm/provider.js';

export const SIGNAL_NAMES = ['confidence', 'retrieval', 'uncertainty', 'safety', 'consistency'] as const;
export const SIGNAL_COUNT = SIGNAL_NAMES.length;

const CERTAINTY = /\b(certainly|definitely|clearly|undoubtedly|always|exactly|precisely|indeed|confirmed|surely|without (a )?doubt|the answer is|in fact)\b/giu;
const HEDGES =
  /\b(maybe|perhaps|might|possibly|probably|likely|unlikely|unclear|uncertain|unsure|not sure|i think|i believe|i guess|seems?|appears?|could be|approximately|roughly|it depends|arguably|may)\b/giu;

function count(re: RegExp, s: string): number {
  return s.match(re)?.length ?? 0;
}

function wordCount(s: string): number {
  return s.split(/\s+/).filter(Boolean).length;
}

export function lexicalConfidence(text: string): number {
  const c = count(CERTAINTY, text),
    h = count(HEDGES, text);
  return (1 + c) / (2 + c + h);
}

export function lexicalUncertainty(text: string): number {
  const h = count(HEDGES, text);
  return 1 - Math.exp(-h / Math.max(1, wordCount(text) / 25));
}

export function logprobConfidence(lp: readonly TokenLogprob[]): number {
  let s = 0;
  for (const t of lp) s += Math.exp(t.logprob);
  return clamp01(s / lp.length);
}

export function logprobUncertainty(lp: readonly TokenLogprob[]): number {
  let total = 0;
  for (const t of lp) {
    if (t.top.length >= 2) {
      let mass = 0,
        h = 0;
      for (const x of t.top) {
        const p = Math.exp(x.logprob);
        mass += p;
        if (p > 0) h -= p * Math.log(p);
      }
      const rest = Math.max(0, 1 - mass);
      if (rest > 0) h -= rest * Math.log(rest);
      total += Math.min(1, h / Math.log(t.top.length + 1));
    } else {
      const p = Math.exp(t.logprob);
      const q = 1 - p;
      const h = p > 0 && p < 1 ? -(p * Math.log(p) + q * Math.log(q)) : 0;
      total += h / Math.LN2;
    }
  }
  return clamp01(total / lp.length);
}

/**
 * The step's policy row for PD: mean probability at each rank 1..A of the top-logprob lists
 * (a token with fewer than A alternatives contributes 0 at the missing ranks). PD then measures how
 * the model's decisiveness profile shifts between steps; dmax = ln A.
 */
export function policyRow(lp: readonly TokenLogprob[], a: number): Float64Array {
  const row = new Float64Array(a);
  for (const t of lp) {
    // Servers list alternatives most likely first; copy and sort only when one does not.
    let top = t.top;
    for (let j = 1; j < top.length; j++)
      if (top[j].logprob > top[j - 1].logprob) {
        top = [...top].sort((x, y) => y.logprob - x.logprob);
        break;
      }
    for (let j = 0; j < Math.min(a, top.length); j++) row[j] += Math.exp(top[j].logprob);
  }
  for (let j = 0; j < a; j++) row[j] /= lp.length;
  return row;
}

export function similarity01(cos: number): number {
  return clamp01((1 + cos) / 2);
}

export function clamp01(x: number): number {
  return Number.isFinite(x) ? Math.min(1, Math.max(0, x)) : 0;
}

export interface SafetyScorer {
  readonly id: string;
  /**
   * True when scoring leaves the process (a moderation endpoint, a classifier service): then the
   * evaluative vectors it enters are worth keeping in the shared Redis tier. Default false.
   */
  readonly remote?: boolean;
  /** 1 = safe, 0 = unsafe. */
  score(text: string, prompt: string): number | Promise<number>;
}

const UNSAFE =
  /\b(kill|murder|bomb|explosive|detonat\w*|weapon|firearm|poison|overdose|suicide|self-harm|meth(amphetamine)?|malware|ransomware|keylogger|exploit code|credit card numbers?|social security numbers?|password dump|hate|slur)\b/giu;

/** Marker-based safety: each unsafe marker costs a third, floored at 0. A lexical screen, not a classifier. */
export class MarkerSafetyScorer implements SafetyScorer {
  readonly id = 'marker-safety-v1';
  score(text: string): number {
    return Math.max(0, 1 - count(UNSAFE, text) / 3);
  }
}
