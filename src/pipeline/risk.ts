/**
 * Prompt-risk estimate and the adaptive K it implies. A higher risk (high-stakes domain, exact
 * reasoning or factual recall demanded, long prompt) buys more candidates. The estimator is
 * pluggable; the default is lexical and makes no call.
 */

export interface RiskEstimator {
  readonly id: string;
  /** Risk in [0, 1]. */
  estimate(prompt: string): number | Promise<number>;
}

const DOMAIN =
  /\b(diagnos\w*|dosage|dose|medication|medicine|drug|symptom\w*|prescri\w*|surgery|pregnan\w*|vaccin\w*|overdose|legal|lawsuit|sue|contract|liabilit\w*|court|attorney|visa|immigration|tax\w*|invest\w*|loan|mortgage|stock|crypto\w*|insurance|retirement|suicide|self-harm|weapon\w*|explosive\w*|poison\w*|password\w*|security|vulnerab\w*|exploit\w*|compliance|regulat\w*|hipaa|gdpr|safe|safety|side[- ]effects?|allerg\w*|toxic\w*|lethal|emergency)\b/giu;
const REASONING =
  /\b(calculate|compute|derive|prove|proof|exact(ly)?|how many|how much|step by step|solve|equation|estimate|convert|percentage|probability)\b|\d+(\.\d+)?\s*[-+*/^%]\s*\d+/giu;
const FACTUAL = /\b(who|when|which year|what year|cite|citation|source|according to|statistic\w*|date|history|latest|current)\b/giu;

function hits(re: RegExp, s: string): number {
  return s.match(re)?.length ?? 0;
}

/** Combines independent risk factors as 1 - prod(1 - w_i * f_i) over a small base risk. */
export class LexicalRiskEstimator implements RiskEstimator {
  readonly id = 'lexical-risk-v2';
  estimate(prompt: string): number {
    const words = prompt.split(/\s+/).filter(Boolean).length;
    // One high-stakes term already matters (a dosage question is not small talk): 0.75, then 1.
    const domainHits = hits(DOMAIN, prompt);
    const domain = domainHits === 0 ? 0 : domainHits === 1 ? 0.75 : 1;
    const reasoning = Math.min(1, hits(REASONING, prompt) / 2);
    const factual = Math.min(1, hits(FACTUAL, prompt) / 2);
    const length = Math.min(1, words / 200);
    const safe = (1 - 0.1) * (1 - 0.7 * domain) * (1 - 0.45 * reasoning) * (1 - 0.3 * factual) * (1 - 0.25 * length);
    return Math.min(1, Math.max(0, 1 - safe));
  }
}

/** K from risk: < 0.5 -> 1, < 0.7 -> 2, < 0.8 -> 3, else 4; never above `maxK`. */
export function kForRisk(risk: number, maxK: number): number {
  const k = risk < 0.5 ? 1 : risk < 0.7 ? 2 : risk < 0.8 ? 3 : 4;
  return Math.max(1, Math.min(k, maxK));
}
