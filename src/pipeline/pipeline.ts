/**
 * The ECR pipeline around the metrics: estimate risk and pick K, sample K candidates, unroll each
 * into H review steps, extract an evaluative vector per step, score all K at once with scoreBatch
 * and select. Candidate i's step h waits only for its own step h-1: there is no barrier across
 * candidates until scoring. LLM calls share one concurrency limit (`maxParallel`).
 */
import pLimit from 'p-limit';
import { toResolvedConfig, type EcrConfig, type ResolvedConfig } from '../core/config.js';
import { metricValuesAt } from '../core/batch.js';
import type { BackendChoice } from '../backends/backend.js';
import type { BackendOptions } from '../backends/options.js';
import { EcrError } from '../core/errors.js';
import { scoreBatch } from '../engine/score-batch.js';
import type { SelectionReason } from '../core/select.js';
import { canonicalJson } from '../cache/canonical-json.js';
import { type CacheStats } from '../cache/keyed-cache.js';
import { HashingEmbedder, ProviderEmbedder, type Embedder } from '../llm/embedder.js';
import { LlmNoContentError } from '../llm/errors.js';
import type { Provider, SamplingParams } from '../llm/provider.js';
import { ecrMetrics } from '../monitoring/process-metrics.js';
import { RequestStats } from '../monitoring/request-stats.js';
import { approxBytes } from './byte-estimates.js';
import { cacheResultOf, checkCacheControl, createCaches, type CacheTiers, type L1Caches } from './caches.js';
import { embed } from './embedding.js';
import { EmbeddingRounds } from './embedding-rounds.js';
import { DeadlineExceededError, NoSurvivingCandidatesError, RequestCancelledError } from './errors.js';
import { pack } from './packing.js';
import type { RequestContext, SharedState, StageSettings } from './request-context.js';
import { LexicalRiskEstimator, kForRisk, type RiskEstimator } from './risk.js';
import { generate, isDeterministic } from './sampling.js';
import { MarkerSafetyScorer, SIGNAL_NAMES, clamp01, type SafetyScorer } from './signals.js';
import { trajectory } from './trajectory.js';
import type { CandidateOutcome, Survivor, Trajectory } from './trajectory-types.js';
import type { CacheOptions, CandidateReport, PipelineResult, RunOptions } from './types.js';

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
  /** The in-process tier (L1) of each cache. @internal */
  readonly caches: L1Caches;
  /** Each cache with its shared tier (L2) behind it, when there is one. @internal */
  readonly tiers: CacheTiers;
  private readonly shared: SharedState;
  /** What the stages of a request read (src/pipeline/request-context.ts). */
  private readonly settings: StageSettings;
  private readonly options: PipelineOptions;

  constructor(options: PipelineOptions) {
    this.options = options;
    this.provider = options.provider;
    const provider = options.provider;
    this.embedder =
      options.embedder ??
      (provider.embed && (provider as { embeddingModel?: string }).embeddingModel
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
    const samplingKey = canonicalJson(this.sampling);
    const unrollSamplingKey = canonicalJson(this.unrollSampling);
    this.topLogprobs = options.topLogprobs ?? 5;
    if (!Number.isInteger(this.topLogprobs) || this.topLogprobs < 0 || this.topLogprobs > 20) {
      throw new EcrError('ECR_PIPELINE_OPTION', `topLogprobs must be an integer in 0..20, got ${this.topLogprobs}`);
    }
    this.system = options.system;
    this.config = toResolvedConfig(options.config);
    this.backend = options.backend ?? 'auto';
    // Derived pipelines share the root's caches, flights and limit (its embedder decided its tiers).
    this.shared = options.shareWith?.shared ?? {
      limit: pLimit(this.maxParallel),
      ...createCaches(options.cache ?? {}, { embedder: this.embedder.remote, safety: this.safety.remote }),
      candidateFlights: new Map(),
    };
    this.caches = this.shared.caches;
    this.tiers = this.shared.tiers;
    this.settings = {
      provider,
      embedder: this.embedder,
      safety: this.safety,
      system: this.system,
      horizon: this.horizon,
      topLogprobs: this.topLogprobs,
      sampling: this.sampling,
      samplingKey,
      unrollSampling: this.unrollSampling,
      unrollSamplingKey,
      shared: this.shared,
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
    return isDeterministic(this.sampling);
  }

  cacheStats(): CacheStats[] {
    return (Object.values(this.caches) as L1Caches[keyof L1Caches][]).map((c) => c.stats());
  }

  async run(prompt: string, options: RunOptions = {}): Promise<PipelineResult> {
    if (typeof prompt !== 'string' || prompt.trim() === '') throw new EcrError('ECR_PIPELINE_INPUT', 'the prompt is empty');
    const { deadlineMs } = options;
    if (deadlineMs !== undefined && !(typeof deadlineMs === 'number' && Number.isFinite(deadlineMs) && deadlineMs > 0)) {
      throw new EcrError('ECR_PIPELINE_OPTION', `deadlineMs must be a positive number of milliseconds, got ${String(deadlineMs)}`);
    }
    checkCacheControl(options.cache);
    const deadline = deadlineMs !== undefined ? AbortSignal.timeout(deadlineMs) : undefined;
    const signal = deadline && options.signal ? AbortSignal.any([options.signal, deadline]) : (deadline ?? options.signal);
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
        outcome:
          err instanceof NoSurvivingCandidatesError
            ? 'no_survivors'
            : err instanceof DeadlineExceededError
              ? 'deadline'
              : err instanceof RequestCancelledError
                ? 'cancelled'
                : 'error',
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
      settings: this.settings,
      prompt,
      conversation: options.messages,
      contextText,
      stats,
      signal,
      cache: options.cache ?? {},
      observer: options.observer
        ? {
            onCall: (r) => {
              stats.onCall(r);
              options.observer!.onCall(r);
            },
          }
        : stats,
      schedule: (fn) => this.shared.limit(fn),
      contextEmbedding: Promise.resolve(new Float32Array(0)),
    };
    if (this.embedder.remote) {
      // Given candidates (selectBest) take part in the rounds in place of the K sampled ones.
      const participants = options.candidates ? options.candidates.length : k;
      ctx.rounds = new EmbeddingRounds(participants, this.horizon, (texts) =>
        ctx.schedule(() => this.embedder.embed(texts, { signal, observer: ctx.observer })),
      );
    }
    // The context goes out with the candidates' step 0 (round 0); no vector needs it earlier.
    ctx.contextEmbedding = embed(ctx, contextText, 0, false);
    ctx.contextEmbedding.catch(() => {}); // awaited by every trajectory; a rejection is reported there

    const candidates = options.candidates
      ? options.candidates.map((text) => Promise.resolve<CandidateOutcome>({ ok: true, choice: { text, logprobs: null }, via: 'given' }))
      : generate(ctx, k);
    const trajectories = await Promise.all(candidates.map((c, i) => trajectory(ctx, i, c)));
    if (signal?.aborted) throw abortError();

    const survivors = trajectories.filter((t): t is Survivor => t.ok);
    const failed = trajectories.filter((t): t is Extract<Trajectory, { ok: false }> => !t.ok);
    ecrMetrics.candidates.inc({ status: 'scored' }, survivors.length);
    if (failed.length) ecrMetrics.candidates.inc({ status: 'failed' }, failed.length);
    if (survivors.length === 0) {
      throw new NoSurvivingCandidatesError(
        failed.map((f) => ({ index: f.index, stage: f.failure.stage, step: f.failure.step, message: errorMessage(f.failure.error) })),
        failed.map((f) => f.failure.error),
      );
    }

    const tScore = performance.now();
    const { batch, signals } = pack(survivors, this.horizon, this.topLogprobs);
    stats.addMemory(approxBytes(batch.steps) + approxBytes(batch.embeddings) + approxBytes(batch.policy) + approxBytes(batch.expected) * 2);
    // Trusted: E is clamped to [0, 1] by construction, policy rows are exp() of finite numbers, and
    // embeddings are checked in pack(); validateBatch would re-walk every embedding value.
    const scored = await scoreBatch(batch, this.config, {
      backend: this.backend,
      backendOptions: this.options.backendOptions,
      ids: survivors.map((s) => `c${s.index}`),
      trusted: true,
    });
    const audit = scored.audit(0);
    stats.span('score', tScore);

    const reports = new Array<CandidateReport>(trajectories.length);
    for (const f of failed) {
      reports[f.index] = {
        index: f.index,
        status: 'failed',
        text: f.text,
        selected: false,
        error: {
          stage: f.failure.stage,
          step: f.failure.step,
          code: (f.failure.error as { code?: string })?.code,
          message: errorMessage(f.failure.error),
          ...(f.failure.error instanceof LlmNoContentError && f.failure.error.refusal !== undefined ? { refusal: f.failure.error.refusal } : {}),
        },
      };
    }
    survivors.forEach((s, row) => {
      const a = audit.candidates[row];
      reports[s.index] = {
        index: s.index,
        status: 'scored',
        text: s.steps[0].text,
        selected: row === audit.selectedIndex,
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
}

/** Feeds the selection metrics: the selected CCI, admitted or fallback, and the excluded candidates. */
function recordSelection(cci: number, reason: SelectionReason, inadmissible: number, failed: number): void {
  ecrMetrics.selectedCci.observe(cci);
  ecrMetrics.selections.inc({ reason: reason === 'fallback' ? 'fallback' : 'admitted' });
  if (inadmissible) ecrMetrics.excludedCandidates.inc({ reason: 'inadmissible' }, inadmissible);
  if (failed) ecrMetrics.excludedCandidates.inc({ reason: 'failed' }, failed);
}

function positiveInt(name: string, v: number, min: number): number {
  if (!Number.isInteger(v) || v < min) throw new EcrError('ECR_PIPELINE_OPTION', `${name} must be an integer >= ${min}, got ${v}`);
  return v;
}

function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
