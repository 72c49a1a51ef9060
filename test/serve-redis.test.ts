/**
 * Gateway instances sharing one real Redis (the scenarios): what A computed B serves
 * without upstream calls, concurrent identical requests to A and B make one set of calls, and a
 * Redis stopped mid-run costs no request while readiness says "degraded"; restarted, it is used
 * again. Upstream calls are counted at the loopback upstream; clients are the official `openai` SDK.
 */
import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import OpenAI from 'openai';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { resetNDetection } from '../src/llm/sample-choices.js';
import { LoopbackServer } from '../src/testing/loopback-server.js';
import { ecrMetrics } from '../src/monitoring/process-metrics.js';
import { metricValue } from './helpers/metrics.js';
import { resolveServeConfig } from '../src/server/config.js';
import { startGateway } from '../src/server/app.js';
import { mergeSettings } from '../src/server/request-settings.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REDIS_SERVER_BIN, freePort, redisGate, sharedRedis, startRedisServer, type RedisServer } from './helpers/redis-server.js';

const gate = redisGate();
type Started = Awaited<ReturnType<typeof startGateway>>;
type Body = OpenAI.ChatCompletionCreateParamsNonStreaming;

let upstream: LoopbackServer;
let shared: { url: string; stop: () => Promise<void> };
const gateways: Started[] = [];
// The shared Redis outlives this file (CI runs one for every file): every prompt here is new.
const RUN = randomUUID().slice(0, 8);

async function gateway(redisUrl: string, extra: string[] = [], logs?: string[]): Promise<Started> {
  const config = resolveServeConfig(
    ['--upstream', upstream.url, '--port', '0', '--log-level', logs ? 'info' : 'silent', '--retries', '0', '--redis', redisUrl, ...extra],
    {},
  );
  if (config === 'help') throw new Error('unexpected help');
  const logStream = logs
    ? new Writable({
        write(chunk, _e, cb) {
          logs.push(...String(chunk).split('\n').filter(Boolean));
          cb();
        },
      })
    : undefined;
  const g = await startGateway(config, { logStream });
  gateways.push(g);
  return g;
}

const client = (g: Started) => new OpenAI({ baseURL: `${g.url}/v1`, apiKey: 'sk-unused', maxRetries: 0 });
const ask = (g: Started, content: string, ecr: Record<string, unknown> = {}) =>
  client(g)
    .chat.completions.create({
      model: 'ecr/loop',
      seed: 42,
      messages: [{ role: 'user', content }],
      ecr: { k: 4, horizon: 1, fixedK: true, ...ecr },
    } as Body)
    .withResponse();
const chatCalls = () => upstream.count('/v1/chat/completions');
const readiness = async (g: Started) => {
  const r = await fetch(`${g.url}/health/readiness`);
  return { status: r.status, body: (await r.json()) as Record<string, unknown> };
};

beforeAll(async () => {
  upstream = await LoopbackServer.start();
  if (gate.available) shared = await sharedRedis();
});
afterAll(async () => {
  await upstream.close();
  await shared?.stop();
});
beforeEach(() => {
  resetNDetection();
  upstream.clearLog();
  upstream.latencyMs = 0;
});
afterEach(async () => {
  for (const g of gateways.splice(0)) {
    g.app.server.closeAllConnections();
    await g.app.close();
  }
});

