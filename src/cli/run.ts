/**
 * `ecr run PROMPT`: the full pipeline against an OpenAI-compatible server. Prints the selected
 * response and a compact audit table, or with --json exactly one JSON object
 * {response, selectedIndex, admissible, metrics, candidates, stats}. --metrics also prints the
 * process's Prometheus metrics (to stdout after the table; to stderr with --json so stdout stays
 * one object).
 */
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { BACKEND_CHOICES, type BackendChoice } from '../backends/backend.js';
import type { EcrConfig } from '../config.js';
import { EcrError, UsageError } from '../errors.js';
import { LlmError } from '../llm/errors.js';
import { providerFromSettings } from '../llm/settings.js';
import type { SamplingParams } from '../llm/provider.js';
import { prometheusText } from '../monitoring/process-metrics.js';
import { NoSurvivingCandidatesError, RequestCancelledError } from '../pipeline/errors.js';
import { EcrPipeline, type PipelineResult } from '../pipeline/pipeline.js';

const USAGE = `usage: ecr run PROMPT [options]

server (flags win over the environment):
  --base-url URL          OpenAI-compatible base URL, e.g. http://127.0.0.1:11434/v1 (ECR_BASE_URL, OPENAI_BASE_URL)
  --api-key KEY           bearer token (ECR_API_KEY, OPENAI_API_KEY)
  --model M               chat model (ECR_MODEL)
  --embedding-model E     embedding model (ECR_EMBEDDING_MODEL); default: built-in hashing embedder, no calls
  --timeout MS            per-call timeout (default 60000)
  --retries N             retries on 429, 5xx and network errors (default 3)
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
scoring:
  --preset P              default | compliance | creative | conversational
  --tau X                 admissibility threshold (default 0.65)
  --config FILE           ECR configuration JSON (flags override its keys)
  --backend B             ${BACKEND_CHOICES.join(' | ')} (default auto)
output:
  --json                  one JSON object on stdout
  --metrics               also print Prometheus metrics`;

function int(name: string, v: string | undefined, min: number, max = Number.MAX_SAFE_INTEGER): number | undefined {
  if (v === undefined) return undefined;
  const x = Number(v);
  if (!/^-?\d+$/.test(v.trim()) || x < min || x > max) throw new UsageError(`--${name} must be an integer in ${min}..${max === Number.MAX_SAFE_INTEGER ? 'inf' : max}, got ${JSON.stringify(v)}`);
  return x;
}

function num(name: string, v: string | undefined, min: number, max: number): number | undefined {
  if (v === undefined) return undefined;
  const x = Number(v);
  if (v.trim() === '' || !Number.isFinite(x) || x < min || x > max) throw new UsageError(`--${name} must be a number in [${min}, ${max}], got ${JSON.stringify(v)}`);
  return x;
}

