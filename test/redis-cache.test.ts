/**
 * The shared cache tier against a real Redis: value layouts, key names, TTLs, per-request cache
 * control, the cross-instance single flight (pub/sub fill, a holder's failure, a crashed holder's
 * lock expiring) and a Redis that is not there.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { CacheDecodeError, choicesCodec, float32Codec, float64Codec, stepCodec, type Codec } from '../src/cache/redis-codec.js';
import { KeyedCache } from '../src/cache/keyed-cache.js';
import { RedisStore } from '../src/cache/redis-store.js';
import { TieredCache } from '../src/cache/tiered-cache.js';
import { fillChannel, lockKey, redisKey, type CacheKind } from '../src/cache/redis-keys.js';
import { tupleKey } from '../src/cache/canonical-json.js';
import { parseRedisUrl } from '../src/cache/redis-url.js';
import { redactUrl } from '../src/server/app.js';
import { ecrMetrics } from '../src/monitoring/process-metrics.js';
import { metricValue } from './helpers/metrics.js';
import { freePort, redisGate, sharedRedis, startRedisServer } from './helpers/redis-server.js';

const gate = redisGate();
let redis: { url: string; stop: () => Promise<void> };
let raw: Redis;
const stores: RedisStore[] = [];

async function store(options: Partial<ConstructorParameters<typeof RedisStore>[0]> = {}): Promise<RedisStore> {
  const s = new RedisStore({ url: redis.url, onWarn: () => {}, ...options });
  stores.push(s);
  expect(await s.ready()).toBe(true);
  return s;
}

function tier<V extends NonNullable<unknown>>(kind: CacheKind, s: RedisStore | null, codec: Codec<V>, lock = true): TieredCache<V> {
  return new TieredCache(kind, new KeyedCache<V>(kind, { maxEntries: 100 }), s ? { store: s, codec, lock } : null);
}

const hash = (x: string) => tupleKey('test', x, Math.random());

beforeAll(async () => {
  if (!gate.available) return;
  redis = await sharedRedis();
  raw = new Redis(redis.url);
});
afterAll(async () => {
  for (const s of stores) await s.close();
  raw?.disconnect();
  await redis?.stop();
});

describe('value layouts', () => {
  it('vectors are their element bytes: Float32 for embeddings, Float64 for evaluative vectors, exactly', () => {
    const e = new Float32Array([0.1, -2.5, 3e-8, 1 / 3]);
    const b = float32Codec.encode(e);
    expect(b.byteLength).toBe(16);
    expect(Array.from(float32Codec.decode(b))).toEqual(Array.from(e));
    const v = new Float64Array([0.123456789012345, 1, 0, 0.5, 1 / 7]);
    expect(float64Codec.encode(v).byteLength).toBe(40);
    expect(Array.from(float64Codec.decode(float64Codec.encode(v)))).toEqual(Array.from(v));
    // Redis replies sit at arbitrary offsets of a larger buffer.
    const shifted = Buffer.concat([Buffer.from([7]), float64Codec.encode(v)]).subarray(1);
    expect(Array.from(float64Codec.decode(shifted))).toEqual(Array.from(v));
    expect(() => float32Codec.decode(Buffer.alloc(6))).toThrow(CacheDecodeError);
  });

  it('a step with logprobs round-trips and is smaller than its JSON', () => {
    const step = {
      text: 'The answer is Paris.',
      finishReason: 'stop',
      systemFingerprint: 'fp_1',
      logprobs: ['The', ' answer', ' is', ' Paris.'].map((token, i) => ({
        token,
        logprob: -0.1 * (i + 1),
        top: [
          { token, logprob: -0.1 * (i + 1) },
          { token: 'alt', logprob: -3.25 },
        ],
      })),
    };
    const b = stepCodec.encode(step);
    expect(stepCodec.decode(b)).toEqual(step);
    expect(b.byteLength).toBeLessThan(Buffer.byteLength(JSON.stringify(step)) / 1.5);
    const plain = { text: 'no logprobs', logprobs: null };
    expect(stepCodec.decode(stepCodec.encode(plain))).toEqual(plain);
    expect(() => stepCodec.decode(Buffer.from('not msgpack at all'))).toThrow(CacheDecodeError);
  });

  it('a candidate set keeps its order and each choice', () => {
    const choices = [
      { text: 'a', logprobs: null, finishReason: 'length' },
      { text: 'b', logprobs: [{ token: 'b', logprob: -0.5, top: [] }] },
    ];
    expect(choicesCodec.decode(choicesCodec.encode(choices))).toEqual(choices);
    expect(() => choicesCodec.decode(stepCodec.encode({ text: 'x', logprobs: null }))).toThrow(CacheDecodeError);
  });
});

describe('keys and URLs', () => {
  it('are ecr:v1:<kind>:<sha256>, with an optional namespace, and the lock and channel are suffixes', () => {
    const h = tupleKey('x');
    expect(redisKey('steps', h)).toBe(`ecr:v1:steps:${h}`);
    expect(redisKey('vectors', h, 'tenant-a')).toBe(`ecr:v1:tenant-a:vectors:${h}`);
    expect(lockKey(redisKey('steps', h))).toBe(`ecr:v1:steps:${h}:lock`);
    expect(fillChannel(redisKey('steps', h))).toBe(`ecr:v1:steps:${h}:filled`);
    expect(() => redisKey('steps', 'abc')).toThrow(/SHA-256/);
    expect(() => redisKey('steps', h, 'a:b')).toThrow(/namespace/);
  });

  it('accepts redis://, rediss:// and redis+sentinel:// URLs, naming what is supported otherwise', () => {
    expect(parseRedisUrl('redis://:p%40ss@127.0.0.1:6390/2')).toEqual({ host: '127.0.0.1', port: 6390, password: 'p@ss', db: 2 });
    expect(parseRedisUrl('rediss://u:pw@cache.example')).toEqual({ host: 'cache.example', port: 6379, username: 'u', password: 'pw', tls: {} });
    expect(parseRedisUrl('redis+sentinel://:pw@10.0.0.1:26379,[::1]:26380/mymaster/3?sentinelPassword=s')).toEqual({
      sentinels: [
        { host: '10.0.0.1', port: 26379 },
        { host: '::1', port: 26380 },
      ],
      name: 'mymaster',
      password: 'pw',
      db: 3,
      sentinelPassword: 's',
    });
    expect(() => parseRedisUrl('redis+sentinel://h/mymaster')).toThrow(/sentinel "h" is not host:port/);
    expect(() => parseRedisUrl('redis+sentinel://h:1')).toThrow(/a Sentinel URL is redis\+sentinel:\/\//);
    expect(() => parseRedisUrl('redis+sentinel://h:1/m?x=1')).toThrow(/unknown parameter "x"/);
    expect(() => parseRedisUrl('redis-cluster://h:7000')).toThrow(/expected redis:\/\/.*Cluster is not supported/);
    expect(() => parseRedisUrl('redis://h:1/zero')).toThrow(/the path is the database index.*got "zero"/);
    expect(() => parseRedisUrl('127.0.0.1:6379')).toThrow(/redis:\/\//);
    expect(redactUrl('redis+sentinel://u:secret@h:1,h:2/m')).toBe('redis+sentinel://u:***@h:1,h:2/m');
    expect(redactUrl('redis://:secret@h:1')).toBe('redis://:***@h:1');
  });
});

describe.skipIf(!gate.available)('the Redis tier', () => {
  it('a second instance (empty L1) reads what the first wrote, with the default TTL on the entry', async () => {
    const s = await store({ ttlSeconds: 3600 });
    const a = tier('embeddings', s, float32Codec, false);
    const b = tier('embeddings', s, float32Codec, false);
    const h = hash('e');
    const load = vi.fn(async () => new Float32Array([1, 2, 3]));
    const outcomes: string[] = [];
    await a.getOrCompute(h, load, {}, (o) => outcomes.push(o));
    await s.idle();
    const got = await b.getOrCompute(h, load, {}, (o) => outcomes.push(o));
    expect(Array.from(got)).toEqual([1, 2, 3]);
    expect(load).toHaveBeenCalledTimes(1);
    expect(outcomes).toEqual(['miss', 'l2-hit']);
    const ttl = await raw.pttl(redisKey('embeddings', h));
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(3600 * 1000);
    // And b's L1 now holds it: a third lookup does not go to Redis.
    await b.getOrCompute(h, load, {}, (o) => outcomes.push(o));
    expect(outcomes.at(-1)).toBe('hit');
  });

  it('a request TTL sets the entry life; a namespace keeps entries apart', async () => {
    const s = await store();
    const h = hash('ns');
    await tier('vectors', s, float64Codec, false).getOrCompute(h, async () => new Float64Array([0.5]), { ttlSeconds: 60, namespace: 'team1' });
    await s.idle();
    const ttl = await raw.pttl(redisKey('vectors', h, 'team1'));
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(60_000);
    expect(await raw.exists(redisKey('vectors', h))).toBe(0);
    const load = vi.fn(async () => new Float64Array([0.25]));
    expect(Array.from(await tier('vectors', s, float64Codec, false).getOrCompute(h, load, {}))).toEqual([0.25]);
    expect(load).toHaveBeenCalledTimes(1);
  });

  it('no-cache computes afresh and stores; no-store reads but writes nothing', async () => {
    const s = await store();
    const h = hash('nc');
    const t = tier('steps', s, stepCodec);
    await t.getOrCompute(h, async () => ({ text: 'old', logprobs: null }), {});
    await s.idle();
    const fresh = vi.fn(async () => ({ text: 'new', logprobs: null }));
    expect((await t.getOrCompute(h, fresh, { noCache: true })).text).toBe('new');
    expect(fresh).toHaveBeenCalledTimes(1);
    await s.idle();
    expect(stepCodec.decode((await raw.getBuffer(redisKey('steps', h)))!).text).toBe('new');
    expect((await t.getOrCompute(h, fresh, {})).text).toBe('new'); // L1 has the fresh value too

    const h2 = hash('ns2');
    const other = tier('steps', s, stepCodec);
    expect((await other.getOrCompute(h, fresh, { noStore: true })).text).toBe('new'); // reading is allowed
    const computed = vi.fn(async () => ({ text: 'unstored', logprobs: null }));
    await other.getOrCompute(h2, computed, { noStore: true });
    await other.getOrCompute(h2, computed, { noStore: true });
    await s.idle();
    expect(computed).toHaveBeenCalledTimes(2);
    expect(await raw.exists(redisKey('steps', h2), lockKey(redisKey('steps', h2)))).toBe(0);
  });

  it("single flight across instances: the waiter takes the holder's value from the channel, without computing", async () => {
    const a = await store(),
      b = await store();
    const h = hash('sf');
    let finish!: (v: { text: string; logprobs: null }) => void;
    const slow = new Promise<{ text: string; logprobs: null }>((r) => {
      finish = r;
    });
    const loadA = vi.fn(() => slow);
    const loadB = vi.fn(async () => ({ text: 'B computed it', logprobs: null }));
    const outcomes: string[] = [];
    const first = tier('steps', a, stepCodec).getOrCompute(h, loadA, {}, (o) => outcomes.push(`a:${o}`));
    await vi.waitFor(async () => expect(await raw.exists(lockKey(redisKey('steps', h)))).toBe(1));
    const second = tier('steps', b, stepCodec).getOrCompute(h, loadB, {}, (o) => outcomes.push(`b:${o}`));
    // b is subscribed and waiting before a finishes.
    await vi.waitFor(async () => expect(await raw.call('PUBSUB', 'NUMSUB', fillChannel(redisKey('steps', h)))).toEqual([fillChannel(redisKey('steps', h)), 1]));
    finish({ text: 'A computed it', logprobs: null });
    expect((await first).text).toBe('A computed it');
    expect((await second).text).toBe('A computed it');
    expect(loadB).not.toHaveBeenCalled();
    expect(outcomes).toEqual(['a:miss', 'b:l2-joined']);
    await a.idle();
    expect(await raw.exists(lockKey(redisKey('steps', h)))).toBe(0);
  });

  it('when the holder fails, the waiter is released and computes itself', async () => {
    const a = await store(),
      b = await store();
    const h = hash('fail');
    let fail!: (e: Error) => void;
    const failing = new Promise<never>((_r, j) => {
      fail = j;
    });
    const first = tier('steps', a, stepCodec).getOrCompute(h, () => failing, {});
    first.catch(() => {});
    await vi.waitFor(async () => expect(await raw.exists(lockKey(redisKey('steps', h)))).toBe(1));
    const loadB = vi.fn(async () => ({ text: 'B', logprobs: null }));
    const second = tier('steps', b, stepCodec).getOrCompute(h, loadB, {});
    await vi.waitFor(async () => expect(await raw.call('PUBSUB', 'NUMSUB', fillChannel(redisKey('steps', h)))).toEqual([fillChannel(redisKey('steps', h)), 1]));
    fail(new Error('upstream 500'));
    await expect(first).rejects.toThrow('upstream 500');
    expect((await second).text).toBe('B');
    expect(loadB).toHaveBeenCalledTimes(1);
  });

  it('a lock left by a crashed holder expires: the waiter computes after the lock life, and the key is free again', async () => {
    const s = await store({ lockMs: 300 });
    const h = hash('crash');
    const key = redisKey('steps', h);
    // A holder that took the lock and died: nobody will publish or release it.
    expect(await raw.set(lockKey(key), 'dead-instance', 'PX', 300, 'NX')).toBe('OK');
    const load = vi.fn(async () => ({ text: 'computed after the wait', logprobs: null }));
    expect((await tier('steps', s, stepCodec).getOrCompute(h, load, {})).text).toBe('computed after the wait');
    expect(load).toHaveBeenCalledTimes(1);
    await vi.waitFor(async () => expect(await raw.exists(lockKey(key))).toBe(0));
    await s.idle();
    expect(await raw.exists(key)).toBe(1);
    // The next miss on another key of the same kind takes its own lock as usual.
    const h2 = hash('crash2');
    const found = await s.lookup(redisKey('steps', h2), true);
    expect(found.state).toBe('locked');
    expect(await raw.pttl(lockKey(redisKey('steps', h2)))).toBeLessThanOrEqual(300);
  });

  it('an undecodable entry is a miss (counted), never an error', async () => {
    const s = await store();
    const h = hash('bad');
    await raw.set(redisKey('embeddings', h), Buffer.from([1, 2, 3]));
    const before = await metricValue(ecrMetrics.redisErrors, { op: 'decode', reason: 'error' });
    const v = await tier('embeddings', s, float32Codec, false).getOrCompute(h, async () => new Float32Array([9]), {});
    expect(Array.from(v)).toEqual([9]);
    expect(await metricValue(ecrMetrics.redisErrors, { op: 'decode', reason: 'error' })).toBe(before + 1);
  });
});

describe.skipIf(!gate.available)("a Redis that dies while an instance waits on another's lock", () => {
  it('releases the waiter at once (not after the lock life): it computes the value itself', async () => {
    const own = await startRedisServer();
    try {
      const a = new RedisStore({ url: own.url, lockMs: 60_000, onWarn: () => {} });
      const b = new RedisStore({ url: own.url, lockMs: 60_000, onWarn: () => {} });
      stores.push(a, b);
      expect(await a.ready()).toBe(true);
      expect(await b.ready()).toBe(true);
      const ownRaw = new Redis(own.url);
      const h = hash('dies');
      const key = redisKey('steps', h);
      const holder = tier('steps', a, stepCodec).getOrCompute(h, () => new Promise(() => {}), {});
      void holder;
      await vi.waitFor(async () => expect(await ownRaw.exists(lockKey(key))).toBe(1));
      const load = vi.fn(async () => ({ text: 'computed by the waiter', logprobs: null }));
      const waiting = tier('steps', b, stepCodec).getOrCompute(h, load, {});
      await vi.waitFor(async () => expect(await ownRaw.call('PUBSUB', 'NUMSUB', fillChannel(key))).toEqual([fillChannel(key), 1]));
      ownRaw.disconnect();
      await own.stop();
      expect((await waiting).text).toBe('computed by the waiter');
      expect(load).toHaveBeenCalledTimes(1);
    } finally {
      await own.stop();
    }
  });
});

describe('a Redis that is not there', () => {
  it('computes every value, reports degraded, counts the failures and warns once per interval', async () => {
    const warnings: string[] = [];
    const s = new RedisStore({ url: `redis://127.0.0.1:${await freePort()}`, onWarn: (m) => warnings.push(m), warnIntervalMs: 60_000 });
    stores.push(s);
    expect(await s.ready(300)).toBe(false);
    const t = tier('steps', s, stepCodec);
    const load = vi.fn(async () => ({ text: 'computed', logprobs: null }));
    for (let i = 0; i < 5; i++) expect((await t.getOrCompute(hash(`down${i}`), load, {})).text).toBe('computed');
    expect(load).toHaveBeenCalledTimes(5);
    expect(s.health().state).toBe('degraded');
    expect(await metricValue(ecrMetrics.redisErrors, { op: 'connection', reason: 'connection' })).toBeGreaterThan(0);
    expect(warnings.filter((w) => w.startsWith('redis cache degraded'))).toHaveLength(1);
  });
});
