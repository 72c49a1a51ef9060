/**
 * The ECR pipeline around the metrics: estimate risk and pick K, sample K candidates, unroll each
 * into H review steps, extract an evaluative vector per step, score all K at once with scoreBatch
 * and select. Candidate i's step h waits only for its own step h-1: there is no barrier across
 * candidates until scoring. LLM calls share one concurrency limit (`maxParallel`).
 */
import { createHash } from 'node:crypto';
import pLimit from 'p-limit';
import type { Batch } from '../core/batch.js';
import { toResolvedConfig, type EcrConfig, type ResolvedConfig } from '../core/config.js';
import { weightsObject } from '../engine/score-batch.js';
import { metricValuesAt, type MetricValues } from '../core/batch.js';
import type { BackendChoice } from '../backends/backend.js';
import type { BackendOptions } from '../backends/options.js';
import { EcrError } from '../core/errors.js';
import { scoreBatch } from '../engine/score-batch.js';
import type { SelectionReason } from '../core/select.js';
import {
  KeyedCache, NAMESPACE_RE, TieredCache, canonicalJson, choicesCodec, float32Codec, float64Codec, stepCodec, tupleKey,
  type CacheControl, type CacheStats, type RedisStore,
} from '../cache/index.js';
import { HashingEmbedder, ProviderEmbedder, cosine, type Embedder } from '../llm/embedder.js';
import { LlmCancelledError, LlmNoContentError } from '../llm/errors.js';
import type { CallObserver, ChatChoice, ChatMessage, Provider, SamplingParams, TokenLogprob } from '../llm/provider.js';
import { sampleChoices, type SampleOutcome, type Scheduler } from '../llm/sample-choices.js';
import { ecrMetrics } from '../monitoring/process-metrics.js';
import { RequestStats, type RequestStatsReport } from '../monitoring/request-stats.js';
import { EmbeddingRounds } from './embedding-rounds.js';
import { DeadlineExceededError, NoSurvivingCandidatesError, RequestCancelledError } from './errors.js';
import { LexicalRiskEstimator, kForRisk, type RiskEstimator } from './risk.js';
import {
  SIGNAL_COUNT as M, MarkerSafetyScorer, SIGNAL_NAMES, clamp01, lexicalConfidence, lexicalUncertainty, logprobConfidence, logprobUncertainty,
  policyRow, similarity01, type SafetyScorer,
} from './signals.js';
import { UNROLL_PROMPT_VERSION, conversationUnrollMessages, promptMessages, unrollMessages } from './unroll.js';

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