describe.skipIf(!gate.available)('ecr serve instances sharing one Redis', () => {
  it('an identical seeded request sent to A, then to B, makes zero upstream calls the second time', async () => {
    const a = await gateway(shared.url),
      b = await gateway(shared.url);
    const prompt = `What is the capital of France? ${RUN}`;
    const first = await ask(a, prompt);
    const callsA = chatCalls();
    expect(callsA).toBe(1 + 4); // one generate (n=4), four review steps
    expect(first.response.headers.get('x-ecr-cache')).toBe('miss');
    await a.gateway.redis!.idle();
    const second = await ask(b, prompt);
    expect(chatCalls()).toBe(callsA);
    expect(second.response.headers.get('x-ecr-cache')).toBe('hit');
    expect(second.data.choices[0].message.content).toBe(first.data.choices[0].message.content);
    expect(second.response.headers.get('x-ecr-cci')).toBe(first.response.headers.get('x-ecr-cci'));
    // Nothing came from B's own (empty) in-process tier.
    expect(b.gateway.root.cacheStats().every((c) => c.hits === 0)).toBe(true);
  });

  it('concurrent identical requests to A and B make one set of upstream calls', async () => {
    const a = await gateway(shared.url),
      b = await gateway(shared.url);
    upstream.latencyMs = 150; // both are waiting on each call while the other arrives
    const prompt = `Name a prime number. ${RUN}`;
    const [ra, rb] = await Promise.all([ask(a, prompt), ask(b, prompt)]);
    expect(ra.data.choices[0].message.content).toBe(rb.data.choices[0].message.content);
    const log = upstream.log.filter((e) => e.path === '/v1/chat/completions');
    expect(log.filter((e) => e.kind === 'generate')).toHaveLength(1);
    expect(log.filter((e) => e.kind === 'unroll')).toHaveLength(4);
    expect(new Set([ra.response.headers.get('x-ecr-cache'), rb.response.headers.get('x-ecr-cache')])).toEqual(new Set(['miss', 'hit']));
  });

  it('ecr.cache: namespace separates, no-cache recomputes, no-store leaves nothing, a longer horizon is a partial hit', async () => {
    const a = await gateway(shared.url),
      b = await gateway(shared.url);
    const prompt = `Is water wet? ${RUN}`;
    await ask(a, prompt, { cache: { namespace: 'tenant-1', ttl: 120 } });
    await a.gateway.redis!.idle();
    let calls = chatCalls();
    expect((await ask(b, prompt, { cache: { namespace: 'tenant-2' } })).response.headers.get('x-ecr-cache')).toBe('miss');
    expect(chatCalls()).toBeGreaterThan(calls);
    calls = chatCalls();
    expect((await ask(b, prompt, { cache: { namespace: 'tenant-1' } })).response.headers.get('x-ecr-cache')).toBe('hit');
    expect(chatCalls()).toBe(calls);
    const noCache = await ask(b, prompt, { cache: { namespace: 'tenant-1', 'no-cache': true } });
    expect(noCache.response.headers.get('x-ecr-cache')).toBe('miss');
    expect(chatCalls()).toBe(calls + 5);
    // H=2 reuses the candidates and step 1, and computes step 2.
    calls = chatCalls();
    expect((await ask(b, prompt, { horizon: 2, cache: { namespace: 'tenant-1' } })).response.headers.get('x-ecr-cache')).toBe('partial');
    expect(chatCalls()).toBe(calls + 4);

    const unstored = `Never stored ${RUN}`;
    await ask(a, unstored, { cache: { 'no-store': true } });
    await a.gateway.redis!.idle();
    calls = chatCalls();
    expect((await ask(a, unstored)).response.headers.get('x-ecr-cache')).toBe('miss');
    expect(chatCalls()).toBe(calls + 5);
  });

  it('rejects a bad ecr.cache with a 400 naming the field', async () => {
    const a = await gateway(shared.url);
    const cases: Array<[unknown, string]> = [
      [{ ttl: 0 }, 'ecr.cache.ttl'],
      [{ ttl: 1.5 }, 'ecr.cache.ttl'],
      [{ namespace: 'a:b' }, 'ecr.cache.namespace'],
      [{ 'no-cache': 'yes' }, 'ecr.cache.no-cache'],
      [{ 'no-store': 1 }, 'ecr.cache.no-store'],
      [{ ttls: 5 }, 'ecr.cache.ttls'],
      ['all', 'ecr.cache'],
    ];
    for (const [cache, param] of cases) {
      const err = await ask(a, 'x', { cache }).then(
        () => null,
        (e: unknown) => e,
      );
      expect(err, param).toBeInstanceOf(OpenAI.BadRequestError);
      expect((err as InstanceType<typeof OpenAI.BadRequestError>).param, JSON.stringify(cache)).toBe(param);
    }
    // Layers merge key by key: the server's default namespace stays under a request's no-cache.
    expect(mergeSettings({ cache: { namespace: 'tenant' } }, { cache: { noCache: true } }).cache).toEqual({ namespace: 'tenant', noCache: true });
    expect(() => resolveServeConfig(['--upstream', upstream.url, '--redis', 'redis-cluster://h:7000'], {})).toThrow(/--redis: .*Cluster is not supported/);
    expect(resolveServeConfig(['--upstream', upstream.url], { ECR_REDIS_URL: 'redis://127.0.0.1:6379', ECR_REDIS_TTL: '60' })).toMatchObject({
      redis: 'redis://127.0.0.1:6379',
      redisTtl: 60,
    });
  });
});

