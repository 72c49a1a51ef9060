/**
 * `ecr run PROMPT`: the full pipeline against an OpenAI-compatible server. Prints the selected
 * response and a compact audit table, or with --json exactly one JSON object
 * {response, selectedIndex, admissible, metrics, candidates, stats}. --metrics also prints the
 * process's Prometheus metrics (to stdout after the table; to stderr with --json so stdout stays
 * one object). On failure, --json prints {"error": {type, code, message, exitCode, ...}} on stdout
 * as well as the usual line on stderr. The Redis tier around the run is src/pipeline/run-prompt.ts.
 */
import { readFile } from 'node:fs/promises';
import { parseArgs } from '../core/parse-args.js';
import { BACKEND_CHOICES, type BackendChoice } from '../backends/backend.js';
import type { EcrConfig } from '../core/config.js';
import { EcrError, UsageError, isUserError } from '../core/errors.js';
import { LlmError, LlmHttpError } from '../llm/errors.js';
import { providerFromSettings } from '../llm/settings.js';
import type { SamplingParams } from '../llm/provider.js';
import { prometheusText } from '../monitoring/process-metrics.js';
import { checkCacheNamespace } from '../cache/namespace.js';
import type { RedisStore } from '../cache/redis-store.js';
import { checkRedisUrlOption } from '../cache/redis-url.js';
import type { CacheControl } from '../cache/tiered-cache.js';
import { DeadlineExceededError, NoSurvivingCandidatesError, RequestCancelledError } from '../pipeline/errors.js';
import { EcrPipeline } from '../pipeline/pipeline.js';
import { withRedisTier } from '../pipeline/run-prompt.js';
import type { PipelineResult } from '../pipeline/types.js';
import { redactUrl } from '../core/redact-url.js';
import { startWaitNote } from '../engine/io/wait-note.js';
import { backendOptionsFromEnv } from './backend-env.js';

/** Exit code when --deadline passes (as timeout(1) uses). */
export const DEADLINE_EXIT_CODE = 124;

const USAGE = `usage: ecr run PROMPT [options]

server (flags win over the environment):
  --base-url URL          OpenAI-compatible base URL, e.g. http://127.0.0.1:11434/v1 (ECR_BASE_URL, OPENAI_BASE_URL)
  --upstream-api-key KEY  bearer token (ECR_API_KEY, OPENAI_API_KEY); the old name --api-key still works, with a warning
  --model M               chat model (ECR_MODEL)
  --embedding-model E     embedding model (ECR_EMBEDDING_MODEL); default: built-in hashing embedder, no calls
  --timeout MS            per-call timeout (default 60000)
  --retries N             retries on 429, 5xx and network errors (default 3)
  --deadline SECONDS      limit for the whole request; at expiry calls are cancelled, exit ${DEADLINE_EXIT_CODE}
pipeline:
  -k, --k K               most candidates (default 4)
  --fixed-k               always use K candidates (default: adaptive K from the prompt's risk, at most K)
  --horizon H             review steps per candidate (default 2)
  --temperature T         sampling temperature (default 0.8)
  --seed S                sampling seed (makes sampling deterministic and cacheable)
  --top-logprobs N        token alternatives to request (default 5; 0 = no logprobs)
  --max-parallel N        most LLM calls in flight (default 16)
  --system TEXT           system prompt
  --context TEXT          retrieval context the answer should agree with
cache (the gateway's ecr.cache object, for this request):
  --redis URL             shared cache tier behind the in-process one: redis://host:port[/db], rediss://, redis+sentinel://host:port/<master> (ECR_REDIS_URL)
  --redis-ttl SECONDS     time to live of the Redis entries this run writes (default 86400)
  --redis-timeout MS      limit of one Redis operation; past it the run goes on without Redis (default 100)
  --cache-namespace NS    read and write cache entries in their own key space (1-64 of A-Z a-z 0-9 _ - .)
  --no-cache              do not read cached results (compute afresh)
  --no-store              do not write what this run computes to the caches
scoring:
  --preset P              default | compliance | creative | conversational
  --tau X                 admissibility threshold (default 0.65)
  --config FILE           ECR configuration JSON (flags override its keys)
  --backend B             ${BACKEND_CHOICES.join(' | ')} (default auto)
output:
  --json                  one JSON object on stdout; on failure {"error": {type, code, message, ...}}
  --metrics               also print Prometheus metrics
  -h, --help              print this help

exit codes: 0 success; 1 the server or pipeline failed (no candidate survived, cancelled);
2 bad arguments; ${DEADLINE_EXIT_CODE} --deadline passed. A note on stderr shows the wait when it is a terminal.`;

