/**
 * The process-wide ECR metrics on prom-client: one registry (`registry`), every name prefixed
 * `ecr_`, histograms with explicit buckets, label sets bounded (kinds, outcomes, statuses, never
 * prompts or free-form model names beyond what the operator configured). The pipeline's and the
 * gateway's metrics live here together so that `/metrics` and `ecr run --metrics` show one set.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export const registry = new Registry();

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
const CCI_BUCKETS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1];

const registers = [registry];

export const ecrMetrics = {
  llmCalls: new Counter({
    name: 'ecr_llm_calls_total',
    help: 'LLM HTTP requests made, retries included, by kind (generate, unroll, embed).',
    labelNames: ['kind'] as const,
    registers,
  }),
  llmCallErrors: new Counter({
    name: 'ecr_llm_call_errors_total',
    help: 'LLM HTTP requests that failed, by kind and reason (http_<status>, timeout, network, cancelled).',
    labelNames: ['kind', 'reason'] as const,
    registers,
  }),
  llmRetries: new Counter({
    name: 'ecr_llm_retries_total',
    help: 'LLM HTTP requests that were retries of a failed attempt, by kind.',
    labelNames: ['kind'] as const,
    registers,
  }),
  llmChoices: new Counter({
    name: 'ecr_llm_choices_total',
    help: 'Choices (samples) received from chat calls, by kind.',
    labelNames: ['kind'] as const,
    registers,
  }),
  llmTokens: new Counter({
    name: 'ecr_llm_tokens_total',
    help: 'Tokens reported by the server in usage, by type (prompt, completion).',
    labelNames: ['type'] as const,
    registers,
  }),
  llmCallDuration: new Histogram({
    name: 'ecr_llm_call_duration_seconds',
    help: 'Latency of one LLM HTTP request, by kind.',
    labelNames: ['kind'] as const,
    buckets: LATENCY_BUCKETS,
    registers,
  }),
  cacheLookups: new Counter({
    name: 'ecr_cache_lookups_total',
    help: 'Cache lookups by cache, tier (l1 = in-process, l2 = Redis) and outcome (hit, miss, joined = waited on a load in flight in this process (l1) or another instance (l2), unavailable = Redis not reachable).',
    labelNames: ['cache', 'tier', 'outcome'] as const,
    registers,
  }),
  redisErrors: new Counter({
    name: 'ecr_redis_errors_total',
    help: 'Failed operations of the shared Redis cache tier, by operation and reason (timeout, connection, error); each is served from the in-process cache.',
    labelNames: ['op', 'reason'] as const,
    registers,
  }),
  redisUp: new Gauge({ name: 'ecr_redis_up', help: '1 while the shared Redis cache tier answers, 0 while it is degraded (unset without --redis).', registers }),
  cacheEvictions: new Counter({
    name: 'ecr_cache_evictions_total',
    help: 'Entries evicted (size bound) or expired (TTL), by cache.',
    labelNames: ['cache'] as const,
    registers,
  }),
  requests: new Counter({
    name: 'ecr_requests_total',
    help: 'Pipeline requests by outcome (ok, no_survivors, cancelled, deadline, error).',
    labelNames: ['outcome'] as const,
    registers,
  }),
  requestDuration: new Histogram({ name: 'ecr_request_duration_seconds', help: 'Wall time of one pipeline request.', buckets: LATENCY_BUCKETS, registers }),
  candidates: new Counter({ name: 'ecr_candidates_total', help: 'Candidates by status (scored, failed).', labelNames: ['status'] as const, registers }),
  parallelSpeedup: new Histogram({
    name: 'ecr_parallel_speedup_ratio',
    help: 'Sum of LLM call latencies divided by request wall time.',
    buckets: [1, 2, 4, 8, 16, 32, 64, 128],
    registers,
  }),
  selectedCci: new Histogram({
    name: 'ecr_selected_cci',
    help: 'CCI of the selected candidate of each pipeline request (monthly CCI tracking).',
    buckets: CCI_BUCKETS,
    registers,
  }),
  selections: new Counter({
    name: 'ecr_selections_total',
    help: 'Pipeline selections by reason (admitted = best admissible candidate, fallback = none was admissible).',
    labelNames: ['reason'] as const,
    registers,
  }),
  excludedCandidates: new Counter({
    name: 'ecr_excluded_candidates_total',
    help: 'Candidates excluded from selection, by reason (inadmissible = CCI below tau, failed = generation, unroll or evaluation failed).',
    labelNames: ['reason'] as const,
    registers,
  }),
  // Gateway (ecr serve).
  httpRequests: new Counter({
    name: 'ecr_http_requests_total',
    help: 'Gateway HTTP requests by route, model and status.',
    labelNames: ['route', 'model', 'status'] as const,
    registers,
  }),
  httpRequestDuration: new Histogram({
    name: 'ecr_http_request_duration_seconds',
    help: 'Gateway HTTP request latency by route.',
    labelNames: ['route'] as const,
    buckets: LATENCY_BUCKETS,
    registers,
  }),
  httpInFlight: new Gauge({
    name: 'ecr_http_requests_in_flight',
    help: 'Gateway HTTP requests in progress, by route.',
    labelNames: ['route'] as const,
    registers,
  }),
  upstreamCalls: new Counter({
    name: 'ecr_upstream_calls_total',
    help: 'Gateway calls to the upstream outside the pipeline (passthrough, models, readiness), by kind and status.',
    labelNames: ['kind', 'status'] as const,
    registers,
  }),
  cacheSize: new Gauge({
    name: 'ecr_cache_size_bytes',
    help: 'Estimated bytes held by each pipeline cache (bounded by --cache-max-bytes), at scrape time.',
    labelNames: ['cache'] as const,
    registers,
  }),
  cacheEntries: new Gauge({
    name: 'ecr_cache_entries',
    help: 'Entries held by each pipeline cache, at scrape time.',
    labelNames: ['cache'] as const,
    registers,
  }),
  rejected: new Counter({
    name: 'ecr_http_rejected_total',
    help: 'Gateway requests rejected before any work, by reason (auth, concurrency, invalid).',
    labelNames: ['reason'] as const,
    registers,
  }),
  auditLogErrors: new Counter({ name: 'ecr_audit_log_errors_total', help: 'Failed writes to the --audit-log file (each also logged).', registers }),
};
// prom-client shows a label-less gauge as 0 until it is set; without a Redis tier there is no
// series at all, so an alert on ecr_redis_up == 0 fires only where Redis is configured and down.
ecrMetrics.redisUp.remove();

let defaultsOn = false;
/** Adds prom-client's default process metrics (CPU, memory, event loop lag) under the ecr_ prefix; once. */
export function enableDefaultMetrics(): void {
  if (defaultsOn) return;
  defaultsOn = true;
  collectDefaultMetrics({ register: registry, prefix: 'ecr_' });
}

/** The Prometheus text exposition of all process-wide metrics. */
export function prometheusText(): Promise<string> {
  return registry.metrics();
}