export interface PipelineOptions {
  provider: Provider;
  /** Default: the provider's embedding model when it has one, else a HashingEmbedder (no calls). */
  embedder?: Embedder;
  /** Largest K (default 4). */
  k?: number;
  /** Review steps per candidate, H (default 2; T = H + 1 must be in 2..16). */
  horizon?: number;
  /** Pick K from the prompt's risk (default true); never above `k`. */
  adaptiveK?: boolean;
  riskEstimator?: RiskEstimator;
  safety?: SafetyScorer;
  /** Most LLM calls in flight (default 16). */
  maxParallel?: number;
  /** Candidate sampling (default temperature 0.8). */
  sampling?: SamplingParams;
  /** Sampling of review steps (default: same as `sampling`). */
  unrollSampling?: SamplingParams;
  /** Alternatives per token to ask for (default 5; 0: do not ask for logprobs). */
  topLogprobs?: number;
  system?: string;
  config?: EcrConfig | ResolvedConfig;
  backend?: BackendChoice;
  /** Options of the backend instances that score (adapter, threads, ...); default: the defaults. */
  backendOptions?: BackendOptions;
  cache?: CacheOptions;
  /**
   * Share the caches, in-flight loads and concurrency limit of this pipeline (see `derive`): a
   * per-request variant with other K, H, sampling or scoring must not get caches of its own.
   */
  shareWith?: EcrPipeline;
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
    stage: 'generate' | 'unroll' | 'evaluate'; step?: number; code?: string; message: string;
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
  signals: { names: readonly string[]; logprobs: boolean; policy: boolean; policyWidth: number | null; expectedRealized: boolean; embedder: string; safety: string };
  scoring: { backend: string; tau: number; weights: ReturnType<typeof weightsObject>; reason: SelectionReason };
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

interface StepData { text: string; logprobs: TokenLogprob[] | null; finishReason?: string; systemFingerprint?: string }

type Failure = { stage: 'generate' | 'unroll' | 'evaluate'; step?: number; error: unknown };
type Trajectory =
  | { index: number; ok: true; steps: StepData[]; cached: boolean[]; vectors: Float64Array[]; embeddings: Float32Array[] }
  | { index: number; ok: false; text?: string; failure: Failure };

type CandidateOutcome = SampleOutcome | { ok: true; choice: ChatChoice; via: 'cache' | 'given' };

interface RequestContext {
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

function deferred<T>() {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => { resolve = r; });
  return { promise, resolve };
}

const TYPED_ARRAY_BYTES = 224;
/** A cache entry's own cost: its key (a sha256 hex string, tupleKey) and the LRU's slot for it. */
const CACHE_ENTRY_BYTES = 128;
const cachedBytes = (v: unknown) => approxBytes(v) + CACHE_ENTRY_BYTES;

/**
 * Approximate bytes of a cached value or request artefact, without walking every object: strings
 * at 2 bytes a character, typed arrays at their byte length plus V8's typed array, ArrayBuffer and
 * backing-store objects, a logprob entry at a fixed estimate. Measured on Node 20 (heap used plus
 * array buffers for 100,000 entries) a 5-number vector costs ~340 bytes with its key, 256 floats ~1,330.
 */
function approxBytes(v: unknown): number {
  if (v === undefined || v === null) return 0;
  if (typeof v === 'string') return 2 * v.length + 16;
  if (ArrayBuffer.isView(v)) return v.byteLength + TYPED_ARRAY_BYTES;
  if (Array.isArray(v)) {
    let s = 16;
    for (const x of v) s += approxBytes(x);
    return s;
  }
  if (typeof v === 'object' && 'text' in v) {
    const lp = (v as StepData).logprobs;
    let s = 64 + approxBytes((v as StepData).text);
    if (lp) for (const t of lp) s += 96 + 2 * t.token.length + t.top.length * 64;
    return s;
  }
  return 64;
}

export class EcrPipeline {
  readonly provider: Provider;
  readonly embedder: Embedder;
  readonly maxK: number;
  readonly horizon: number;
  readonly adaptiveK: boolean;
  readonly riskEstimator: RiskEstimator;
  readonly safety: SafetyScorer;
  readonly maxParallel: number;
  readonly sampling: SamplingParams;
  readonly unrollSampling: SamplingParams;
  readonly topLogprobs: number;
  readonly system?: string;
  readonly config: ResolvedConfig;
  readonly backend: BackendChoice;
  /** The in-process tier (L1) of each cache. */
  readonly caches: {
    candidates: KeyedCache<ChatChoice[]>;
    steps: KeyedCache<StepData>;
    embeddings: KeyedCache<Float32Array>;
    vectors: KeyedCache<Float64Array>;
  };
  /** Each cache with its shared tier (L2) behind it, when there is one. */
  readonly tiers: {
    candidates: TieredCache<ChatChoice[]>;
    steps: TieredCache<StepData>;
    embeddings: TieredCache<Float32Array>;
    vectors: TieredCache<Float64Array>;
  };
  private readonly candidateFlights: Map<string, Promise<CandidateOutcome>[]> = new Map();
  private readonly limit: ReturnType<typeof pLimit>;
  private readonly samplingKey: string;
  private readonly unrollSamplingKey: string;
  private readonly options: PipelineOptions;

