/**
 * The pipeline benchmark of `ecr bench-pipeline`: the full pipeline timed against the loopback
 * OpenAI-compatible server, beside the bare HTTP call chain. Scenarios (the targets):
 *   small  K=4, H=1, 20 ms per call: cold request <= 1.3 x (H+1) x 20 ms = 52 ms with K + K*H
 *          generations; a repeat with the same (seeded) candidates <= 5 ms with no unroll calls.
 *   ignore-n  the same against a server that ignores `n` (one HTTP request per generation).
 *   small-embed  the small scenario with the server's embedding model (/embeddings calls, 20 ms
 *          each too): the step-H embeddings add a third serial round trip, (H+2) x 20 ms = 60 ms.
 *   large  K=64, H=4, 50 ms per call, maxParallel 64: <= 1.3 x the critical path (H+1) x 50 ms.
 * The server runs in this process ('inproc') or in a child process ('child', its own event loop,
 * as a real server would be).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { postText } from '../llm/http-transport.js';
import { OpenAICompatibleProvider } from '../llm/openai-compatible.js';
import { resetNDetection } from '../llm/sample-choices.js';
import { LoopbackServer } from '../testing/loopback-server.js';
import { EcrPipeline } from '../pipeline/pipeline.js';
import type { PipelineResult } from '../pipeline/types.js';

export type ServerMode = 'inproc' | 'child';

export interface Scenario {
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

export const SCENARIOS: Record<string, Scenario> = {
  small: { name: 'small', k: 4, horizon: 1, latencyMs: 20, maxParallel: 16, ignoreN: false, repeat: true, embeddings: false },
  'ignore-n': { name: 'ignore-n', k: 4, horizon: 1, latencyMs: 20, maxParallel: 16, ignoreN: true, repeat: true, embeddings: false },
  'small-embed': { name: 'small-embed', k: 4, horizon: 1, latencyMs: 20, maxParallel: 16, ignoreN: false, repeat: true, embeddings: true },
  large: { name: 'large', k: 64, horizon: 4, latencyMs: 50, maxParallel: 64, ignoreN: false, repeat: false, embeddings: false },
};

interface ServerHandle {
  url: string;
  close(): Promise<void>;
}

async function startServer(mode: ServerMode, latencyMs: number, ignoreN: boolean): Promise<ServerHandle> {
  if (mode === 'inproc') {
    const s = await LoopbackServer.start({ latencyMs, ignoreN });
    return { url: s.url, close: () => s.close() };
  }
  const script = fileURLToPath(new URL('../testing/loopback-main.js', import.meta.url));
  const child: ChildProcess = spawn(process.execPath, [script, '--latency', String(latencyMs), ...(ignoreN ? ['--ignore-n'] : [])], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout! });
  const [first] = (await Promise.race([
    once(lines, 'line'),
    once(child, 'exit').then(() => {
      throw new Error('loopback child exited before listening');
    }),
  ])) as [string];
  const { url } = JSON.parse(first) as { url: string };
  return {
    url,
    close: async () => {
      child.stdin!.end();
      if (child.exitCode === null) await once(child, 'exit');
    },
  };
}

/**
 * The transport floor: the same chain of HTTP calls (one generate request, or K with a server that
 * ignores n, then H review calls per candidate, chained per candidate) made with the provider's
 * transport (postText) and JSON parsing, and nothing else. The pipeline's overhead is its time above this floor.
 */
async function transportFloorMs(url: string, sc: Scenario, run: number): Promise<number> {
  const post = (messages: unknown, n: number) =>
    postText(
      `${url}/chat/completions`,
      { 'content-type': 'application/json' },
      JSON.stringify({ model: 'loopback', messages, n, seed: run, logprobs: true, top_logprobs: 5 }),
    ).then((r) => JSON.parse(r.body) as { choices: Array<{ message: { content: string } }> });
  const prompt = [{ role: 'user', content: `Floor question ${run}` }];
  const t0 = performance.now();
  const texts = sc.ignoreN
    ? await Promise.all(Array.from({ length: sc.k }, () => post(prompt, 1).then((j) => j.choices[0].message.content)))
    : (await post(prompt, sc.k)).choices.map((c) => c.message.content);
  await Promise.all(
    texts.map(async (text) => {
      let prev = text;
      for (let h = 1; h <= sc.horizon; h++) {
        const j = await post([...prompt, { role: 'assistant', content: prev }, { role: 'user', content: 'Review.' }], 1);
        prev = j.choices[0].message.content;
      }
    }),
  );
  return performance.now() - t0;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

interface CallCount {
  generateRequests: number;
  unrollRequests: number;
  generations: number;
  embedRequests: number;
}

function callsOf(r: PipelineResult): CallCount {
  const c = r.stats.calls;
  return {
    generateRequests: c.generate.requests,
    unrollRequests: c.unroll.requests,
    generations: c.generate.choices + c.unroll.choices,
    embedRequests: c.embed.requests,
  };
}

/** Times one scenario: `runs` timed runs after 2 warm-up runs, each a fresh pipeline (cold caches). */
export async function runScenario(sc: Scenario, server: ServerMode, runs: number) {
  resetNDetection();
  const srv = await startServer(server, sc.latencyMs, sc.ignoreN);
  const provider = new OpenAICompatibleProvider({
    baseUrl: srv.url,
    model: 'loopback',
    timeoutMs: 30_000,
    embeddingModel: sc.embeddings ? 'loopback-embed' : undefined,
  });
  const cold: number[] = [],
    repeat: number[] = [],
    floor: number[] = [];
  let coldCalls: CallCount | undefined, repeatCalls: CallCount | undefined;
  const speedup: number[] = [];
  const warmup = 2;
  try {
    for (let r = 0; r < warmup + runs; r++) {
      // A fresh pipeline per run: cold caches. The seed makes sampling deterministic, so the
      // repeat may be served from the candidate cache.
      const pipeline = new EcrPipeline({
        provider,
        k: sc.k,
        horizon: sc.horizon,
        adaptiveK: false,
        maxParallel: sc.maxParallel,
        sampling: { temperature: 0.8, seed: 1000 + r },
        backend: 'auto',
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
      if (b) {
        repeat.push(repeatMs);
        repeatCalls = callsOf(b);
      }
    }
  } finally {
    await srv.close();
  }
  // Embedding the last step is one more round trip after it arrives.
  const criticalPathMs = (sc.horizon + 1 + (sc.embeddings ? 1 : 0)) * sc.latencyMs;
  return {
    scenario: sc.name,
    server,
    k: sc.k,
    horizon: sc.horizon,
    latencyMs: sc.latencyMs,
    maxParallel: sc.maxParallel,
    ignoreN: sc.ignoreN,
    embeddings: sc.embeddings,
    runs,
    criticalPathMs,
    transportFloor: { medianMs: median(floor), minMs: Math.min(...floor) },
    cold: {
      medianMs: median(cold),
      minMs: Math.min(...cold),
      maxMs: Math.max(...cold),
      targetMs: 1.3 * criticalPathMs,
      calls: coldCalls,
      expectedGenerations: sc.k + sc.k * sc.horizon,
      medianParallelSpeedup: median(speedup),
    },
    repeat: sc.repeat ? { medianMs: median(repeat), minMs: Math.min(...repeat), maxMs: Math.max(...repeat), targetMs: 5, calls: repeatCalls } : null,
  };
}
