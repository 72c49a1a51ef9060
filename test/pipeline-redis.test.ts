/**
 * The library pipeline and `ecr run` with the shared Redis tier: a fresh pipeline (empty L1) is
 * served from Redis with the same result and no calls, remote embeddings keep one batched request
 * per step round, and `ecr run --redis` persists across runs, with --no-cache and bad flags.
 */
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { RedisStore } from '../src/cache/redis-store.js';
import { OpenAICompatibleProvider } from '../src/llm/openai-compatible.js';
import { resetNDetection } from '../src/llm/sample-choices.js';
import { LoopbackServer } from '../src/testing/loopback-server.js';
import { EcrPipeline, type PipelineOptions } from '../src/pipeline/pipeline.js';
import { redisGate, sharedRedis } from './helpers/redis-server.js';

const gate = redisGate();
const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const CLI = path.join(ROOT, 'dist', 'cli.js');
const RUN = randomUUID().slice(0, 8);

let server: LoopbackServer;
let redis: { url: string; stop: () => Promise<void> };
let store: RedisStore;
let raw: Redis;
const rawKeys = (pattern: string) => raw.keys(pattern);

beforeAll(async () => {
  server = await LoopbackServer.start();
  if (!gate.available) return;
  redis = await sharedRedis();
  store = new RedisStore({ url: redis.url });
  expect(await store.ready()).toBe(true);
  raw = new Redis(redis.url);
});
afterAll(async () => {
  raw?.disconnect();
  await store?.close();
  await server.close();
  await redis?.stop();
});
beforeEach(() => {
  server.clearLog();
  resetNDetection();
});

function pipeline(options: Partial<PipelineOptions> & { embeddingModel?: string } = {}) {
  const provider = new OpenAICompatibleProvider({ baseUrl: server.url, model: 'test-model', retry: { retries: 0 }, embeddingModel: options.embeddingModel });
  return new EcrPipeline({ provider, adaptiveK: false, backend: 'cpu', k: 4, horizon: 2, sampling: { seed: 9 }, cache: { redis: store }, ...options });
}

function ecr(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { cwd: ROOT, env: { PATH: process.env.PATH ?? '' }, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr });
    });
  });
}

describe.skipIf(!gate.available)('the pipeline with a Redis tier', () => {
  it('a fresh pipeline is served from Redis: the same result, no calls, every lookup an L2 hit', async () => {
    const prompt = `Why is the sky blue? ${RUN}`;
    const first = await pipeline({ embeddingModel: 'emb' }).run(prompt);
    // Remote embeddings still go out as one batched request per step round (H + 1 = 3).
    expect(server.log.filter((e) => e.path === '/v1/embeddings').map((e) => e.inputs)).toEqual([5, 4, 4]);
    expect(first.stats.cacheResult).toBe('miss');
    await store.idle();
    server.clearLog();
    const second = await pipeline({ embeddingModel: 'emb' }).run(prompt);
    expect(server.log).toHaveLength(0);
    expect(second.stats.cacheResult).toBe('hit');
    expect(second.response).toBe(first.response);
    expect(second.metrics).toEqual(first.metrics);
    expect(second.candidates.map((c) => c.steps!.map((s) => s.E))).toEqual(first.candidates.map((c) => c.steps!.map((s) => s.E)));
    expect(second.candidates.every((c) => c.steps!.every((s) => s.cached))).toBe(true);
    for (const c of ['candidates', 'steps', 'embeddings']) {
      expect(second.stats.cache[c].l1Hits, c).toBe(0);
      expect(second.stats.cache[c].l2Hits, c).toBe(second.stats.cache[c].hits);
      expect(second.stats.cache[c].misses, c).toBe(0);
    }
    // Vectors from a local safety scorer are arithmetic on the cached inputs: computed, not fetched.
    expect(second.stats.cache.vectors).toMatchObject({ l2Hits: 0, misses: 12 });
  });

  it('keeps what a local embedder and scorer compute out of Redis; a remote safety scorer puts the vectors there', async () => {
    const prompt = `Local signals only ${RUN}`;
    const ns = `local-${RUN}`;
    await pipeline().run(prompt, { cache: { namespace: ns } });
    await store.idle();
    const keys = async (kind: string) => (await rawKeys(`ecr:v1:${ns}:${kind}:*`)).length;
    expect(await keys('candidates')).toBe(1);
    expect(await keys('steps')).toBe(8);
    expect(await keys('embeddings')).toBe(0);
    expect(await keys('vectors')).toBe(0);
    const remoteSafety = { id: 'remote-moderation-v1', remote: true, score: async () => 1 };
    const ns2 = `remote-${RUN}`;
    await pipeline({ safety: remoteSafety }).run(prompt, { cache: { namespace: ns2 } });
    await store.idle();
    expect((await rawKeys(`ecr:v1:${ns2}:vectors:*`)).length).toBe(12);
    const again = await pipeline({ safety: remoteSafety }).run(prompt, { cache: { namespace: ns2 } });
    expect(again.stats.cache.vectors).toMatchObject({ l2Hits: 12, misses: 0 });
  });

  it('rejects a malformed cache control naming the field', async () => {
    await expect(pipeline().run('x', { cache: { ttlSeconds: 0 } })).rejects.toThrow(/cache\.ttlSeconds must be an integer/);
    await expect(pipeline().run('x', { cache: { namespace: 'has space' } })).rejects.toThrow(/cache\.namespace/);
  });
});

describe.skipIf(!gate.available)('ecr run --redis', () => {
  it('a second run is served from Redis without calls; --no-cache calls again; a bad URL is exit 2', async () => {
    const args = [
      'run',
      `Is 1013 prime? ${RUN}`,
      '--base-url',
      server.url,
      '--model',
      'm',
      '-k',
      '3',
      '--fixed-k',
      '--horizon',
      '1',
      '--seed',
      '4',
      '--redis',
      redis.url,
      '--json',
    ];
    const first = await ecr(args);
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    const a = JSON.parse(first.stdout);
    expect(a.stats.cacheResult).toBe('miss');
    const calls = server.count();
    expect(calls).toBe(1 + 3);
    const second = JSON.parse((await ecr(args)).stdout);
    expect(server.count()).toBe(calls);
    expect(second.stats.cacheResult).toBe('hit');
    expect(second.stats.cache.steps).toMatchObject({ l2Hits: 3, misses: 0 });
    expect(second.response).toBe(a.response);
    const fresh = JSON.parse((await ecr([...args, '--no-cache'])).stdout);
    expect(fresh.stats.cacheResult).toBe('miss');
    expect(server.count()).toBe(calls + 4);

    const human = await ecr(args.filter((x) => x !== '--json'));
    expect(human.stdout).toMatch(/^cache hit \(0 in-process hits, \d+ Redis hits\)$/m);
    for (const bad of [
      ['--redis', 'memcached://h:1'],
      ['--cache-namespace', 'a:b'],
      ['--redis-ttl', '0'],
    ]) {
      const r = await ecr([...args.slice(0, -3), ...bad]);
      expect(r.code, bad.join(' ')).toBe(2);
      expect(r.stderr).toContain(bad[0]);
      expect(r.stderr).not.toMatch(/^\s+at /m);
    }
  });
});
