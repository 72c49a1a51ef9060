/** The process-wide ECR metrics and their exposition (`ecr run --metrics`). */
import { MetricsRegistry } from './prometheus.js';

export const registry = new MetricsRegistry();

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

export const ecrMetrics = {
  llmCalls: registry.counter('ecr_llm_calls_total', 'LLM HTTP requests made, retries included, by kind (generate, unroll, embed).'),
  llmCallErrors: registry.counter('ecr_llm_call_errors_total', 'LLM HTTP requests that failed, by kind and reason (http_<status>, timeout, network, cancelled).'),
  llmRetries: registry.counter('ecr_llm_retries_total', 'LLM HTTP requests that were retries of a failed attempt, by kind.'),
  llmChoices: registry.counter('ecr_llm_choices_total', 'Choices (samples) received from chat calls, by kind.'),
  llmTokens: registry.counter('ecr_llm_tokens_total', 'Tokens reported by the server in usage, by type (prompt, completion).'),
  llmCallDuration: registry.histogram('ecr_llm_call_duration_seconds', 'Latency of one LLM HTTP request, by kind.', LATENCY_BUCKETS),
  cacheLookups: registry.counter('ecr_cache_lookups_total', 'Cache lookups by cache and outcome (hit, miss, joined = waited on an in-flight load).'),
  cacheEvictions: registry.counter('ecr_cache_evictions_total', 'Entries evicted (size bound) or expired (TTL), by cache.'),
  requests: registry.counter('ecr_requests_total', 'Pipeline requests by outcome (ok, no_survivors, cancelled, deadline, error).'),
  requestDuration: registry.histogram('ecr_request_duration_seconds', 'Wall time of one pipeline request.', LATENCY_BUCKETS),
  candidates: registry.counter('ecr_candidates_total', 'Candidates by status (scored, failed).'),
  parallelSpeedup: registry.histogram('ecr_parallel_speedup_ratio', 'Sum of LLM call latencies divided by request wall time.', [1, 2, 4, 8, 16, 32, 64, 128]),
};

/** The Prometheus text exposition of all process-wide metrics. */
export function prometheusText(): string {
  return registry.expose();
}
