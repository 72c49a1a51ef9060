/**
 * Benchmarks of `ecr serve` (not tests), through the official `openai` client (a devDependency:
 * run from a checkout). The loopback upstream and the gateway each run in their own process, as
 * they would in production; the client runs here.
 *   overhead     K=4, H=1, 20 ms upstream: gateway median (openai client, and a bare node:http client)
 *                vs the library pipeline's, alternating, same run.
 *   concurrency  64 clients, warmed up until the caches are full, then --duration s: req/s, p50/p99,
 *                server CPU per request, server RSS and heap at the start vs the end of the measured run.
 *   passthrough  a non-ECR request via the gateway vs straight to the upstream (0 ms upstream): p50 difference.
 *   l2-hit       K=4, H=1, 20 ms upstream, --redis: gateway A fills Redis with seeded requests; a fresh gateway
 *                process B (its L1 empty for each of them) answers each once, from Redis: median, p99; and the
 *                same for the library pipeline: a new EcrPipeline (empty L1) per request, sharing one store.
 *   cache-overhead  cold K=4, H=1 requests (distinct prompts, seeded) to a gateway with --redis and to one
 *                without, alternating: the p50 difference is what the Redis tier adds to a miss; and the
 *                same for the library pipeline (one pipeline with a store, one without).
 */
import { randomUUID } from 'node:crypto';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { UsageError } from '../core/errors.js';
import { postText } from '../llm/http-transport.js';
import { OpenAICompatibleProvider } from '../llm/openai-compatible.js';
import { EcrPipeline } from '../pipeline/pipeline.js';
import { RedisStore } from '../cache/redis-store.js';

interface Child {
  url: string;
  proc: ChildProcess;
  close(): Promise<void>;
}

async function child(args: string[], pick: (line: string) => string | undefined): Promise<Child> {
  const proc = spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: proc.stdout });
  const url = await new Promise<string>((resolve, reject) => {
    lines.on('line', (l) => {
      const u = pick(l);
      if (u) resolve(u);
    });
    proc.once('exit', (c) => reject(new Error(`${args[0]} exited (${c}) before listening`)));
  });
  return {
    url,
    proc,
    close: async () => {
      proc.stdin.end();
      proc.kill('SIGTERM');
      if (proc.exitCode === null) await once(proc, 'exit');
    },
  };
}

const dist = (p: string) => fileURLToPath(new URL(p, import.meta.url));

function loopback(latencyMs: number) {
  return child([dist('../testing/loopback-main.js'), '--latency', String(latencyMs)], (l) => (JSON.parse(l) as { url?: string }).url);
}

function gateway(upstream: string, extra: string[] = []) {
  return child(
    [dist('../cli.js'), 'serve', '--upstream', upstream, '--port', '0', '--log-level', 'info', '--max-concurrent', '1024', '--retries', '0', ...extra],
    (l) => {
      try {
        const j = JSON.parse(l) as { msg?: string; url?: string };
        return j.msg === 'ecr serve listening' ? j.url : undefined;
      } catch {
        return undefined;
      }
    },
  );
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))];
};
const r2 = (x: number) => Math.round(x * 100) / 100;

async function openaiClient(baseURL: string) {
  let OpenAI;
  try {
    OpenAI = (await import('openai')).default;
  } catch {
    throw new UsageError('the gateway benchmarks need the openai package (a devDependency): run them from a checkout after npm ci');
  }
  return new OpenAI({ baseURL, apiKey: 'sk-bench', maxRetries: 0 });
}

const ECR_BODY = { k: 4, horizon: 1, fixedK: true, audit: 'none' };

async function overhead(runs: number) {
  const up = await loopback(20);
  const gw = await gateway(up.url);
  try {
    const client = await openaiClient(`${gw.url}/v1`);
    const pipeline = new EcrPipeline({ provider: new OpenAICompatibleProvider({ baseUrl: up.url, model: 'loop' }), k: 4, horizon: 1, adaptiveK: false });
    const lib: number[] = [],
      gate: number[] = [],
      bare: number[] = [];
    const one = async (i: number) => {
      const prompt = `Bench question ${i}: what is the capital of France?`;
      let t = performance.now();
      await pipeline.run(prompt);
      lib.push(performance.now() - t);
      t = performance.now();
      await client.chat.completions.create({ model: 'ecr/loop', messages: [{ role: 'user', content: prompt }], ecr: ECR_BODY } as never);
      gate.push(performance.now() - t);
      // The same request from a bare node:http client: what the gateway costs without the SDK's own time.
      t = performance.now();
      const res = await postText(
        `${gw.url}/v1/chat/completions`,
        { 'content-type': 'application/json' },
        JSON.stringify({ model: 'ecr/loop', messages: [{ role: 'user', content: `${prompt} (bare)` }], ecr: ECR_BODY }),
      );
      if (!res.ok) throw new Error(`gateway answered ${res.status}: ${res.body.slice(0, 200)}`);
      bare.push(performance.now() - t);
    };
    for (let i = 0; i < 5; i++) await one(-1 - i); // warm-up
    lib.length = 0;
    gate.length = 0;
    bare.length = 0;
    for (let i = 0; i < runs; i++) await one(i);
    return {
      scenario: 'overhead',
      runs,
      libraryP50Ms: r2(pct(lib, 0.5)),
      gatewayP50Ms: r2(pct(gate, 0.5)),
      overheadP50Ms: r2(pct(gate, 0.5) - pct(lib, 0.5)),
      bareClientOverheadP50Ms: r2(pct(bare, 0.5) - pct(lib, 0.5)),
      libraryP99Ms: r2(pct(lib, 0.99)),
      gatewayP99Ms: r2(pct(gate, 0.99)),
    };
  } finally {
    await gw.close();
    await up.close();
  }
}

