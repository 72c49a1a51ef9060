/**
 * `ecr bench-pipeline`: times the full pipeline against the loopback OpenAI-compatible server.
 * Scenarios (the targets):
 *   small  K=4, H=1, 20 ms per call: cold request <= 1.3 x (H+1) x 20 ms = 52 ms with K + K*H
 *          generations; a repeat with the same (seeded) candidates <= 5 ms with no unroll calls.
 *   ignore-n  the same against a server that ignores `n` (one HTTP request per generation).
 *   small-embed  the small scenario with the server's embedding model (/embeddings calls, 20 ms
 *          each too): the step-H embeddings add a third serial round trip, (H+2) x 20 ms = 60 ms.
 *   large  K=64, H=4, 50 ms per call, maxParallel 64: <= 1.3 x the critical path (H+1) x 50 ms.
 * The server runs in this process (--server inproc) or in a child process (--server child, its
 * own event loop, as a real server would be).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { ParseArgsConfig } from 'node:util';
import { parseArgs } from '../core/parse-args.js';
import { UsageError } from '../core/errors.js';
import { postText } from '../llm/http-transport.js';
import { OpenAICompatibleProvider } from '../llm/openai-compatible.js';
import { resetNDetection } from '../llm/sample-choices.js';
import { LoopbackServer } from '../testing/loopback-server.js';
import { EcrPipeline } from '../pipeline/pipeline.js';
import type { PipelineResult } from '../pipeline/types.js';

const USAGE = `usage: ecr bench-pipeline [--server inproc|child] [--runs N] [--scenario small|ignore-n|small-embed|large|all] [--json]
       ecr bench-pipeline --gateway overhead|concurrency|passthrough|all [--runs N] [--duration S] [--json]
       ecr bench-pipeline --gateway l2-hit|cache-overhead --redis URL [--runs N] [--json]`;

const HELP = `${USAGE}

Times the full pipeline against the loopback OpenAI-compatible server (no network, no model)
and compares it with the bare HTTP call chain; with --gateway, times ecr serve (src/bench/gateway.ts).
  --server S     child: the loopback server in a child process, with its own event loop, as a real server (default);
                 inproc: in this process
  --runs N       timed runs per scenario, after 2 warm-up runs (default 7)
  --scenario S   small (K=4, H=1, 20 ms per call) | ignore-n (the same, server ignores n) | small-embed (the same, server embeddings) | large (K=64, H=4, 50 ms) | all (default)
  --gateway G    overhead | concurrency | passthrough | all: ecr serve through the openai client against the loopback
  --duration S   seconds of the --gateway concurrency run (default 30)
  --redis URL    the Redis of the --gateway l2-hit and cache-overhead runs (e.g. redis-server --port 6390 --save '')
  --json         print one JSON object instead of the summary
  -h, --help     print this help`;

interface Scenario {
  name: string;
  k: number;
  horizon: number;
  latencyMs: number;
  maxParallel: number;
  ignoreN: boolean;
  repeat: boolean;
  /** Embed with the server's embedding model instead of the built-in hashing embedder. */
  embeddings: boolean;
}

const SCENARIOS: Record<string, Scenario> = {
  small: { name: 'small', k: 4, horizon: 1, latencyMs: 20, maxParallel: 16, ignoreN: false, repeat: true, embeddings: false },
  'ignore-n': { name: 'ignore-n', k: 4, horizon: 1, latencyMs: 20, maxParallel: 16, ignoreN: true, repeat: true, embeddings: false },
  'small-embed': { name: 'small-embed', k: 4, horizon: 1, latencyMs: 20, maxParallel: 16, ignoreN: false, repeat: true, embeddings: true },
  large: { name: 'large', k: 64, horizon: 4, latencyMs: 50, maxParallel: 64, ignoreN: false, repeat: false, embeddings: false },
};

interface ServerHandle { url: string; close(): Promise<void> }

async function startServer(mode: 'inproc' | 'child', latencyMs: number, ignoreN: boolean): Promise<ServerHandle> {
  if (mode === 'inproc') {
    const s = await LoopbackServer.start({ latencyMs, ignoreN });
    return { url: s.url, close: () => s.close() };
  }
  const script = fileURLToPath(new URL('../testing/loopback-main.js', import.meta.url));
  const child: ChildProcess = spawn(process.execPath, [script, '--latency', String(latencyMs), ...(ignoreN ? ['--ignore-n'] : [])], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout! });
  const [first] = (await Promise.race([once(lines, 'line'), once(child, 'exit').then(() => { throw new Error('loopback child exited before listening'); })])) as [string];
  const { url } = JSON.parse(first) as { url: string };
  return {
    url,
    close: async () => { child.stdin!.end(); if (child.exitCode === null) await once(child, 'exit'); },
  };
}