  constructor(options: PipelineOptions) {
    this.options = options;
    this.provider = options.provider;
    const provider = options.provider;
    this.embedder = options.embedder
      ?? (provider.embed && (provider as { embeddingModel?: string }).embeddingModel
        ? new ProviderEmbedder(provider as Provider & { embed: NonNullable<Provider['embed']> }, (provider as { embeddingModel?: string }).embeddingModel!)
        : new HashingEmbedder());
    this.maxK = positiveInt('k', options.k ?? 4, 1);
    this.horizon = positiveInt('horizon', options.horizon ?? 2, 1);
    if (this.horizon > 15) throw new EcrError('ECR_PIPELINE_OPTION', `horizon must be at most 15 (T = H + 1 <= 16), got ${this.horizon}`);
    this.adaptiveK = options.adaptiveK ?? true;
    this.riskEstimator = options.riskEstimator ?? new LexicalRiskEstimator();
    this.safety = options.safety ?? new MarkerSafetyScorer();
    this.maxParallel = positiveInt('maxParallel', options.maxParallel ?? 16, 1);
    this.sampling = { temperature: 0.8, ...options.sampling };
    this.unrollSampling = options.unrollSampling ?? this.sampling;
    this.samplingKey = canonicalJson(this.sampling);
    this.unrollSamplingKey = canonicalJson(this.unrollSampling);
    this.topLogprobs = options.topLogprobs ?? 5;
    if (!Number.isInteger(this.topLogprobs) || this.topLogprobs < 0 || this.topLogprobs > 20) {
      throw new EcrError('ECR_PIPELINE_OPTION', `topLogprobs must be an integer in 0..20, got ${this.topLogprobs}`);
    }
    this.system = options.system;
    this.config = toResolvedConfig(options.config);
    this.backend = options.backend ?? 'auto';
    const shared = options.shareWith;
    if (shared) {
      this.limit = shared.limit;
      this.caches = shared.caches;
      this.tiers = shared.tiers;
      this.candidateFlights = shared.candidateFlights;
      return;
    }
    this.limit = pLimit(this.maxParallel);
    const c = options.cache ?? {};
    const bounds = { maxEntries: c.maxEntries, maxSize: c.maxBytes ?? 64 * 1024 * 1024, sizeOf: cachedBytes, ttlMs: c.ttlMs };
    this.caches = {
      candidates: new KeyedCache('candidates', bounds),
      steps: new KeyedCache('steps', bounds),
      embeddings: new KeyedCache('embeddings', bounds),
      vectors: new KeyedCache('vectors', bounds),
    };
    for (const cache of Object.values(this.caches)) {
      cache.observe((name, outcome) => {
        if (outcome === 'eviction') ecrMetrics.cacheEvictions.inc({ cache: name });
        else ecrMetrics.cacheLookups.inc({ cache: name, tier: 'l1', outcome });
      });
    }
    const store = c.redis;
    // Redis holds what costs more to compute than a round trip to it: the chat calls, embeddings
    // from a remote embedder, and vectors when the safety scorer is remote (given its embeddings,
    // the rest of a vector is microseconds of arithmetic). The built-in hashing embedder takes
    // microseconds too; a Redis read of its results would add a serial round trip to every
    // request and fill Redis for nothing.
    // Locks only where a miss costs a chat call: an embedding miss joins its step round's batch,
    // which must not wait for another instance.
    this.tiers = {
      candidates: new TieredCache('candidates', this.caches.candidates, store ? { store, codec: choicesCodec, lock: true } : null),
      steps: new TieredCache('steps', this.caches.steps, store ? { store, codec: stepCodec, lock: true } : null),
      embeddings: new TieredCache('embeddings', this.caches.embeddings, store && this.embedder.remote ? { store, codec: float32Codec, lock: false } : null),
      vectors: new TieredCache('vectors', this.caches.vectors, store && this.safety.remote === true ? { store, codec: float64Codec, lock: false } : null),
    };
  }

  /**
   * A pipeline with some options changed (another provider, K, H, sampling, config) that shares
   * this one's caches, in-flight loads and concurrency limit; cheap enough to make per request.
   */
  derive(overrides: Partial<Omit<PipelineOptions, 'shareWith' | 'cache'>>): EcrPipeline {
    const root = this.options.shareWith ?? this;
    return new EcrPipeline({ ...this.options, ...overrides, shareWith: root });
  }

  /** True when repeated sampling gives the same candidates, the only case they may be cached. */
  get deterministicSampling(): boolean {
    return this.sampling.seed !== undefined || this.sampling.temperature === 0;
  }

  cacheStats(): CacheStats[] {
    return Object.values(this.caches).map((c) => c.stats());
  }

  async run(prompt: string, options: RunOptions = {}): Promise<PipelineResult> {
    if (typeof prompt !== 'string' || prompt.trim() === '') throw new EcrError('ECR_PIPELINE_INPUT', 'the prompt is empty');
    const { deadlineMs } = options;
    if (deadlineMs !== undefined && !(typeof deadlineMs === 'number' && Number.isFinite(deadlineMs) && deadlineMs > 0)) {
      throw new EcrError('ECR_PIPELINE_OPTION', `deadlineMs must be a positive number of milliseconds, got ${String(deadlineMs)}`);
    }
    checkCacheControl(options.cache);
    const deadline = deadlineMs !== undefined ? AbortSignal.timeout(deadlineMs) : undefined;
    const signal = deadline && options.signal ? AbortSignal.any([options.signal, deadline]) : deadline ?? options.signal;
    const stats = new RequestStats();
    const requestStart = performance.now();
    try {
      const result = await this.runInner(prompt, { ...options, signal }, stats, () => {
        // The caller's own cancellation wins when both have fired.
        if (deadline?.aborted && !options.signal?.aborted) return new DeadlineExceededError(deadlineMs!, { cause: deadline.reason });
        return new RequestCancelledError({ cause: signal!.reason });
      });
      ecrMetrics.requests.inc({ outcome: 'ok' });
      return result;
    } catch (err) {
      ecrMetrics.requests.inc({
        outcome: err instanceof NoSurvivingCandidatesError ? 'no_survivors' : err instanceof DeadlineExceededError ? 'deadline' : err instanceof RequestCancelledError ? 'cancelled' : 'error',
      });
      throw err;
    } finally {
      stats.finish();
      ecrMetrics.requestDuration.observe((performance.now() - requestStart) / 1000);
      const r = stats.report();
      if (r.sequentialEstimateMs > 0) ecrMetrics.parallelSpeedup.observe(r.parallelSpeedup);
    }
  }