function int(name: string, v: string | undefined, min: number, max = Number.MAX_SAFE_INTEGER): number | undefined {
  if (v === undefined) return undefined;
  const x = Number(v);
  if (!/^-?\d+$/.test(v.trim()) || x < min || x > max)
    throw new UsageError(`--${name} must be an integer in ${min}..${max === Number.MAX_SAFE_INTEGER ? 'inf' : max}, got ${JSON.stringify(v)}`);
  return x;
}

function num(name: string, v: string | undefined, min: number, max: number): number | undefined {
  if (v === undefined) return undefined;
  const x = Number(v);
  if (v.trim() === '' || !Number.isFinite(x) || x < min || x > max)
    throw new UsageError(`--${name} must be a number in [${min}, ${max}], got ${JSON.stringify(v)}`);
  return x;
}

export async function main(argv: string[]): Promise<number> {
  // Before parsing succeeds, --json is taken from the raw arguments so a usage error is JSON too.
  const ctx = { json: argv.includes('--json'), metrics: false };
  try {
    return await runCommand(argv, ctx);
  } catch (err) {
    const failure = err instanceof EcrError && err.code === 'ECR_PIPELINE_OPTION' ? new UsageError(err.message) : err;
    const exitCode = exitCodeOf(failure);
    if (ctx.json) process.stdout.write(JSON.stringify(errorObject(failure, exitCode)) + '\n');
    // Usage and internal errors are reported by the dispatcher (src/cli.ts); the rest here, in one line.
    if (exitCode === 2 || (exitCode === 1 && !isRunFailure(failure))) throw failure;
    process.stderr.write(`ecr run: ${(failure as Error).message}\n`);
    if (failure instanceof NoSurvivingCandidatesError && failure.failures.length > 1) {
      for (const f of failure.failures)
        process.stderr.write(`  candidate ${f.index}: ${f.stage}${f.step !== undefined ? ` step ${f.step}` : ''}: ${f.message}\n`);
    }
    if (ctx.metrics) process.stderr.write(await prometheusText());
    return exitCode;
  }
}

/** Failures of the server or the pipeline, as opposed to bad usage or a bug. */
function isRunFailure(err: unknown): boolean {
  return err instanceof NoSurvivingCandidatesError || err instanceof LlmError || err instanceof RequestCancelledError || err instanceof DeadlineExceededError;
}

function exitCodeOf(err: unknown): number {
  if (err instanceof DeadlineExceededError) return DEADLINE_EXIT_CODE;
  if (err instanceof EcrError && isUserError(err)) return 2;
  return 1;
}

/** The --json error object: `type` is the error class, `code` its stable ECR_* code. */
export function errorObject(err: unknown, exitCode: number): { error: Record<string, unknown> } {
  if (!(err instanceof EcrError)) {
    return { error: { type: 'InternalError', code: 'ECR_INTERNAL', message: err instanceof Error ? err.message : String(err), exitCode } };
  }
  const error: Record<string, unknown> = { type: err.name, code: err.code, message: err.message, exitCode };
  if (err instanceof NoSurvivingCandidatesError) error.failures = err.failures;
  if (err instanceof DeadlineExceededError) error.deadlineMs = err.deadlineMs;
  if (err instanceof LlmError) Object.assign(error, { kind: err.kind, url: err.url, attempts: err.attempts });
  if (err instanceof LlmHttpError) Object.assign(error, { status: err.status, ...(err.hint ? { hint: err.hint } : {}) });
  return { error };
}

