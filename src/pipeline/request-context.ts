/** What the stages of one request (sampling, unrolling, embedding, evaluation) work with. */
import type pLimit from 'p-limit';
import type { CacheControl } from '../cache/tiered-cache.js';
import type { Embedder } from '../llm/embedder.js';
import type { CallObserver, ChatMessage, Provider, SamplingParams } from '../llm/provider.js';
import type { Scheduler } from '../llm/sample-choices.js';
import type { RequestStats } from '../monitoring/request-stats.js';
import type { CacheTiers, L1Caches } from './caches.js';
import type { EmbeddingRounds } from './embedding-rounds.js';
import type { SafetyScorer } from './signals.js';
import type { CandidateOutcome } from './trajectory-types.js';

/** What a pipeline shares with every pipeline derived from it (see EcrPipeline.derive). */
export interface SharedState {
  readonly limit: ReturnType<typeof pLimit>;
  readonly caches: L1Caches;
  readonly tiers: CacheTiers;
  /** Candidate sets being sampled, by L1 key: a request with the same key joins them. */
  readonly candidateFlights: Map<string, Promise<CandidateOutcome>[]>;
}

/** The settings of the pipeline a request runs on, as its stages read them. */
export interface StageSettings {
  readonly provider: Provider;
  readonly embedder: Embedder;
  readonly safety: SafetyScorer;
  readonly system?: string;
  readonly horizon: number;
  readonly topLogprobs: number;
  readonly sampling: SamplingParams;
  /** canonicalJson(sampling), once per pipeline rather than once per cache key. */
  readonly samplingKey: string;
  readonly unrollSampling: SamplingParams;
  readonly unrollSamplingKey: string;
  readonly shared: SharedState;
}

export interface RequestContext {
  settings: StageSettings;
  prompt: string;
  /** RunOptions.messages: the conversation candidates continue. */
  conversation?: ChatMessage[];
  contextText: string;
  contextEmbedding: Promise<Float32Array>;
  stats: RequestStats;
  cache: CacheControl;
  /** The request's stats, and the caller's observer when it gave one. */
  observer: CallObserver;
  signal?: AbortSignal;
  schedule: Scheduler;
  /** Batches remote embeddings by step round; absent for a local embedder (nothing to batch). */
  rounds?: EmbeddingRounds;
}