  private async runInner(prompt: string, options: RunOptions, stats: RequestStats, abortError: () => EcrError): Promise<PipelineResult> {
    const signal = options.signal;
    const tRisk = performance.now();
    const risk = this.adaptiveK ? clamp01(await this.riskEstimator.estimate(prompt)) : null;
    stats.span('risk', tRisk);
    const k = risk === null ? this.maxK : kForRisk(risk, this.maxK);

    const contextText = options.context ? `${prompt}\n\n${options.context}` : prompt;
    const ctx: RequestContext = {
      prompt, conversation: options.messages, contextText, stats, signal, cache: options.cache ?? {},
      observer: options.observer ? { onCall: (r) => { stats.onCall(r); options.observer!.onCall(r); } } : stats,
      schedule: (fn) => this.limit(fn),
      contextEmbedding: Promise.resolve(new Float32Array(0)),
    };
    if (this.embedder.remote) {
      // Given candidates (selectBest) take part in the rounds in place of the K sampled ones.
      const participants = options.candidates ? options.candidates.length : k;
      ctx.rounds = new EmbeddingRounds(participants, this.horizon, (texts) => ctx.schedule(() => this.embedder.embed(texts, { signal, observer: ctx.observer })));
    }
    // The context goes out with the candidates' step 0 (round 0); no vector needs it earlier.
    ctx.contextEmbedding = this.embed(ctx, contextText, 0, false);
    ctx.contextEmbedding.catch(() => {}); // awaited by every trajectory; a rejection is reported there

    const candidates = options.candidates
      ? options.candidates.map((text) => Promise.resolve<CandidateOutcome>({ ok: true, choice: { text, logprobs: null }, via: 'given' }))
      : this.generate(ctx, k);
    const trajectories = await Promise.all(candidates.map((c, i) => this.trajectory(ctx, i, c)));
    if (signal?.aborted) throw abortError();

    const survivors = trajectories.filter((t): t is Extract<Trajectory, { ok: true }> => t.ok);
    const failed = trajectories.filter((t): t is Extract<Trajectory, { ok: false }> => !t.ok);
    ecrMetrics.candidates.inc({ status: 'scored' }, survivors.length);
    if (failed.length) ecrMetrics.candidates.inc({ status: 'failed' }, failed.length);
    if (survivors.length === 0) {
      throw new NoSurvivingCandidatesError(failed.map((f) => ({ index: f.index, stage: f.failure.stage, step: f.failure.step, message: errorMessage(f.failure.error) })), failed.map((f) => f.failure.error));
    }

    const tScore = performance.now();
    const { batch, signals } = this.pack(survivors);
    stats.addMemory(approxBytes(batch.steps) + approxBytes(batch.embeddings) + approxBytes(batch.policy) + approxBytes(batch.expected) * 2);
    // Trusted: E is clamped to [0, 1] by construction, policy rows are exp() of finite numbers, and
    // embeddings are checked in pack(); validateBatch would re-walk every embedding value.
    const scored = await scoreBatch(batch, this.config, { backend: this.backend, backendOptions: this.options.backendOptions, ids: survivors.map((s) => `c${s.index}`), trusted: true });
    const audit = scored.audit(0);
    stats.span('score', tScore);

    const reports: CandidateReport[] = new Array(trajectories.length);
    for (const f of failed) {
      reports[f.index] = {
        index: f.index, status: 'failed', text: f.text, selected: false,
        error: {
          stage: f.failure.stage, step: f.failure.step, code: (f.failure.error as { code?: string })?.code, message: errorMessage(f.failure.error),
          ...(f.failure.error instanceof LlmNoContentError && f.failure.error.refusal !== undefined ? { refusal: f.failure.error.refusal } : {}),
        },
      };
    }
    survivors.forEach((s, row) => {
      const a = audit.candidates[row];
      reports[s.index] = {
        index: s.index, status: 'scored', text: s.steps[0].text, selected: row === audit.selectedIndex,
        steps: s.steps.map((st, t) => ({ text: st.text, E: Array.from(s.vectors[t]), logprobs: st.logprobs !== null, cached: s.cached[t] })),
        metrics: metricValuesAt(scored.metrics, row),
        admissible: a.admissible,
      };
    });
    const winner = survivors[audit.selectedIndex];
    const winnerAudit = audit.candidates[audit.selectedIndex];
    recordSelection(reports[winner.index].metrics!.CCI, audit.reason, audit.candidates.filter((c) => !c.admissible).length, failed.length);
    stats.finish();
    const report = stats.report();
    return {
      response: winner.steps[0].text,
      selectedIndex: winner.index,
      admissible: winnerAudit.admissible,
      metrics: reports[winner.index].metrics!,
      candidates: reports,
      stats: {
        ...report,
        cacheResult: cacheResultOf(report.cache, !options.candidates && !this.deterministicSampling),
        k: { max: this.maxK, used: k, adaptive: this.adaptiveK, risk, estimator: this.adaptiveK ? this.riskEstimator.id : null },
        horizon: this.horizon,
        signals: { names: SIGNAL_NAMES, ...signals, embedder: this.embedder.id, safety: this.safety.id },
        scoring: { backend: scored.backend, tau: audit.tau, weights: audit.weights, reason: audit.reason },
        survivors: survivors.length,
        failed: failed.length,
      },
      ...(winner.steps[0].finishReason !== undefined ? { finishReason: winner.steps[0].finishReason } : {}),
      ...(winner.steps[0].systemFingerprint !== undefined ? { systemFingerprint: winner.steps[0].systemFingerprint } : {}),
    };
  }