/**
 * The transport floor: the same chain of HTTP calls (one generate request, or K with a server that
 * ignores n, then H review calls per candidate, chained per candidate) made with the provider's
 * transport (postText) and JSON parsing, and nothing else. The pipeline's overhead is its time above this floor.
 */
async function transportFloorMs(url: string, sc: Scenario, run: number): Promise<number> {
  const post = (messages: unknown, n: number) => postText(`${url}/chat/completions`, { 'content-type': 'application/json' },
    JSON.stringify({ model: 'loopback', messages, n, seed: run, logprobs: true, top_logprobs: 5 }),
  ).then((r) => JSON.parse(r.body) as { choices: Array<{ message: { content: string } }> });
  const prompt = [{ role: 'user', content: `Floor question ${run}` }];
  const t0 = performance.now();
  const texts = sc.ignoreN
    ? await Promise.all(Array.from({ length: sc.k }, () => post(prompt, 1).then((j) => j.choices[0].message.content)))
    : (await post(prompt, sc.k)).choices.map((c) => c.message.content);
  await Promise.all(texts.map(async (text) => {
    let prev = text;
    for (let h = 1; h <= sc.horizon; h++) {
      const j = await post([...prompt, { role: 'assistant', content: prev }, { role: 'user', content: 'Review.' }], 1);
      prev = j.choices[0].message.content;
    }
  }));
  return performance.now() - t0;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

interface CallCount { generateRequests: number; unrollRequests: number; generations: number; embedRequests: number }

function callsOf(r: PipelineResult): CallCount {
  const c = r.stats.calls;
  return { generateRequests: c.generate.requests, unrollRequests: c.unroll.requests, generations: c.generate.choices + c.unroll.choices, embedRequests: c.embed.requests };
}

async function runScenario(sc: Scenario, server: 'inproc' | 'child', runs: number) {
  resetNDetection();
  const srv = await startServer(server, sc.latencyMs, sc.ignoreN);
  const provider = new OpenAICompatibleProvider({ baseUrl: srv.url, model: 'loopback', timeoutMs: 30_000, embeddingModel: sc.embeddings ? 'loopback-embed' : undefined });
  const cold: number[] = [], repeat: number[] = [], floor: number[] = [];
  let coldCalls: CallCount | undefined, repeatCalls: CallCount | undefined, speedup: number[] = [];
  const warmup = 2;
  try {
    for (let r = 0; r < warmup + runs; r++) {
      // A fresh pipeline per run: cold caches. The seed makes sampling deterministic, so the
      // repeat may be served from the candidate cache.
      const pipeline = new EcrPipeline({
        provider, k: sc.k, horizon: sc.horizon, adaptiveK: false, maxParallel: sc.maxParallel,
        sampling: { temperature: 0.8, seed: 1000 + r }, backend: 'auto',
      });
      const prompt = `Benchmark question ${r}: what is the boiling point of water at sea level?`;
      let t0 = performance.now();
      const a = await pipeline.run(prompt);
      const coldMs = performance.now() - t0;
      let repeatMs = NaN;
      let b: PipelineResult | undefined;
      if (sc.repeat) {
        t0 = performance.now();
        b = await pipeline.run(prompt);
        repeatMs = performance.now() - t0;
      }
      const floorMs = await transportFloorMs(srv.url, sc, r);
      if (r < warmup) continue;
      floor.push(floorMs);
      cold.push(coldMs);
      speedup.push(a.stats.parallelSpeedup);
      coldCalls = callsOf(a);
      if (b) { repeat.push(repeatMs); repeatCalls = callsOf(b); }
    }
  } finally {
    await srv.close();
  }
  // Embedding the last step is one more round trip after it arrives.
  const criticalPathMs = (sc.horizon + 1 + (sc.embeddings ? 1 : 0)) * sc.latencyMs;
  return {
    scenario: sc.name, server, k: sc.k, horizon: sc.horizon, latencyMs: sc.latencyMs, maxParallel: sc.maxParallel, ignoreN: sc.ignoreN, embeddings: sc.embeddings, runs,
    criticalPathMs,
    transportFloor: { medianMs: median(floor), minMs: Math.min(...floor) },
    cold: { medianMs: median(cold), minMs: Math.min(...cold), maxMs: Math.max(...cold), targetMs: 1.3 * criticalPathMs, calls: coldCalls, expectedGenerations: sc.k + sc.k * sc.horizon, medianParallelSpeedup: median(speedup) },
    repeat: sc.repeat ? { medianMs: median(repeat), minMs: Math.min(...repeat), maxMs: Math.max(...repeat), targetMs: 5, calls: repeatCalls } : null,
  };
}

/** The flags `ecr bench-pipeline` accepts; HELP explains each (test/cli-surface.test.ts checks). */
export const OPTIONS = {
  server: { type: 'string', default: 'child' },
  runs: { type: 'string', default: '7' },
  scenario: { type: 'string', default: 'all' },
  json: { type: 'boolean', default: false },
  gateway: { type: 'string' },
  duration: { type: 'string', default: '30' },
  redis: { type: 'string' },
  help: { type: 'boolean', short: 'h', default: false },
} as const satisfies NonNullable<ParseArgsConfig['options']>;

export async function main(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: OPTIONS,
      strict: true, allowPositionals: false,
    }));
  } catch (e) {
    throw new UsageError(`${(e as Error).message}\n${USAGE}`);
  }
  if (values.help) { process.stdout.write(HELP + '\n'); return 0; }
  if (values.gateway !== undefined) {
    return (await import('../bench/gateway.js')).runGatewayBench(values.gateway, { runs: argv.includes('--runs') ? Number(values.runs) : undefined, durationS: Number(values.duration), json: values.json, redis: values.redis });
  }
  if (values.server !== 'inproc' && values.server !== 'child') throw new UsageError(`--server must be inproc or child\n${USAGE}`);
  const runs = Number(values.runs);
  if (!Number.isInteger(runs) || runs < 1) throw new UsageError(`--runs must be a positive integer\n${USAGE}`);
  const names = values.scenario === 'all' ? Object.keys(SCENARIOS) : [values.scenario!];
  for (const n of names) if (!SCENARIOS[n]) throw new UsageError(`unknown scenario "${n}"\n${USAGE}`);

  const results = [];
  for (const n of names) results.push(await runScenario(SCENARIOS[n], values.server, runs));
  if (values.json) {
    process.stdout.write(JSON.stringify({ node: process.version, results }) + '\n');
    return 0;
  }
  const f = (x: number) => x.toFixed(1);
  for (const r of results) {
    const c = r.cold.calls!;
    process.stdout.write(
      `${r.scenario}: K=${r.k} H=${r.horizon} latency=${r.latencyMs}ms maxParallel=${r.maxParallel}${r.ignoreN ? ' (server ignores n)' : ''}${r.embeddings ? ' (embedding model)' : ''} server=${r.server} runs=${r.runs}\n` +
      `  floor   median ${f(r.transportFloor.medianMs)} ms (min ${f(r.transportFloor.minMs)}): the same HTTP call chain, transport and JSON only\n` +
      `  cold    median ${f(r.cold.medianMs)} ms (min ${f(r.cold.minMs)}, max ${f(r.cold.maxMs)}); target <= ${f(r.cold.targetMs)} ms (critical path ${r.criticalPathMs} ms)${r.cold.medianMs <= r.cold.targetMs ? '' : '  MISSED'}\n` +
      `          generations ${c.generations} (expected K+K*H = ${r.cold.expectedGenerations}); HTTP chat requests ${c.generateRequests} generate + ${c.unrollRequests} unroll; embed requests ${c.embedRequests}; parallel speedup ${f(r.cold.medianParallelSpeedup)}x\n`,
    );
    if (r.repeat) {
      const rc = r.repeat.calls!;
      process.stdout.write(`  repeat  median ${r.repeat.medianMs.toFixed(2)} ms (min ${r.repeat.minMs.toFixed(2)}, max ${r.repeat.maxMs.toFixed(2)}); target <= 5 ms${r.repeat.medianMs <= 5 ? '' : '  MISSED'}; chat requests ${rc.generateRequests + rc.unrollRequests}\n`);
    }
  }
  return 0;
}