export async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        'base-url': { type: 'string' }, 'api-key': { type: 'string' }, model: { type: 'string' }, 'embedding-model': { type: 'string' },
        timeout: { type: 'string' }, retries: { type: 'string' },
        k: { type: 'string', short: 'k' }, 'fixed-k': { type: 'boolean', default: false }, horizon: { type: 'string' },
        temperature: { type: 'string' }, seed: { type: 'string' }, 'top-logprobs': { type: 'string' }, 'max-parallel': { type: 'string' },
        system: { type: 'string' }, context: { type: 'string' },
        preset: { type: 'string' }, tau: { type: 'string' }, config: { type: 'string' }, backend: { type: 'string' },
        json: { type: 'boolean', default: false }, metrics: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (e) {
    throw new UsageError(`${(e as Error).message}\n${USAGE}`);
  }
  const { values: v, positionals } = parsed;
  if (v.help) { process.stdout.write(USAGE + '\n'); return 0; }
  if (positionals.length !== 1 || positionals[0].trim() === '') throw new UsageError(`expected exactly one PROMPT argument, got ${positionals.length}\n${USAGE}`);
  const prompt = positionals[0];

  const backend = (v.backend ?? 'auto') as BackendChoice;
  if (!BACKEND_CHOICES.includes(backend)) throw new UsageError(`--backend must be one of ${BACKEND_CHOICES.join(', ')}, got ${JSON.stringify(v.backend)}`);
  let config: EcrConfig = {};
  if (v.config !== undefined) {
    let text: string;
    try { text = await readFile(v.config, 'utf8'); } catch (e) { throw new UsageError(`--config: cannot read ${v.config}: ${(e as Error).message}`); }
    try { config = JSON.parse(text) as EcrConfig; } catch (e) { throw new UsageError(`--config: ${v.config} is not JSON: ${(e as Error).message}`); }
  }
  if (v.preset !== undefined) config = { ...config, preset: v.preset as EcrConfig['preset'] };
  const tau = num('tau', v.tau, 0, 1);
  if (tau !== undefined) config = { ...config, tau };

  const sampling: SamplingParams = { temperature: num('temperature', v.temperature, 0, 2) ?? 0.8 };
  const seed = int('seed', v.seed, -(2 ** 31), 2 ** 31 - 1);
  if (seed !== undefined) sampling.seed = seed;

  const provider = providerFromSettings({
    baseUrl: v['base-url'], apiKey: v['api-key'], model: v.model, embeddingModel: v['embedding-model'],
    timeoutMs: int('timeout', v.timeout, 1), retries: int('retries', v.retries, 0, 20),
  });
  const pipeline = new EcrPipeline({
    provider,
    k: int('k', v.k, 1, 256) ?? 4,
    horizon: int('horizon', v.horizon, 1, 15) ?? 2,
    adaptiveK: !v['fixed-k'],
    sampling,
    topLogprobs: int('top-logprobs', v['top-logprobs'], 0, 20),
    maxParallel: int('max-parallel', v['max-parallel'], 1, 1024),
    system: v.system,
    config,
    backend,
  });

  const abort = new AbortController();
  const onSigint = () => abort.abort(new Error('interrupted'));
  process.once('SIGINT', onSigint);
  let result: PipelineResult;
  try {
    result = await pipeline.run(prompt, { signal: abort.signal, context: v.context });
  } catch (err) {
    // Server and pipeline failures get a one-line message, not a stack trace.
    if (err instanceof NoSurvivingCandidatesError || err instanceof LlmError || err instanceof RequestCancelledError) {
      process.stderr.write(`ecr run: ${err.message}\n`);
      if (err instanceof NoSurvivingCandidatesError && err.failures.length > 1) {
        for (const f of err.failures) process.stderr.write(`  candidate ${f.index}: ${f.stage}${f.step !== undefined ? ` step ${f.step}` : ''}: ${f.message}\n`);
      }
      if (v.metrics) process.stderr.write(await prometheusText());
      return 1;
    }
    if (err instanceof EcrError && err.code === 'ECR_PIPELINE_OPTION') throw new UsageError(err.message);
    throw err;
  } finally {
    process.removeListener('SIGINT', onSigint);
  }

  if (v.json) {
    const { response, selectedIndex, admissible, metrics, candidates, stats } = result;
    process.stdout.write(JSON.stringify({ response, selectedIndex, admissible, metrics, candidates, stats }) + '\n');
    if (v.metrics) process.stderr.write(await prometheusText());
  } else {
    process.stdout.write(formatHuman(result));
    if (v.metrics) process.stdout.write('\n' + await prometheusText());
  }
  return 0;
}

export function formatHuman(r: PipelineResult): string {
  const f = (x: number) => x.toFixed(3);
  const lines: string[] = [];
  lines.push(r.response, '');
  lines.push(`selected candidate ${r.selectedIndex} (${r.stats.scoring.reason}, ${r.admissible ? 'admissible' : 'not admissible'}, CCI ${f(r.metrics.CCI)}, tau ${r.stats.scoring.tau})`);
  lines.push(' #  status     EVB    CR     TS     ES     PD     CCI    adm  sel');
  for (const c of r.candidates) {
    if (c.status === 'scored' && c.metrics) {
      const m = c.metrics;
      lines.push(`${String(c.index).padStart(2)}  scored   ${f(m.EVB)}  ${f(m.CR)}  ${f(m.TS)}  ${f(m.ES)}  ${f(m.PD)}  ${f(m.CCI)}  ${c.admissible ? 'yes' : 'no '}  ${c.selected ? '*' : ''}`);
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
  lines.push(`wall ${s.wallMs.toFixed(0)} ms, sequential estimate ${s.sequentialEstimateMs.toFixed(0)} ms, speedup ${s.parallelSpeedup.toFixed(2)}x; backend ${s.scoring.backend}; signals: ${s.signals.logprobs ? 'logprobs' : 'lexical'}${s.signals.policy ? ', policy' : ''}, embedder ${s.signals.embedder}`);
  return lines.join('\n') + '\n';
}