  /** One promise per candidate, each settling as soon as that candidate is available. */
  private generate(ctx: RequestContext, k: number): Promise<CandidateOutcome>[] {
    const messages = ctx.conversation ?? promptMessages(ctx.prompt, this.system);
    const start = performance.now();
    const slots = Array.from({ length: k }, () => deferred<CandidateOutcome>());
    const promises = slots.map((s) => s.promise);
    const key = this.deterministicSampling ? tupleKey('candidates', this.provider.id, JSON.stringify(messages), k, this.samplingKey, this.topLogprobs) : '';
    const control = ctx.cache;
    const tier = this.tiers.candidates;
    const flightKey = this.deterministicSampling ? tier.l1Key(key, control) : '';
    const launch = () => sampleChoices(this.provider, { messages, k, sampling: this.sampling, topLogprobs: this.topLogprobs }, {
      signal: ctx.signal, observer: ctx.observer, schedule: ctx.schedule,
      onSample: (i, o) => {
        ctx.stats.span('generate', start);
        // A cancelled flight must not be joined by later requests.
        if (!o.ok && o.error instanceof LlmCancelledError && this.candidateFlights.get(flightKey) === promises) this.candidateFlights.delete(flightKey);
        slots[i].resolve(o);
      },
    }).catch((error: unknown) => {
      // sampleChoices reports failures per sample; this only guards against a fault in it.
      const outcomes = slots.map(() => ({ ok: false as const, error, via: 'single' as const }));
      slots.forEach((s, i) => s.resolve(outcomes[i]));
      return outcomes;
    });
    if (!this.deterministicSampling) {
      void launch();
      return promises;
    }
    const cached = control.noCache ? undefined : this.caches.candidates.peek(flightKey);
    if (cached) {
      this.caches.candidates.record('hit'); ctx.stats.onCache('candidates', 'hit');
      return cached.map((choice) => Promise.resolve({ ok: true as const, choice, via: 'cache' as const }));
    }
    const flight = control.noCache ? undefined : this.candidateFlights.get(flightKey);
    if (flight) {
      this.caches.candidates.record('joined'); ctx.stats.onCache('candidates', 'joined');
      // If the request that owns the flight is cancelled, this one (not cancelled) generates anew.
      let relaunch: Promise<CandidateOutcome>[] | undefined;
      return flight.map((p, i) => p.then((o) => {
        if (!o.ok && o.error instanceof LlmCancelledError && !ctx.signal?.aborted) return (relaunch ??= this.generate(ctx, k))[i];
        return o;
      }));
    }
    if (!control.noCache) this.caches.candidates.record('miss');
    this.candidateFlights.set(flightKey, promises);
    void (async () => {
      // The slots must settle whatever happens: a lookup that fails (a bug, not Redis: Redis
      // failures are misses) generates as if nothing were cached.
      const found = await tier.lookup(key, control, ctx.signal).catch(() => ({ hit: false as const, lease: null }));
      if (found.hit && found.value.length === k) {
        ctx.stats.onCache('candidates', found.outcome);
        tier.fill(key, found.value, control, null); // L1 only: the value came from L2
        found.value.forEach((choice, i) => slots[i].resolve({ ok: true, choice, via: 'cache' }));
        return;
      }
      const lease = found.hit ? null : found.lease;
      ctx.stats.onCache('candidates', 'miss');
      const outcomes = await launch();
      // Only a complete set is cached: a failed sample must be retried by the next request.
      if (outcomes.every((o) => o.ok)) tier.fill(key, outcomes.map((o) => (o as { choice: ChatChoice }).choice), control, lease);
      else tier.abandon(lease);
    })().finally(() => { if (this.candidateFlights.get(flightKey) === promises) this.candidateFlights.delete(flightKey); });
    return promises;
  }

