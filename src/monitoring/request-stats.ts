/**
 * Per-request statistics for the audit trace: LLM calls by kind, tokens, cache outcomes, time per
 * stage, achieved parallel speedup and a memory estimate. Recording a call here also feeds the
 * process-wide Prometheus metrics, so the two never disagree.
 */
import type { CallKind, CallObserver, CallRecord } from '../llm/provider.js';
import { ecrMetrics } from './process-metrics.js';

export interface CallCounts {
  /** HTTP requests, retries included. */
  requests: number;
  /** Requests that were retries. */
  retries: number;
  errors: number;
  /** Choices received (a batched request yields several). */
  choices: number;
}

export interface CacheCounts {
  /** Served from a cache: l1Hits + l2Hits. */
  hits: number;
  /** Computed by this request. */
  misses: number;
  /** Waited for a load in flight, in this process or (through Redis) in another instance. */
  joined: number;
  /** Served from the in-process tier. */
  l1Hits: number;
  /** Served from the shared Redis tier. */
  l2Hits: number;
}

export interface RequestStatsReport {
  calls: Record<CallKind, CallCounts>;
  /** Chat requests (generate + unroll), retries included. */
  llmCalls: number;
  tokens: { prompt: number; completion: number; reported: boolean };
  cache: Record<string, CacheCounts>;
  /** Wall-clock span of each stage in ms (stages overlap: unrolls start as candidates arrive). */
  stagesMs: Record<string, number>;
  wallMs: number;
  /** Sum of all LLM call latencies: the time the calls would take one after another. */
  sequentialEstimateMs: number;
  /** sequentialEstimateMs / wallMs. */
  parallelSpeedup: number;
  /** Approximate bytes held for this request: texts, logprobs, embeddings and the packed batch. */
  memoryEstimateBytes: number;
}

function reasonOf(r: CallRecord): string {
  if (r.status !== undefined) return `http_${r.status}`;
  if (r.error === 'cancelled') return 'cancelled';
  return r.error && /timed out/.test(r.error) ? 'timeout' : 'network';
}

export class RequestStats implements CallObserver {
  private readonly t0 = performance.now();
  private readonly calls: Record<CallKind, CallCounts> = {
    generate: { requests: 0, retries: 0, errors: 0, choices: 0 },
    unroll: { requests: 0, retries: 0, errors: 0, choices: 0 },
    embed: { requests: 0, retries: 0, errors: 0, choices: 0 },
  };
  private promptTokens = 0;
  private completionTokens = 0;
  private tokensReported = false;
  private latencySumMs = 0;
  private readonly cache: Record<string, CacheCounts> = {};
  private readonly stageSpans = new Map<string, { start: number; end: number }>();
  private memoryBytes = 0;
  private endMs?: number;

  onCall(r: CallRecord): void {
    const c = this.calls[r.kind];
    c.requests++;
    if (r.attempt > 0) c.retries++;
    this.latencySumMs += r.latencyMs;
    ecrMetrics.llmCalls.inc({ kind: r.kind });
    if (r.attempt > 0) ecrMetrics.llmRetries.inc({ kind: r.kind });
    ecrMetrics.llmCallDuration.observe({ kind: r.kind }, r.latencyMs / 1000);
    if (!r.ok) {
      c.errors++;
      ecrMetrics.llmCallErrors.inc({ kind: r.kind, reason: reasonOf(r) });
      return;
    }
    if (r.choices !== undefined && r.kind !== 'embed') {
      c.choices += r.choices;
      ecrMetrics.llmChoices.inc({ kind: r.kind }, r.choices);
    }
    if (r.usage) {
      if (r.usage.promptTokens !== undefined) {
        this.promptTokens += r.usage.promptTokens;
        this.tokensReported = true;
        ecrMetrics.llmTokens.inc({ type: 'prompt' }, r.usage.promptTokens);
      }
      if (r.usage.completionTokens !== undefined) {
        this.completionTokens += r.usage.completionTokens;
        this.tokensReported = true;
        ecrMetrics.llmTokens.inc({ type: 'completion' }, r.usage.completionTokens);
      }
    }
  }

  /** `hit` is an in-process hit, `l2-hit` one from Redis, `l2-joined` a wait for another instance's load. */
  onCache(cache: string, outcome: 'hit' | 'l2-hit' | 'miss' | 'joined' | 'l2-joined'): void {
    const c = (this.cache[cache] ??= { hits: 0, misses: 0, joined: 0, l1Hits: 0, l2Hits: 0 });
    if (outcome === 'hit') {
      c.hits++;
      c.l1Hits++;
    } else if (outcome === 'l2-hit') {
      c.hits++;
      c.l2Hits++;
    } else if (outcome === 'miss') c.misses++;
    else c.joined++;
  }

  /** Marks a stage as active from `start` to `end` (performance.now() ms); spans of one stage merge. */
  span(stage: string, start: number, end: number = performance.now()): void {
    const s = this.stageSpans.get(stage);
    if (!s) this.stageSpans.set(stage, { start, end });
    else {
      s.start = Math.min(s.start, start);
      s.end = Math.max(s.end, end);
    }
  }

  /** Runs `fn` and records its time under `stage`. */
  async time<T>(stage: string, fn: () => Promise<T>): Promise<T> {
    const start = performance.now();
    try {
      return await fn();
    } finally {
      this.span(stage, start);
    }
  }

  addMemory(bytes: number): void {
    this.memoryBytes += bytes;
  }

  finish(): void {
    this.endMs ??= performance.now();
  }

  report(): RequestStatsReport {
    const wallMs = (this.endMs ?? performance.now()) - this.t0;
    const stagesMs: Record<string, number> = {};
    for (const [k, s] of this.stageSpans) stagesMs[k] = s.end - s.start;
    stagesMs.total = wallMs;
    return {
      calls: structuredClone(this.calls),
      llmCalls: this.calls.generate.requests + this.calls.unroll.requests,
      tokens: { prompt: this.promptTokens, completion: this.completionTokens, reported: this.tokensReported },
      cache: structuredClone(this.cache),
      stagesMs,
      wallMs,
      sequentialEstimateMs: this.latencySumMs,
      parallelSpeedup: wallMs > 0 ? this.latencySumMs / wallMs : 0,
      memoryEstimateBytes: this.memoryBytes,
    };
  }
}