async function runCommand(argv: string[], ctx: { json: boolean; metrics: boolean }): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        'base-url': { type: 'string' },
        'upstream-api-key': { type: 'string' },
        'api-key': { type: 'string' },
        model: { type: 'string' },
        'embedding-model': { type: 'string' },
        timeout: { type: 'string' },
        retries: { type: 'string' },
        deadline: { type: 'string' },
        k: { type: 'string', short: 'k' },
        'fixed-k': { type: 'boolean', default: false },
        horizon: { type: 'string' },
        temperature: { type: 'string' },
        seed: { type: 'string' },
        'top-logprobs': { type: 'string' },
        'max-parallel': { type: 'string' },
        system: { type: 'string' },
        context: { type: 'string' },
        preset: { type: 'string' },
        tau: { type: 'string' },
        config: { type: 'string' },
        backend: { type: 'string' },
        redis: { type: 'string' },
        'redis-ttl': { type: 'string' },
        'redis-timeout': { type: 'string' },
        'cache-namespace': { type: 'string' },
        'no-cache': { type: 'boolean', default: false },
        'no-store': { type: 'boolean', default: false },
        json: { type: 'boolean', default: false },
        metrics: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (e) {
    throw new UsageError(`${(e as Error).message}\n${USAGE}`);
  }
  const { values: v, positionals } = parsed;
  ctx.json = v.json === true;
  ctx.metrics = v.metrics === true;
  if (v.help) {
    process.stdout.write(USAGE + '\n');
    return 0;
  }
  const apiKey = upstreamApiKey(v['upstream-api-key'], v['api-key']);
  if (positionals.length !== 1 || positionals[0].trim() === '')
    throw new UsageError(`expected exactly one PROMPT argument, got ${positionals.length}\n${USAGE}`);
  const prompt = positionals[0];

  const backend = (v.backend ?? 'auto') as BackendChoice;
  if (!BACKEND_CHOICES.includes(backend)) throw new UsageError(`--backend must be one of ${BACKEND_CHOICES.join(', ')}, got ${JSON.stringify(v.backend)}`);
  let config: EcrConfig = {};
  if (v.config !== undefined) {
    let text: string;
    try {
      text = await readFile(v.config, 'utf8');
    } catch (e) {
      throw new UsageError(`--config: cannot read ${v.config}: ${(e as Error).message}`);
    }
    try {
      config = JSON.parse(text) as EcrConfig;
    } catch (e) {
      throw new UsageError(`--config: ${v.config} is not JSON: ${(e as Error).message}`);
    }
  }
  if (v.preset !== undefined) config = { ...config, preset: v.preset as EcrConfig['preset'] };
  const tau = num('tau', v.tau, 0, 1);
  if (tau !== undefined) config = { ...config, tau };

  const sampling: SamplingParams = { temperature: num('temperature', v.temperature, 0, 2) ?? 0.8 };
  const seed = int('seed', v.seed, -(2 ** 31), 2 ** 31 - 1);
  if (seed !== undefined) sampling.seed = seed;

  const cache: CacheControl = {};
  if (v['cache-namespace'] !== undefined)
    cache.namespace = checkCacheNamespace(v['cache-namespace'], (problem) => new UsageError(`--cache-namespace ${problem}`));
  if (v['no-cache']) cache.noCache = true;
  if (v['no-store']) cache.noStore = true;
  const redisUrl = v.redis ?? process.env.ECR_REDIS_URL;
  const redisTtl = int('redis-ttl', v['redis-ttl'], 1);
  const redisTimeout = int('redis-timeout', v['redis-timeout'], 1);
  if (redisUrl !== undefined) checkRedisUrlOption(redisUrl, '--redis');

  const provider = providerFromSettings(
    {
      baseUrl: v['base-url'],
      apiKey,
      model: v.model,
      embeddingModel: v['embedding-model'],
      timeoutMs: int('timeout', v.timeout, 1),
      retries: int('retries', v.retries, 0, 20),
    },
    process.env,
  );
  const tier =
    redisUrl !== undefined
      ? {
          url: redisUrl,
          ttlSeconds: redisTtl,
          timeoutMs: redisTimeout,
          onWarn: (m: string) => {
            process.stderr.write(`ecr run: ${m}\n`);
          },
        }
      : undefined;
  return withRedisTier(tier, (redis) => runWith(redis, v, prompt, provider, sampling, config, backend, cache));
}

/**
 * The upstream key: --upstream-api-key, or its old name --api-key (which in ecr serve is the key
 * clients send), still taken, with one warning line.
 */
function upstreamApiKey(key: string | undefined, old: string | undefined): string | undefined {
  if (old === undefined) return key;
  if (key !== undefined) throw new UsageError('--api-key is the old name of --upstream-api-key: give only --upstream-api-key');
  process.stderr.write('ecr run: warning: --api-key is deprecated in ecr run; use --upstream-api-key (in ecr serve, --api-key is the key clients send)\n');
  return old;
}

