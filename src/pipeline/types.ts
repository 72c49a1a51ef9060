/** The pipeline's public option and result types (PipelineOptions sits with EcrPipeline, which it names). */
import type { MetricValues } from '../core/batch.js';
import type { SelectionReason } from '../core/select.js';
import type { NamedWeights } from '../engine/score-batch.js';
import type { CacheControl } from '../cache/tiered-cache.js';
import type { RedisStore } from '../cache/redis-store.js';
import type { CallObserver, ChatMessage } from '../llm/provider.js';
import type { RequestStatsReport } from '../monitoring/request-stats.js';

export interface CacheOptions {
  /** Most entries per cache (default: bounded by bytes only). */
  maxEntries?: number;
  /** Approximate byte bound per cache (default 64 MiB). */
  maxBytes?: number;
  /** Time to live in ms (default: none). */
  ttlMs?: number;
  /**
   * The shared tier behind these in-process caches (L2): entries are read from and written to
   * Redis, and a deterministic computation is done once across every instance sharing it. The
   * caller opens and closes the store.
   */
  redis?: RedisStore;
}

export interface RunOptions {
  signal?: AbortSignal;
  /**
   * Overall limit for the request in ms: at expiry every LLM call in flight is cancelled and the
   * request fails with DeadlineExceededError (the caller's `signal` still cancels earlier).
   */
  deadlineMs?: number;
  /** Sees every LLM call attempt of this request as it ends (e.g. for a progress note). */
  observer?: CallObserver;
  /** Retrieval context (documents) the answer should agree with; default: the prompt alone. */
  context?: string;
  /**
   * The conversation to continue (system, user and assistant turns), in place of the single user
   * turn built from the prompt: candidates answer it, and review steps append to it. `prompt` is
   * then what risk, safety and retrieval agreement are judged against (the last user turn).
   */
  messages?: ChatMessage[];
  /** Candidate answers to unroll and score instead of sampling them (the drop-in `selectBest`). */
  candidates?: string[];
  /** This request's use of the caches: TTL and namespace of what it writes, no-cache, no-store. */
  cache?: CacheControl;
}

export interface StepReport {
  text: string;
  /** The evaluative vector, named components in SIGNAL_NAMES order. */
  E: number[];
  logprobs: boolean;
  cached: boolean;
}

export interface CandidateReport {
  index: number;
  status: 'scored' | 'failed';
  /** The candidate answer (step 0); absent when generation failed. */
  text?: string;
  steps?: StepReport[];
  metrics?: MetricValues;
  admissible?: boolean;
  selected: boolean;
  error?: {
    stage: 'generate' | 'unroll' | 'evaluate';
    step?: number;
    code?: string;
    message: string;
    /** The model's refusal text, when the server sent the choice as a refusal. */
    refusal?: string;
  };
}

/**
 * How much of a request the caches served, judged on its candidates and review steps (the LLM
 * calls): `hit` none was computed by this request, `miss` none came from a cache (or from a load
 * in flight), `partial` some of each.
 */
export type CacheResult = 'hit' | 'partial' | 'miss';

export interface PipelineStats extends RequestStatsReport {
  cacheResult: CacheResult;
  k: { max: number; used: number; adaptive: boolean; risk: number | null; estimator: string | null };
  horizon: number;
  signals: {
    names: readonly string[];
    logprobs: boolean;
    policy: boolean;
    policyWidth: number | null;
    expectedRealized: boolean;
    embedder: string;
    safety: string;
  };
  scoring: { backend: string; tau: number; weights: NamedWeights; reason: SelectionReason };
  survivors: number;
  failed: number;
}

export interface PipelineResult {
  /** The selected candidate's answer (its step 0). */
  response: string;
  selectedIndex: number;
  admissible: boolean;
  metrics: MetricValues;
  candidates: CandidateReport[];
  stats: PipelineStats;
  /** The upstream's finish_reason for the selected answer, when it gave one. */
  finishReason?: string;
  /** The upstream's system_fingerprint for the selected answer, when it gave one. */
  systemFingerprint?: string;
}