async function metricsOf(url: string): Promise<{ cpu: number; rss: number; heap: number; cacheBytes: number }> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const get = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
  const cacheBytes = [...text.matchAll(/^ecr_cache_size_bytes\{[^}]*\} (\S+)$/gm)].reduce((a, m) => a + Number(m[1]), 0);
  return { cpu: get('ecr_process_cpu_seconds_total'), rss: get('ecr_process_resident_memory_bytes'), heap: get('ecr_nodejs_heap_size_used_bytes'), cacheBytes };
}

async function concurrency(clients: number, durationS: number) {
  const up = await loopback(20);
  const gw = await gateway(up.url);
  try {
    const client = await openaiClient(`${gw.url}/v1`);
    const call = (i: number) =>
      client.chat.completions.create({ model: 'ecr/loop', messages: [{ role: 'user', content: `Concurrent question ${i}?` }], ecr: ECR_BODY } as never);
    // Warm-up at full load until the caches stop growing (their byte estimate within 1% over
    // 5 s, at most 180 s): every request has a new prompt, so memory first grows by cache fill up
    // to the bound, and only the steady state after it says whether anything else grows.
    let n = 0;
    let warming = true;
    const warm = Promise.all(
      Array.from({ length: clients }, async () => {
        while (warming) {
          try {
            await call(n++);
          } catch {
            /* counted in the measured run only */
          }
        }
      }),
    );
    const warmT0 = performance.now();
    let last = (await metricsOf(gw.url)).cacheBytes;
    while (performance.now() - warmT0 < 180_000) {
      await new Promise((r) => setTimeout(r, 5000));
      const now = (await metricsOf(gw.url)).cacheBytes;
      if (now > 0 && now - last <= 0.01 * now) break;
      last = now;
    }
    warming = false;
    await warm;
    const warmUpS = r2((performance.now() - warmT0) / 1000);
    const start = await metricsOf(gw.url);
    const lat: number[] = [];
    let errors = 0;
    const t0 = performance.now();
    const end = t0 + durationS * 1000;
    // Memory over the run, every 5 s: RSS, heap used, and what the pipeline's caches hold by their estimate.
    const mb = (x: number) => r2(x / 2 ** 20);
    const memory: Array<{ atS: number; rssMB: number; heapMB: number; cacheEstMB: number }> = [];
    const sample = async () => {
      const m = await metricsOf(gw.url);
      memory.push({ atS: r2((performance.now() - t0) / 1000), rssMB: mb(m.rss), heapMB: mb(m.heap), cacheEstMB: mb(m.cacheBytes) });
    };
    const sampler = setInterval(() => {
      void sample();
    }, 5000);
    await Promise.all(
      Array.from({ length: clients }, async () => {
        while (performance.now() < end) {
          const t = performance.now();
          try {
            await call(n++);
            lat.push(performance.now() - t);
          } catch {
            errors++;
          }
        }
      }),
    );
    clearInterval(sampler);
    const wall = (performance.now() - t0) / 1000;
    const stop = await metricsOf(gw.url);
    return {
      scenario: 'concurrency',
      clients,
      durationS: r2(wall),
      requests: lat.length,
      errors,
      reqPerS: r2(lat.length / wall),
      p50Ms: r2(pct(lat, 0.5)),
      p99Ms: r2(pct(lat, 0.99)),
      serverCpuMsPerRequest: r2(((stop.cpu - start.cpu) * 1000) / lat.length),
      warmUpS,
      serverRssStartMB: mb(start.rss),
      serverRssEndMB: mb(stop.rss),
      serverHeapStartMB: mb(start.heap),
      serverHeapEndMB: mb(stop.heap),
      serverCacheEstStartMB: mb(start.cacheBytes),
      serverCacheEstEndMB: mb(stop.cacheBytes),
      memory,
    };
  } finally {
    await gw.close();
    await up.close();
  }
}