describe.skipIf(!gate.available)('Redis stopped mid-run', () => {
  let own: RedisServer;
  beforeAll(async () => {
    own = await startRedisServer();
  });
  afterAll(async () => {
    await own?.stop();
  });

  it('every request still succeeds and readiness shows degraded; restarted, the L2 hit counter moves again', async () => {
    const logs: string[] = [];
    // A short pause after a failure so the test sees Redis in use again soon after its restart.
    const a = await gateway(own.url, [], logs),
      b = await gateway(own.url);
    expect((await readiness(a)).body).toMatchObject({ status: 'ready', redis: 'ok' });
    await ask(a, `Before the outage ${RUN}`);

    await own.stop();
    for (let i = 0; i < 4; i++) {
      const r = await ask(i % 2 ? a : b, i < 2 ? `Before the outage ${RUN}` : `During the outage ${i} ${RUN}`);
      expect(r.data.choices[0].message.content).toMatch(/^\[c:[0-9a-f]+ s:0\]/);
    }
    const down = await readiness(a);
    expect(down.status).toBe(200);
    expect(down.body).toMatchObject({ status: 'ready', upstream: 'reachable', redis: 'degraded' });
    expect(await metricValue(ecrMetrics.redisUp)).toBe(0);
    expect(await metricValue(ecrMetrics.redisErrors, { op: 'connection', reason: 'connection' })).toBeGreaterThan(0);
    const warnings = logs.map((l) => JSON.parse(l)).filter((l) => /^redis cache degraded/.test(l.msg));
    expect(warnings).toHaveLength(1); // rate-limited: one line for the whole outage so far
    expect(warnings[0].level).toBe(40);

    await own.start(); // same port, empty (no persistence)
    await vi.waitFor(async () => expect((await readiness(a)).body.redis).toBe('ok'), { timeout: 10_000, interval: 100 });
    await vi.waitFor(async () => expect((await readiness(b)).body.redis).toBe('ok'), { timeout: 10_000, interval: 100 });
    expect(logs.map((l) => JSON.parse(l).msg)).toContain('redis cache available again: using the shared tier');
    const hitsBefore = await metricValue(ecrMetrics.cacheLookups, { cache: 'steps', tier: 'l2', outcome: 'hit' });
    const prompt = `After the restart ${RUN}`;
    await ask(a, prompt);
    await a.gateway.redis!.idle();
    const calls = chatCalls();
    const fromB = await ask(b, prompt);
    expect(fromB.response.headers.get('x-ecr-cache')).toBe('hit');
    expect(chatCalls()).toBe(calls);
    expect(await metricValue(ecrMetrics.cacheLookups, { cache: 'steps', tier: 'l2', outcome: 'hit' })).toBe(hitsBefore + 4);
    const metrics = await (await fetch(`${b.url}/metrics`)).text();
    expect(metrics).toMatch(/^ecr_cache_lookups_total\{cache="steps",tier="l2",outcome="hit"\} [1-9]\d*$/m);
    expect(metrics).toMatch(/^ecr_redis_up 1$/m);
  }, 90_000);
});

describe.skipIf(!gate.available)('behind Redis Sentinel', () => {
  let primary: RedisServer;
  let sentinel: ChildProcess;
  let sentinelPort: number;
  let dir: string;
  beforeAll(async () => {
    primary = await startRedisServer();
    sentinelPort = await freePort();
    // Sentinel rewrites its config file, so it gets a file of its own.
    dir = mkdtempSync(join(tmpdir(), 'ecr-sentinel-'));
    const conf = join(dir, 'sentinel.conf');
    writeFileSync(conf, `port ${sentinelPort}\nbind 127.0.0.1\ndir ${dir}\nsentinel monitor primary1 127.0.0.1 ${primary.port} 1\n`);
    sentinel = spawn(REDIS_SERVER_BIN, [conf, '--sentinel'], { stdio: ['ignore', 'ignore', 'inherit'] });
    const probe = new (await import('ioredis')).Redis({
      port: sentinelPort,
      host: '127.0.0.1',
      lazyConnect: true,
      retryStrategy: () => 50,
      maxRetriesPerRequest: 1,
    });
    probe.on('error', () => {}); // refused until the sentinel listens
    await vi.waitFor(async () => expect(await probe.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', 'primary1')).toEqual(['127.0.0.1', String(primary.port)]), {
      timeout: 5000,
      interval: 50,
    });
    probe.disconnect();
  });
  afterAll(async () => {
    if (sentinel && sentinel.exitCode === null) {
      const exited = new Promise((r) => sentinel.once('exit', r));
      sentinel.kill('SIGKILL');
      await exited;
    }
    await primary?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('redis+sentinel:// finds the primary through the sentinel; B serves what A computed', async () => {
    const url = `redis+sentinel://127.0.0.1:${sentinelPort}/primary1`;
    const a = await gateway(url),
      b = await gateway(url);
    expect((await readiness(a)).body).toMatchObject({ status: 'ready', redis: 'ok' });
    const prompt = `Through the sentinel ${RUN}`;
    await ask(a, prompt);
    await a.gateway.redis!.idle();
    const calls = chatCalls();
    expect((await ask(b, prompt)).response.headers.get('x-ecr-cache')).toBe('hit');
    expect(chatCalls()).toBe(calls);
  });
});
