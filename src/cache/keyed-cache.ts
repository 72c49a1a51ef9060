/**
 * A bounded cache with single-flight loading and hit/miss/eviction counts, on lru-cache.
 * `getOrCompute(key, load)` runs `load` at most once for concurrent callers of one key; a failed
 * load is not cached, so the next caller tries again.
 */
import { LRUCache } from 'lru-cache';

export interface CacheBounds {
  /**
   * Most entries kept. lru-cache preallocates arrays of this length (about 10 ms for 10,000), so
   * leave it unset and bound by `maxSize` where caches are created often.
   */
  maxEntries?: number;
  /** Most total size kept, in the units of `sizeOf` (e.g. approximate bytes); needs `sizeOf`. */
  maxSize?: number;
  /** Size of one value, for `maxSize`. */
  sizeOf?: (value: unknown) => number;
  /** Time to live in milliseconds (0 or absent: entries do not expire). */
  ttlMs?: number;
}

export interface CacheStats {
  name: string;
  hits: number;
  misses: number;
  evictions: number;
  /** Concurrent requests that joined an in-flight load instead of starting their own. */
  joined: number;
  entries: number;
  size: number;
}

/** Called on every lookup outcome; monitoring hooks counters onto it. */
export type CacheObserver = (cache: string, outcome: 'hit' | 'miss' | 'joined' | 'eviction') => void;

export class KeyedCache<V extends NonNullable<unknown>> {
  private readonly lru: LRUCache<string, V>;
  private readonly inFlight = new Map<string, Promise<V>>();
  private hits = 0;
  private misses = 0;
  private evictions = 0;
  private joined = 0;
  private readonly observers: CacheObserver[] = [];
  private readonly ttlMs: number | undefined;

  constructor(
    readonly name: string,
    bounds: CacheBounds = {},
  ) {
    this.ttlMs = bounds.ttlMs || undefined;
    const sizeOf = bounds.sizeOf;
    if (bounds.maxSize !== undefined && !sizeOf) throw new TypeError(`cache "${name}": maxSize needs sizeOf`);
    if (bounds.maxEntries === undefined && bounds.maxSize === undefined && !bounds.ttlMs)
      throw new TypeError(`cache "${name}": give maxEntries, maxSize or ttlMs`);
    const options = {
      ...(bounds.maxEntries !== undefined ? { max: bounds.maxEntries } : {}),
      ...(bounds.maxSize !== undefined ? { maxSize: bounds.maxSize, sizeCalculation: (v: V) => Math.max(1, Math.ceil(sizeOf ? sizeOf(v) : 1)) } : {}),
      ...(bounds.ttlMs ? { ttl: bounds.ttlMs, ttlAutopurge: false } : {}),
      dispose: (_v, _k, reason) => {
        if (reason === 'evict' || reason === 'expire') {
          this.evictions++;
          this.emit('eviction');
        }
      },
    } as LRUCache.Options<string, V, unknown>;
    this.lru = new LRUCache<string, V>(options);
  }

  observe(observer: CacheObserver): void {
    this.observers.push(observer);
  }

  private emit(outcome: 'hit' | 'miss' | 'joined' | 'eviction'): void {
    for (const o of this.observers) o(this.name, outcome);
  }

  /** Looks a key up without loading; counts a hit or a miss. */
  get(key: string): V | undefined {
    const v = this.lru.get(key);
    if (v === undefined) {
      this.misses++;
      this.emit('miss');
    } else {
      this.hits++;
      this.emit('hit');
    }
    return v;
  }

  /** Looks a key up without counting (for callers that run their own single-flight and call `record`). */
  peek(key: string): V | undefined {
    return this.lru.get(key);
  }

  /** Counts an outcome decided by the caller (see `peek`). */
  record(outcome: 'hit' | 'miss' | 'joined'): void {
    if (outcome === 'hit') this.hits++;
    else if (outcome === 'miss') this.misses++;
    else this.joined++;
    this.emit(outcome);
  }

  /** Stores a value; `ttlMs` shortens its life below the cache's own TTL (never lengthens it). */
  set(key: string, value: V, ttlMs?: number): void {
    if (ttlMs === undefined) {
      this.lru.set(key, value);
      return;
    }
    this.lru.set(key, value, { ttl: this.ttlMs === undefined ? ttlMs : Math.min(ttlMs, this.ttlMs) });
  }

  /**
   * Returns the cached value, joins a load already running for the key, or runs `load` and caches
   * its result. `onOutcome` tells the caller which of the three happened (for per-request stats).
   * `store: false` leaves the result out of the cache (a caller that asked not to store), `ttlMs`
   * gives it a shorter life (see `set`).
   */
  getOrCompute(
    key: string,
    load: () => Promise<V>,
    onOutcome?: (o: 'hit' | 'miss' | 'joined') => void,
    options: { store?: boolean; ttlMs?: number } = {},
  ): Promise<V> {
    const cached = this.lru.get(key);
    if (cached !== undefined) {
      this.hits++;
      this.emit('hit');
      onOutcome?.('hit');
      return Promise.resolve(cached);
    }
    const running = this.inFlight.get(key);
    if (running) {
      this.joined++;
      this.emit('joined');
      onOutcome?.('joined');
      return running;
    }
    this.misses++;
    this.emit('miss');
    onOutcome?.('miss');
    const p = (async () => {
      try {
        const v = await load();
        if (options.store !== false) this.set(key, v, options.ttlMs);
        return v;
      } finally {
        this.inFlight.delete(key);
      }
    })();
    this.inFlight.set(key, p);
    return p;
  }

  has(key: string): boolean {
    return this.lru.has(key);
  }

  clear(): void {
    this.lru.clear();
  }

  stats(): CacheStats {
    return {
      name: this.name,
      hits: this.hits,
      misses: this.misses,
      evictions: this.evictions,
      joined: this.joined,
      entries: this.lru.size,
      size: this.lru.calculatedSize ?? this.lru.size,
    };
  }
}