async function passthrough(runs: number) {
  const up = await loopback(0);
  const gw = await gateway(up.url);
  try {
    const direct = await openaiClient(up.url);
    const via = await openaiClient(`${gw.url}/v1`);
    const d: number[] = [],
      v: number[] = [];
    const req = { model: 'loop', messages: [{ role: 'user' as const, content: 'Say hi' }] };
    for (let i = 0; i < 50; i++) {
      await direct.chat.completions.create(req);
      await via.chat.completions.create(req);
    }
    for (let i = 0; i < runs; i++) {
      let t = performance.now();
      await direct.chat.completions.create(req);
      d.push(performance.now() - t);
      t = performance.now();
      await via.chat.completions.create(req);
      v.push(performance.now() - t);
    }
    return { scenario: 'passthrough', runs, directP50Ms: r2(pct(d, 0.5)), gatewayP50Ms: r2(pct(v, 0.5)), addedP50Ms: r2(pct(v, 0.5) - pct(d, 0.5)) };
  } finally {
    await gw.close();
    await up.close();
  }
}

/** One seeded ECR request; its x-ecr-cache header and time. */
async function timedEcr(client: Awaited<ReturnType<typeof openaiClient>>, content: string, namespace: string): Promise<{ ms: number; cache: string | null }> {
  const t = performance.now();
  const { response } = await client.chat.completions
    .create({
      model: 'ecr/loop',
      seed: 7,
      messages: [{ role: 'user', content }],
      ecr: { ...ECR_BODY, cache: { namespace } },
    } as never)
    .withResponse();
  return { ms: performance.now() - t, cache: response.headers.get('x-ecr-cache') };
}

async function l2Hit(runs: number, redis: string) {
  const up = await loopback(20);
  const filler = await gateway(up.url, ['--redis', redis]);
  const fresh = await gateway(up.url, ['--redis', redis]);
  try {
    // A namespace of this run: entries of earlier runs on the same Redis are never hits here.
    const ns = `bench-${randomUUID().slice(0, 8)}`;
    const a = await openaiClient(`${filler.url}/v1`),
      b = await openaiClient(`${fresh.url}/v1`);
    const prompt = (i: number) => `L2 bench question ${i}: what is the capital of France?`;
    for (let i = -10; i < runs; i++) await timedEcr(a, prompt(i), ns);
    await new Promise((r) => setTimeout(r, 1000)); // the filler's writes leave after its answers
    for (let i = -10; i < 0; i++) await timedEcr(b, prompt(i), ns); // warm-up of B's code paths, not of its cache
    const l2: number[] = [],
      l1: number[] = [];
    let notHits = 0;
    for (let i = 0; i < runs; i++) {
      const r = await timedEcr(b, prompt(i), ns);
      if (r.cache !== 'hit') notHits++;
      l2.push(r.ms);
      l1.push((await timedEcr(b, prompt(i), ns)).ms); // the same again: now in B's own L1
    }
    const lib = await libraryL2Hit(up.url, redis, runs, ns);
    return {
      scenario: 'l2-hit',
      runs,
      l2HitP50Ms: r2(pct(l2, 0.5)),
      l2HitP99Ms: r2(pct(l2, 0.99)),
      l1HitP50Ms: r2(pct(l1, 0.5)),
      notHits,
      ...lib,
      targetP50Ms: 5,
    };
  } finally {
    await fresh.close();
    await filler.close();
    await up.close();
  }
}

/** The library pipeline's L2 hit: each request by a new pipeline (empty L1) sharing one Redis store. */
async function libraryL2Hit(upstream: string, redis: string, runs: number, ns: string) {
  return withStore(redis, async (store) => {
    const provider = new OpenAICompatibleProvider({ baseUrl: upstream, model: 'loop' });
    const make = () => new EcrPipeline({ provider, k: 4, horizon: 1, adaptiveK: false, sampling: { temperature: 0.8, seed: 7 }, cache: { redis: store } });
    const prompt = (i: number) => `Library L2 bench question ${i}: what is the capital of France?`;
    for (let i = -10; i < runs; i++) await make().run(prompt(i), { cache: { namespace: ns } });
    await store.idle();
    const l2: number[] = [],
      l1: number[] = [];
    let notHits = 0;
    for (let i = -10; i < runs; i++) {
      const p = make();
      let t = performance.now();
      const r = await p.run(prompt(i), { cache: { namespace: ns } });
      const ms = performance.now() - t;
      t = performance.now();
      await p.run(prompt(i), { cache: { namespace: ns } });
      if (i < 0) continue;
      l1.push(performance.now() - t);
      if (r.stats.cacheResult !== 'hit') notHits++;
      l2.push(ms);
    }
    return { libraryL2HitP50Ms: r2(pct(l2, 0.5)), libraryL2HitP99Ms: r2(pct(l2, 0.99)), libraryL1HitP50Ms: r2(pct(l1, 0.5)), libraryNotHits: notHits };
  });
}

