/**
 * `ecr-engine/pipeline`: from a prompt to a selected answer. The pipeline, the LLM providers it
 * calls, the drop-in functions for any LLM given as a plain function, and the process metrics.
 */
export { EcrPipeline, type PipelineOptions } from './pipeline.js';
export type { CacheOptions, RunOptions, StepReport, CandidateReport, CacheResult, PipelineStats, PipelineResult } from './types.js';
export { NoSurvivingCandidatesError, RequestCancelledError, DeadlineExceededError } from './errors.js';
export { generateCandidates, selectBest, type DropInOptions } from './drop-in.js';
export { LexicalRiskEstimator, type RiskEstimator } from './risk.js';
export { MarkerSafetyScorer, type SafetyScorer } from './signals.js';
export { OpenAICompatibleProvider, type OpenAICompatibleOptions } from '../llm/openai-compatible.js';
export { FunctionProvider, type LlmFunction } from '../llm/function-provider.js';
export { HashingEmbedder, ProviderEmbedder, type Embedder } from '../llm/embedder.js';
export type {
  Provider,
  ChatMessage,
  ChatRequest,
  ChatResult,
  ChatChoice,
  ContentlessChoice,
  SamplingParams,
  TokenLogprob,
  TopLogprob,
  Usage,
  CallKind,
  CallRecord,
  CallObserver,
  CallOptions,
} from '../llm/provider.js';
export {
  LlmError,
  LlmHttpError,
  LlmMultipleChoicesRejectedError,
  LlmNoContentError,
  LlmNetworkError,
  LlmTimeoutError,
  LlmCancelledError,
  LlmResponseError,
} from '../llm/errors.js';
export { DEFAULT_RETRY_POLICY, type RetryPolicy } from '../llm/retry.js';
export { prometheusText } from '../monitoring/process-metrics.js';
export type { RequestStatsReport, CallCounts, CacheCounts } from '../monitoring/request-stats.js';
