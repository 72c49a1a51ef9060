/**
 * The OpenAI response shapes of an ECR answer: a `chat.completion`, or the `chat.completion.chunk`
 * sequence of a stream, plus the `ecr` audit field and the x-ecr-* headers.
 */
import { randomUUID } from 'node:crypto';
import { SIGNAL_NAMES } from '../pipeline/signals.js';
import type { PipelineResult } from '../pipeline/types.js';
import type { AuditLevel } from './request-settings.js';

export function completionId(): string {
  return `chatcmpl-ecr-${randomUUID().replace(/-/g, '')}`;
}

export interface CompletionMeta {
  id: string;
  created: number;
  /** The model as requested (e.g. "ecr/llama3"). */
  model: string;
}

export function usageOf(r: PipelineResult) {
  const { prompt, completion } = r.stats.tokens;
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
}

/** The audit: selection summary and per-candidate metrics; with "full" also step texts and vectors. */
export function auditOf(r: PipelineResult, level: AuditLevel) {
  if (level === 'none') return undefined;
  const s = r.stats;
  return {
    selected_index: r.selectedIndex,
    admissible: r.admissible,
    fallback: s.scoring.reason === 'fallback',
    tau: s.scoring.tau,
    cci: r.metrics.CCI,
    k: { max: s.k.max, used: s.k.used, adaptive: s.k.adaptive, risk: s.k.risk },
    horizon: s.horizon,
    weights: s.scoring.weights,
    candidates: r.candidates.map((c) => ({
      index: c.index,
      status: c.status,
      selected: c.selected,
      ...(c.admissible !== undefined ? { admissible: c.admissible } : {}),
      ...(c.metrics ? { metrics: c.metrics } : {}),
      ...(c.error ? { error: c.error } : {}),
      ...(level === 'full' ? { text: c.text, steps: c.steps?.map((st) => ({ text: st.text, E: st.E })) } : {}),
    })),
    ...(level === 'full' ? { signals: SIGNAL_NAMES, calls: s.calls, wall_ms: s.wallMs } : {}),
  };
}

export function ecrHeaders(r: PipelineResult): Record<string, string> {
  return {
    'x-ecr-cci': String(r.metrics.CCI),
    'x-ecr-admissible': String(r.admissible),
    'x-ecr-fallback': String(r.stats.scoring.reason === 'fallback'),
    'x-ecr-candidates': String(r.candidates.length),
    'x-ecr-cache': r.stats.cacheResult,
  };
}

export function completionBody(meta: CompletionMeta, r: PipelineResult, audit: AuditLevel) {
  const ecr = auditOf(r, audit);
  return {
    id: meta.id,
    object: 'chat.completion' as const,
    created: meta.created,
    model: meta.model,
    choices: [
      {
        index: 0,
        message: { role: 'assistant' as const, content: r.response, refusal: null },
        logprobs: null,
        finish_reason: r.finishReason ?? 'stop',
      },
    ],
    usage: usageOf(r),
    ...(r.systemFingerprint !== undefined ? { system_fingerprint: r.systemFingerprint } : {}),
    ...(ecr ? { ecr } : {}),
  };
}

/** Splits the answer into content deltas of a few words each (whitespace kept, so they concatenate back). */
export function contentPieces(text: string, minChars = 24): string[] {
  const words = text.match(/\s*\S+\s*/g) ?? [];
  const out: string[] = [];
  let cur = '';
  for (const w of words) {
    cur += w;
    if (cur.length >= minChars) {
      out.push(cur);
      cur = '';
    }
  }
  if (cur) out.push(cur);
  if (out.join('') !== text) return text === '' ? [] : [text];
  return out;
}

/** Every chunk of the streamed answer, in order: role, content, finish_reason, usage (if asked), audit. */
export function completionChunks(meta: CompletionMeta, r: PipelineResult, audit: AuditLevel, includeUsage: boolean): unknown[] {
  const base = {
    id: meta.id,
    object: 'chat.completion.chunk' as const,
    created: meta.created,
    model: meta.model,
    ...(r.systemFingerprint !== undefined ? { system_fingerprint: r.systemFingerprint } : {}),
    ...(includeUsage ? { usage: null } : {}),
  };
  const choice = (delta: Record<string, unknown>, finish: string | null) => ({
    ...base,
    choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
  });
  const chunks: unknown[] = [choice({ role: 'assistant', content: '' }, null)];
  for (const piece of contentPieces(r.response)) chunks.push(choice({ content: piece }, null));
  chunks.push(choice({}, r.finishReason ?? 'stop'));
  if (includeUsage) chunks.push({ ...base, choices: [], usage: usageOf(r) });
  const ecr = auditOf(r, audit);
  if (ecr) chunks.push({ ...base, choices: [], ecr });
  return chunks;
}