async function cacheOverhead(runs: number, redis: string) {
  const up = await loopback(20);
  const withRedis = await gateway(up.url, ['--redis', redis]);
  const without = await gateway(up.url);
  try {
    const ns = `bench-${randomUUID().slice(0, 8)}`;
    const r = await openaiClient(`${withRedis.url}/v1`),
      n = await openaiClient(`${without.url}/v1`);
    const w: number[] = [],
      o: number[] = [];
    let notMisses = 0;
    for (let i = -10; i < runs; i++) {
      const withR = await timedEcr(r, `Cold question ${i} with Redis?`, ns);
      const withoutR = await timedEcr(n, `Cold question ${i} without Redis?`, ns);
      if (i < 0) continue;
      if (withR.cache !== 'miss') notMisses++;
      w.push(withR.ms);
      o.push(withoutR.ms);
    }
    const lib = await libraryColdOverhead(up.url, redis, runs, ns);
    return {
      scenario: 'cache-overhead',
      runs,
      withRedisP50Ms: r2(pct(w, 0.5)),
      withoutP50Ms: r2(pct(o, 0.5)),
      addedP50Ms: r2(pct(w, 0.5) - pct(o, 0.5)),
      withRedisP99Ms: r2(pct(w, 0.99)),
      withoutP99Ms: r2(pct(o, 0.99)),
      notMisses,
      ...lib,
      targetAddedP50Ms: 2,
    };
  } finally {
    await without.close();
    await withRedis.close();
    await up.close();
  }
}

/** The same for the library pipeline: cold requests with a Redis store against without, alternating. */
async function libraryColdOverhead(upstream: string, redis: string, runs: number, ns: string) {
  return withStore(redis, async (store) => {
    const provider = new OpenAICompatibleProvider({ baseUrl: upstream, model: 'loop' });
    const options = { provider, k: 4, horizon: 1, adaptiveK: false, sampling: { temperature: 0.8, seed: 7 } };
    const stored = new EcrPipeline({ ...options, cache: { redis: store } });
    const plain = new EcrPipeline(options);
    const w: number[] = [],
      o: number[] = [];
    for (let i = -10; i < runs; i++) {
      let t = performance.now();
      await stored.run(`Library cold question ${i} with Redis?`, { cache: { namespace: ns } });
      const withMs = performance.now() - t;
      t = performance.now();
      await plain.run(`Library cold question ${i} without Redis?`);
      if (i < 0) continue;
      w.push(withMs);
      o.push(performance.now() - t);
    }
    return { libraryWithRedisP50Ms: r2(pct(w, 0.5)), libraryWithoutP50Ms: r2(pct(o, 0.5)), libraryAddedP50Ms: r2(pct(w, 0.5) - pct(o, 0.5)) };
  });
}

/** Runs `fn` with a Redis store on `redis` that answers, closed afterwards. */
async function withStore<T>(redis: string, fn: (store: RedisStore) => Promise<T>): Promise<T> {
  const store = new RedisStore({ url: redis });
  try {
    if (!(await store.ready())) throw new Error(`redis at ${redis} does not answer`);
    return await fn(store);
  } finally {
    await store.close();
  }
}

export async function runGatewayBench(which: string, options: { runs?: number; durationS?: number; json?: boolean; redis?: string }): Promise<number> {
  const names = which === 'all' ? ['overhead', 'concurrency', 'passthrough'] : [which];
  const results: unknown[] = [];
  const redis = () => {
    if (!options.redis) throw new UsageError(`--gateway ${which} needs --redis URL (a Redis to measure against, e.g. redis-server --port 6390 --save '')`);
    return options.redis;
  };
  for (const n of names) {
    if (n === 'overhead') results.push(await overhead(options.runs ?? 40));
    else if (n === 'concurrency') results.push(await concurrency(64, options.durationS ?? 30));
    else if (n === 'passthrough') results.push(await passthrough(options.runs ?? 300));
    else if (n === 'l2-hit') results.push(await l2Hit(options.runs ?? 100, redis()));
    else if (n === 'cache-overhead') results.push(await cacheOverhead(options.runs ?? 100, redis()));
    else throw new UsageError(`--gateway must be overhead, concurrency, passthrough, l2-hit, cache-overhead or all, got ${JSON.stringify(n)}`);
    if (!options.json) process.stdout.write(JSON.stringify(results.at(-1)) + '\n');
  }
  if (options.json) process.stdout.write(JSON.stringify(results) + '\n');
  return 0;
}
