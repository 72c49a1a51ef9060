/**
 * The pipeline's four caches, each an in-process tier (L1) with the shared Redis tier (L2) behind
 * it when there is one, and what a request may ask of them (its CacheControl) and learns from them.
 */
import { EcrError } from '../core/errors.js';
import { KeyedCache, type CacheObserver } from '../cache/keyed-cache.js';
import { TieredCache, type CacheControl } from '../cache/tiered-cache.js';
import { choicesCodec, float32Codec, float64Codec, stepCodec } from '../cache/redis-codec.js';
import { checkCacheNamespace } from '../cache/namespace.js';
import { LlmCancelledError } from '../llm/errors.js';
import type { ChatChoice } from '../llm/provider.js';
import { ecrMetrics } from '../monitoring/process-metrics.js';
import { cachedBytes } from './byte-estimates.js';
import type { StepData } from './trajectory-types.js';
import type { CacheOptions, CacheResult } from './types.js';

/** The in-process tier (L1) of each cache. */
export interface L1Caches {
  candidates: KeyedCache<ChatChoice[]>;
  steps: KeyedCache<StepData>;
  embeddings: KeyedCache<Float32Array>;
  vectors: KeyedCache<Float64Array>;
}

/** Each cache with its shared tier (L2) behind it, when there is one. */
export interface CacheTiers {
  candidates: TieredCache<ChatChoice[]>;
  steps: TieredCache<StepData>;
  embeddings: TieredCache<Float32Array>;
  vectors: TieredCache<Float64Array>;
}

/** Which computations are remote, so that a Redis round trip costs less than doing them again. */
export interface RemoteWork {
  embedder: boolean;
  safety?: boolean;
}

export function createCaches(c: CacheOptions, remote: RemoteWork): { caches: L1Caches; tiers: CacheTiers } {
  const bounds = { maxEntries: c.maxEntries, maxSize: c.maxBytes ?? 64 * 1024 * 1024, sizeOf: cachedBytes, ttlMs: c.ttlMs };
  const caches: L1Caches = {
    candidates: new KeyedCache('candidates', bounds),
    steps: new KeyedCache('steps', bounds),
    embeddings: new KeyedCache('embeddings', bounds),
    vectors: new KeyedCache('vectors', bounds),
  };
  const observer: CacheObserver = (name, outcome) => {
    if (outcome === 'eviction') ecrMetrics.cacheEvictions.inc({ cache: name });
    else ecrMetrics.cacheLookups.inc({ cache: name, tier: 'l1', outcome });
  };
  for (const cache of Object.values(caches) as L1Caches[keyof L1Caches][]) cache.observe(observer);
  const store = c.redis;
  // Redis holds what costs more to compute than a round trip to it: the chat calls, embeddings
  // from a remote embedder, and vectors when the safety scorer is remote (given its embeddings,
  // the rest of a vector is microseconds of arithmetic). The built-in hashing embedder takes
  // microseconds too; a Redis read of its results would add a serial round trip to every
  // request and fill Redis for nothing.
  // Locks only where a miss costs a chat call: an embedding miss joins its step round's batch,
  // which must not wait for another instance.
  const tiers: CacheTiers = {
    candidates: new TieredCache('candidates', caches.candidates, store ? { store, codec: choicesCodec, lock: true } : null),
    steps: new TieredCache('steps', caches.steps, store ? { store, codec: stepCodec, lock: true } : null),
    embeddings: new TieredCache('embeddings', caches.embeddings, store && remote.embedder ? { store, codec: float32Codec, lock: false } : null),
    vectors: new TieredCache('vectors', caches.vectors, store && remote.safety === true ? { store, codec: float64Codec, lock: false } : null),
  };
  return { caches, tiers };
}

export function checkCacheControl(c: CacheControl | undefined): void {
  if (c === undefined) return;
  const bad = (field: string, what: string, v: unknown) => new EcrError('ECR_PIPELINE_OPTION', `cache.${field} must be ${what}, got ${JSON.stringify(v)}`);
  if (c === null || typeof c !== 'object') throw new EcrError('ECR_PIPELINE_OPTION', `cache must be an object, got ${JSON.stringify(c)}`);
  if (c.ttlSeconds !== undefined && !(Number.isInteger(c.ttlSeconds) && c.ttlSeconds >= 1))
    throw bad('ttlSeconds', 'an integer number of seconds >= 1', c.ttlSeconds);
  if (c.namespace !== undefined) checkCacheNamespace(c.namespace, (problem) => new EcrError('ECR_PIPELINE_OPTION', `cache.namespace ${problem}`));
  for (const f of ['noCache', 'noStore'] as const) if (c[f] !== undefined && typeof c[f] !== 'boolean') throw bad(f, 'true or false', c[f]);
}

export function cacheResultOf(cache: Record<string, { hits: number; misses: number; joined: number }>, sampledUncached: boolean): CacheResult {
  let served = 0,
    computed = sampledUncached ? 1 : 0;
  for (const name of ['candidates', 'steps']) {
    const c = cache[name];
    if (!c) continue;
    served += c.hits + c.joined;
    computed += c.misses;
  }
  if (computed === 0) return served > 0 ? 'hit' : 'miss';
  return served === 0 ? 'miss' : 'partial';
}

/**
 * Runs a cached, single-flight load; when it fails because another request that owned the
 * in-flight load was cancelled (not this one), loads again instead of inheriting that cancellation.
 */
export async function unlessForeignCancel<T>(load: () => Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  try {
    return await load();
  } catch (err) {
    if (err instanceof LlmCancelledError && !signal?.aborted) return load();
    throw err;
  }
}