async function runWith(
  redis: RedisStore | undefined,
  v: Record<string, string | boolean | undefined>,
  prompt: string,
  provider: ReturnType<typeof providerFromSettings>,
  sampling: SamplingParams,
  config: EcrConfig,
  backend: BackendChoice,
  cache: CacheControl,
): Promise<number> {
  const str = (name: string) => v[name] as string | undefined;
  const pipeline = new EcrPipeline({
    provider,
    k: int('k', str('k'), 1, 256) ?? 4,
    horizon: int('horizon', str('horizon'), 1, 15) ?? 2,
    adaptiveK: !v['fixed-k'],
    sampling,
    topLogprobs: int('top-logprobs', str('top-logprobs'), 0, 20),
    maxParallel: int('max-parallel', str('max-parallel'), 1, 1024),
    system: str('system'),
    config,
    backend,
    // The adapter line and Dawn's messages only under ECR_DEBUG=webgpu, as for any library caller.
    backendOptions: backendOptionsFromEnv(process.env, { reportAdapter: false }),
    ...(redis ? { cache: { redis } } : {}),
  });

  const deadlineS = num('deadline', str('deadline'), 0, 1e7);
  if (deadlineS === 0) throw new UsageError('--deadline must be more than 0 seconds');
  const deadlineMs = deadlineS === undefined ? undefined : deadlineS * 1000;

  const abort = new AbortController();
  const onSigint = () => abort.abort(new Error('interrupted'));
  process.once('SIGINT', onSigint);
  let answered = 0;
  const stopNote = startWaitNote(process.stderr, process.stderr.isTTY === true, (elapsedMs) => waitNote(provider.baseUrl, elapsedMs, answered, deadlineMs));
  let result: PipelineResult;
  try {
    result = await pipeline.run(prompt, {
      signal: abort.signal,
      context: str('context'),
      deadlineMs,
      cache,
      observer: {
        onCall: () => {
          answered++;
        },
      },
    });
  } finally {
    stopNote();
    process.removeListener('SIGINT', onSigint);
  }

  if (v.json) {
    const { response, selectedIndex, admissible, metrics, candidates, stats } = result;
    process.stdout.write(JSON.stringify({ response, selectedIndex, admissible, metrics, candidates, stats }) + '\n');
    if (v.metrics) process.stderr.write(await prometheusText());
  } else {
    process.stdout.write(formatHuman(result));
    if (v.metrics) process.stdout.write('\n' + (await prometheusText()));
  }
  return 0;
}

/** The text of the wait note: what is awaited, for how long, and how far it got. */
export function waitNote(baseUrl: string, elapsedMs: number, callsDone: number, deadlineMs?: number): string {
  const s = (ms: number) => `${Math.floor(ms / 1000)} s`;
  return `ecr run: waiting for ${redactUrl(baseUrl)}, ${s(elapsedMs)}${deadlineMs !== undefined ? ` of ${s(deadlineMs)}` : ''}, ${callsDone} call(s) done`;
}

export function formatHuman(r: PipelineResult): string {
  const f = (x: number) => x.toFixed(3);
  const lines: string[] = [];
  lines.push(r.response, '');
  lines.push(
    `selected candidate ${r.selectedIndex} (${r.stats.scoring.reason}, ${r.admissible ? 'admissible' : 'not admissible'}, CCI ${f(r.metrics.CCI)}, tau ${r.stats.scoring.tau})`,
  );
  lines.push(' #  status     EVB    CR     TS     ES     PD     CCI    adm  sel');
  for (const c of r.candidates) {
    if (c.status === 'scored' && c.metrics) {
      const m = c.metrics;
      lines.push(
        `${String(c.index).padStart(2)}  scored   ${f(m.EVB)}  ${f(m.CR)}  ${f(m.TS)}  ${f(m.ES)}  ${f(m.PD)}  ${f(m.CCI)}  ${c.admissible ? 'yes' : 'no '}  ${c.selected ? '*' : ''}`,
      );
    } else {
      const e = c.error!;
      lines.push(`${String(c.index).padStart(2)}  failed   ${e.stage}${e.step !== undefined ? ` step ${e.step}` : ''}: ${e.message}`);
    }
  }
  const s = r.stats;
  const risk = s.k.risk === null ? 'fixed' : `risk ${s.k.risk.toFixed(2)}`;
  lines.push(
    `K ${s.k.used}/${s.k.max} (${risk}), H ${s.horizon}; calls: ${s.calls.generate.requests} generate + ${s.calls.unroll.requests} unroll + ${s.calls.embed.requests} embed` +
      ` (${s.calls.generate.retries + s.calls.unroll.retries + s.calls.embed.retries} retries); tokens ${s.tokens.reported ? `${s.tokens.prompt} in / ${s.tokens.completion} out` : 'not reported'}`,
  );
  const tiers = Object.values(s.cache).reduce((t, c) => ({ l1: t.l1 + c.l1Hits, l2: t.l2 + c.l2Hits }), { l1: 0, l2: 0 });
  lines.push(`cache ${s.cacheResult} (${tiers.l1} in-process hits, ${tiers.l2} Redis hits)`);
  lines.push(
    `wall ${s.wallMs.toFixed(0)} ms, sequential estimate ${s.sequentialEstimateMs.toFixed(0)} ms, speedup ${s.parallelSpeedup.toFixed(2)}x; backend ${s.scoring.backend}; signals: ${s.signals.logprobs ? 'logprobs' : 'lexical'}${s.signals.policy ? ', policy' : ''}, embedder ${s.signals.embedder}`,
  );
  return lines.join('\n') + '\n';
}