  /**
   * Unrolls candidate i step by step. Each step's evaluative vector is computed as soon as the
   * step and its neighbour exist (vector 0 needs step 1), so evaluation overlaps the wait for the
   * next step instead of piling up at the end. Never rejects.
   */
  private async trajectory(ctx: RequestContext, index: number, candidate: Promise<CandidateOutcome>): Promise<Trajectory> {
    // The embedding round this candidate takes part in next; on any exit it leaves the rest.
    const progress = { round: 0 };
    try {
      return await this.unrollAndEvaluate(ctx, candidate, index, progress);
    } finally {
      ctx.rounds?.leave(progress.round);
    }
  }

  private async unrollAndEvaluate(ctx: RequestContext, candidate: Promise<CandidateOutcome>, index: number, progress: { round: number }): Promise<Trajectory> {
    const outcome = await candidate;
    if (!outcome.ok) return { index, ok: false, failure: { stage: 'generate', error: outcome.error } };
    const first: StepData = { text: outcome.choice.text, logprobs: outcome.choice.logprobs, finishReason: outcome.choice.finishReason, systemFingerprint: outcome.choice.systemFingerprint };
    const steps: StepData[] = [first];
    const cached: boolean[] = [outcome.via === 'cache'];
    const embeddings: Promise<Float32Array>[] = [];
    const vectors: Promise<Float64Array>[] = [];
    const quiet = (p: Promise<unknown>) => { p.catch(() => {}); };
    const unrollStart = performance.now();
    // Step h+1 is requested before step h is embedded and evaluated: with many candidates in
    // flight the event loop is busy, and local work done first would delay every next call.
    // A candidate just generated (not from a cache, not given) has no review steps in the shared
    // tier: its steps skip the Redis lookup, one serial round trip per step on every cold request.
    const inherited = outcome.via === 'cache' || outcome.via === 'given';
    const request = (h: number) => {
      const hit = { value: true };
      return { hit, step: this.step(ctx, first.text, steps[h - 1].text, h, () => { hit.value = false; }, inherited) };
    };
    let next = this.horizon >= 1 ? request(1) : null;
    if (next) quiet(next.step);
    embeddings.push(this.embed(ctx, first.text, 0));
    progress.round = 1;
    quiet(embeddings[0]);
    for (let h = 1; h <= this.horizon; h++) {
      const pending = next!;
      try {
        steps.push(await pending.step);
        cached.push(pending.hit.value);
      } catch (error) {
        return { index, ok: false, text: first.text, failure: { stage: 'unroll', step: h, error } };
      }
      if (h < this.horizon) { next = request(h + 1); quiet(next.step); }
      const e = this.embed(ctx, steps[h].text, h);
      progress.round = h + 1;
      quiet(e);
      embeddings.push(e);
      if (h === 1) vectors.push(this.vector(ctx, steps, embeddings, 0));
      vectors.push(this.vector(ctx, steps, embeddings, h));
      vectors.forEach(quiet);
    }
    ctx.stats.span('unroll', unrollStart);
    const evalStart = performance.now();
    try {
      const [embs, vecs] = await Promise.all([Promise.all(embeddings), Promise.all(vectors)]);
      ctx.stats.span('evaluate', evalStart);
      ctx.stats.addMemory(approxBytes(steps) + approxBytes(embs) + approxBytes(vecs));
      return { index, ok: true, steps, cached, vectors: vecs, embeddings: embs };
    } catch (error) {
      return { index, ok: false, text: first.text, failure: { stage: 'evaluate', error } };
    }
  }

  private step(ctx: RequestContext, candidateText: string, previous: string, h: number, onMiss: () => void, readShared: boolean): Promise<StepData> {
    const messages = ctx.conversation ? conversationUnrollMessages(ctx.conversation, previous) : unrollMessages(ctx.prompt, previous, this.system);
    // Everything that changes the review: the conversation (prompt, system, previous step, instruction
    // version), the candidate it descends from, the step index, model, base URL and sampling.
    const key = tupleKey('step', UNROLL_PROMPT_VERSION, this.provider.id, JSON.stringify(messages), candidateText, h, this.unrollSamplingKey, this.topLogprobs);
    const load = () => this.tiers.steps.getOrCompute(key, async () => {
      const r = await ctx.schedule(() => this.provider.chat({ kind: 'unroll', messages, n: 1, sampling: this.unrollSampling, topLogprobs: this.topLogprobs }, { signal: ctx.signal, observer: ctx.observer }));
      const choice = r.choices[0];
      if (choice.text === null) throw choice.error; // a refused review fails this candidate at this step
      return { text: choice.text, logprobs: choice.logprobs };
    }, ctx.cache, (o) => { ctx.stats.onCache('steps', o); if (o !== 'hit' && o !== 'l2-hit') onMiss(); }, ctx.signal, readShared);
    return unlessForeignCancel(load, ctx.signal);
  }

