/** Content keys and the bounded single-flight cache. */
import { describe, expect, it } from 'vitest';
import { KeyedCache } from '../src/cache/keyed-cache.js';
import { canonicalJson, tupleKey } from '../src/cache/canonical-json.js';

// A structured part goes into a key as its canonical JSON, as the pipeline's keys take the sampling settings.
const contentKey = (parts: unknown) => tupleKey(canonicalJson(parts));

describe('content keys', () => {
  it('do not depend on object key order, and drop undefined members', () => {
    expect(canonicalJson({ b: 1, a: [1, { y: 2, x: 1 }], u: undefined })).toBe('{"a":[1,{"x":1,"y":2}],"b":1}');
    expect(contentKey({ a: 1, b: 2 })).toBe(contentKey({ b: 2, a: 1 }));
    expect(contentKey({ a: 1 })).toMatch(/^[0-9a-f]{64}$/);
  });

  it('keep NaN, Infinity and null apart, and typed arrays equal to plain arrays', () => {
    const keys = [NaN, Infinity, -Infinity, null].map((v) => contentKey({ v }));
    expect(new Set(keys).size).toBe(4);
    expect(contentKey(new Float64Array([1, 2]))).toBe(contentKey([1, 2]));
  });

  it('two candidates sharing a 50-character prefix get different keys (the reference collided here)', () => {
    const prefix = 'The capital of France is Paris, and it has been for'; // 51 characters
    expect(prefix.length).toBeGreaterThan(50);
    const base = { kind: 'step', prompt: 'Which city is the capital of France? Answer briefly please.', model: 'm', step: 1 };
    const a = contentKey({ ...base, candidate: `${prefix} centuries.` });
    const b = contentKey({ ...base, candidate: `${prefix} a long time.` });
    expect(a).not.toBe(b);
    // And prompts sharing a 50-character prefix, too.
    expect(contentKey({ ...base, prompt: base.prompt + ' A' })).not.toBe(contentKey({ ...base, prompt: base.prompt + ' B' }));
  });
});

describe('KeyedCache', () => {
  it('single-flight: concurrent requests for one key make one load', async () => {
    const cache = new KeyedCache<string>('t', { maxEntries: 10 });
    let loads = 0;
    const load = async () => {
      loads++;
      await new Promise((r) => setTimeout(r, 20));
      return 'v';
    };
    const outcomes: string[] = [];
    const all = await Promise.all(Array.from({ length: 5 }, () => cache.getOrCompute('k', load, (o) => outcomes.push(o))));
    expect(all).toEqual(['v', 'v', 'v', 'v', 'v']);
    expect(loads).toBe(1);
    expect(outcomes).toEqual(['miss', 'joined', 'joined', 'joined', 'joined']);
    expect(await cache.getOrCompute('k', load)).toBe('v');
    expect(loads).toBe(1);
    expect(cache.stats()).toMatchObject({ hits: 1, misses: 1, joined: 4, entries: 1 });
  });

  it('does not cache a failed load; the next caller loads again', async () => {
    const cache = new KeyedCache<string>('t', { maxEntries: 10 });
    let n = 0;
    const load = async () => {
      n++;
      if (n === 1) throw new Error('boom');
      return 'ok';
    };
    const [a, b] = await Promise.allSettled([cache.getOrCompute('k', load), cache.getOrCompute('k', load)]);
    expect(a.status).toBe('rejected');
    expect(b.status).toBe('rejected'); // joined the failing flight
    expect(await cache.getOrCompute('k', load)).toBe('ok');
    expect(n).toBe(2);
  });

  it('evicts beyond maxEntries and counts evictions', async () => {
    const cache = new KeyedCache<number>('t', { maxEntries: 2 });
    for (const k of ['a', 'b', 'c']) await cache.getOrCompute(k, async () => k.charCodeAt(0));
    expect(cache.stats()).toMatchObject({ entries: 2, evictions: 1, misses: 3 });
    expect(cache.has('a')).toBe(false);
    expect(cache.get('c')).toBe(99);
  });

  it('bounds total size with maxSize', async () => {
    const cache = new KeyedCache<string>('t', { maxSize: 10, sizeOf: (v) => (v as string).length });
    cache.set('a', 'xxxx');
    cache.set('b', 'yyyy');
    cache.set('c', 'zzzz');
    const s = cache.stats();
    expect(s.size).toBeLessThanOrEqual(10);
    expect(s.evictions).toBe(1);
    expect(() => new KeyedCache('bad', { maxSize: 10 })).toThrow(/sizeOf/);
    expect(() => new KeyedCache('unbounded', {})).toThrow(/maxEntries, maxSize or ttlMs/);
  });

  it('expires entries after the TTL', async () => {
    const cache = new KeyedCache<string>('t', { maxEntries: 10, ttlMs: 25 });
    cache.set('k', 'v');
    expect(cache.get('k')).toBe('v');
    await new Promise((r) => setTimeout(r, 60));
    expect(cache.get('k')).toBeUndefined();
    expect(cache.stats()).toMatchObject({ hits: 1, misses: 1 });
  });
});