  /**
   * The embedding of `text`, step `round` of a candidate (`participant`) or the context. A miss of
   * a remote embedder is queued into its round's batch. The candidate arrives at its round once the
   * lookup is decided: right after queueing a miss, or when a cache (L2 after its round trip) or a
   * load in flight serves the text, so the round is never sent before a miss is queued.
   */
  private embed(ctx: RequestContext, text: string, round: number, participant = true): Promise<Float32Array> {
    const key = tupleKey('embedding', this.embedder.id, text);
    const rounds = ctx.rounds;
    let arrived = !participant || !rounds;
    const arrive = () => { if (!arrived) { arrived = true; rounds!.arrive(round); } };
    const p = unlessForeignCancel(() => this.tiers.embeddings.getOrCompute(key, async () => {
      if (rounds) { const queued = rounds.enqueue(round, text); arrive(); return queued; }
      const [v] = await this.embedder.embed([text]);
      return v;
    }, ctx.cache, (o) => { ctx.stats.onCache('embeddings', o); if (o !== 'miss') arrive(); }, ctx.signal), ctx.signal);
    // A lookup that fails before deciding (it cannot: L2 failures are misses) must not hold the round.
    p.catch(() => {}).finally(arrive);
    return p;
  }

  private vector(ctx: RequestContext, steps: StepData[], embeddings: Promise<Float32Array>[], t: number): Promise<Float64Array> {
    const step = steps[t];
    // Step 0 has no predecessor; it shares the 0-1 pair's consistency (see signals.ts).
    const neighbour = t === 0 ? 1 : t - 1;
    const key = tupleKey('vector', 'signals-v1', this.embedder.id, this.safety.id, ctx.contextText, step.text, steps[neighbour].text, step.logprobs ? logprobsDigest(step.logprobs) : null);
    return this.tiers.vectors.getOrCompute(key, async () => {
      const [self, other, contextEmb] = await Promise.all([embeddings[t], embeddings[neighbour], ctx.contextEmbedding]);
      const lp = step.logprobs;
      const v = new Float64Array(M);
      v[0] = lp ? logprobConfidence(lp) : lexicalConfidence(step.text);
      v[1] = similarity01(cosine(self, contextEmb));
      v[2] = lp ? logprobUncertainty(lp) : lexicalUncertainty(step.text);
      v[3] = clamp01(await this.safety.score(step.text, ctx.prompt));
      v[4] = similarity01(cosine(self, other));
      return v;
    }, ctx.cache, (o) => ctx.stats.onCache('vectors', o), ctx.signal);
  }

  /**
   * Packs survivors into one Batch. Policy rows (A = widest top-logprob list returned, at most the
   * number asked for) and expected/realized (expected = mean token probability, realized = the
   * step's consistency with its neighbour) are included only when every step of every survivor has
   * logprobs; otherwise PD and ES fall back to E as the spec prescribes.
   */
  private pack(survivors: Array<Extract<Trajectory, { ok: true }>>): { batch: Batch; signals: { logprobs: boolean; policy: boolean; policyWidth: number | null; expectedRealized: boolean } } {
    const n = survivors.length, t = this.horizon + 1;
    const steps = new Float64Array(n * t * M);
    const d = survivors[0].embeddings[0].length;
    const embeddings = d > 0 ? new Float64Array(n * t * d) : undefined;
    const allLogprobs = survivors.every((s) => s.steps.every((st) => st.logprobs !== null));
    let a = 0;
    if (allLogprobs) for (const s of survivors) for (const st of s.steps) for (const tok of st.logprobs!) a = Math.max(a, tok.top.length);
    a = Math.min(a, this.topLogprobs);
    const policy = allLogprobs && a >= 2 ? new Float64Array(n * t * a) : undefined;
    const expected = allLogprobs ? new Float64Array(n * t) : undefined;
    const realized = allLogprobs ? new Float64Array(n * t) : undefined;
    survivors.forEach((s, i) => {
      for (let k = 0; k < t; k++) {
        steps.set(s.vectors[k], (i * t + k) * M);
        if (embeddings) {
          const e = s.embeddings[k];
          if (e.length !== d) throw new EcrError('ECR_EMBEDDING_SHAPE', `embedding width changed within one request (${e.length} vs ${d})`);
          for (let j = 0; j < d; j++) {
            // A provider could send NaN or Infinity; the batch is scored as trusted, so check here.
            if (!Number.isFinite(e[j])) throw new EcrError('ECR_EMBEDDING_VALUE', `candidate ${s.index} step ${k}: embedding component ${j} is ${e[j]}`);
          }
          embeddings.set(e, (i * t + k) * d);
        }
        if (policy) policy.set(policyRow(s.steps[k].logprobs!, a), (i * t + k) * a);
        if (expected && realized) {
          expected[i * t + k] = s.vectors[k][0];
          realized[i * t + k] = s.vectors[k][4];
        }
      }
    });
    const batch: Batch = {
      n, t, m: M, steps,
      ...(embeddings ? { d, embeddings } : {}),
      ...(policy ? { a, policy } : {}),
      ...(expected ? { expected, realized } : {}),
    };
    return { batch, signals: { logprobs: allLogprobs, policy: policy !== undefined, policyWidth: policy ? a : null, expectedRealized: expected !== undefined } };
  }
}

function cacheResultOf(cache: Record<string, { hits: number; misses: number; joined: number }>, sampledUncached: boolean): CacheResult {
  let served = 0, computed = sampledUncached ? 1 : 0;
  for (const name of ['candidates', 'steps']) {
    const c = cache[name];
    if (!c) continue;
    served += c.hits + c.joined;
    computed += c.misses;
  }
  if (computed === 0) return served > 0 ? 'hit' : 'miss';
  return served === 0 ? 'miss' : 'partial';
}

function checkCacheControl(c: CacheControl | undefined): void {
  if (c === undefined) return;
  const bad = (field: string, what: string, v: unknown) => new EcrError('ECR_PIPELINE_OPTION', `cache.${field} must be ${what}, got ${JSON.stringify(v)}`);
  if (c === null || typeof c !== 'object') throw new EcrError('ECR_PIPELINE_OPTION', `cache must be an object, got ${JSON.stringify(c)}`);
  if (c.ttlSeconds !== undefined && !(Number.isInteger(c.ttlSeconds) && c.ttlSeconds >= 1)) throw bad('ttlSeconds', 'an integer number of seconds >= 1', c.ttlSeconds);
  if (c.namespace !== undefined && !(typeof c.namespace === 'string' && NAMESPACE_RE.test(c.namespace))) throw bad('namespace', '1 to 64 letters, digits, "_", "-" or "."', c.namespace);
  for (const f of ['noCache', 'noStore'] as const) if (c[f] !== undefined && typeof c[f] !== 'boolean') throw bad(f, 'true or false', c[f]);
}

/** Feeds the selection metrics: the selected CCI, admitted or fallback, and the excluded candidates. */
function recordSelection(cci: number, reason: SelectionReason, inadmissible: number, failed: number): void {
  ecrMetrics.selectedCci.observe(cci);
  ecrMetrics.selections.inc({ reason: reason === 'fallback' ? 'fallback' : 'admitted' });
  if (inadmissible) ecrMetrics.excludedCandidates.inc({ reason: 'inadmissible' }, inadmissible);
  if (failed) ecrMetrics.excludedCandidates.inc({ reason: 'failed' }, failed);
}

/** SHA-256 of the tokens and numbers of a logprobs list; far cheaper than canonical JSON of the objects. */
function logprobsDigest(lp: readonly TokenLogprob[]): string {
  let count = 0;
  for (const t of lp) count += 2 + t.top.length;
  const nums = new Float64Array(count);
  const tokens: string[] = [];
  let k = 0;
  for (const t of lp) {
    nums[k++] = t.logprob;
    nums[k++] = t.top.length;
    tokens.push(t.token);
    for (const x of t.top) { nums[k++] = x.logprob; tokens.push(x.token); }
  }
  return createHash('sha256').update(new Uint8Array(nums.buffer)).update(JSON.stringify(tokens)).digest('hex');
}

/**
 * Runs a cached, single-flight load; when it fails because another request that owned the
 * in-flight load was cancelled (not this one), loads again instead of inheriting that cancellation.
 */
async function unlessForeignCancel<T>(load: () => Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  try {
    return await load();
  } catch (err) {
    if (err instanceof LlmCancelledError && !signal?.aborted) return load();
    throw err;
  }
}

function positiveInt(name: string, v: number, min: number): number {
  if (!Number.isInteger(v) || v < min) throw new EcrError('ECR_PIPELINE_OPTION', `${name} must be an integer >= ${min}, got ${v}`);
  return v;
}

function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}


