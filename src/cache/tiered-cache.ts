/**
 * One pipeline cache in two tiers: the in-process KeyedCache (L1) in front, the shared Redis
 * store (L2) behind it when there is one. A lookup tries L1 (and joins a load already running in
 * this process), then L2; on an L2 miss a cacheable computation takes the key's lock so that other
 * instances wait for its value instead of computing it too. Per-request cache control (`no-cache`,
 * `no-store`, a TTL, a namespace) applies to both tiers. A Redis failure is a miss, never an error.
 */
import type { KeyedCache } from './keyed-cache.js';
import { CacheDecodeError, type Codec } from './redis-codec.js';
import { redisKey, type CacheKind } from './redis-keys.js';
import type { RedisStore } from './redis-store.js';
import { ecrMetrics } from '../monitoring/process-metrics.js';

/** A request's cache settings (the gateway's `ecr.cache`, `ecr run`'s --cache-* flags). */
export interface CacheControl {
  /** Life of the entries this request writes, in seconds (default: the store's, and L1's own). */
  ttlSeconds?: number;
  /** A separate key space: entries written under it are read only under it. */
  namespace?: string;
  /** Do not read either tier (nor join a load in flight): compute afresh. */
  noCache?: boolean;
  /** Do not write what this request computes to either tier. */
  noStore?: boolean;
}

/**
 * What a lookup came to: served from L1, from L2, by joining a load of this process (`joined`) or
 * of another instance (`l2-joined`), or computed (`miss`).
 */
export type TieredOutcome = 'hit' | 'l2-hit' | 'joined' | 'l2-joined' | 'miss';

export interface L2Tier<V> {
  store: RedisStore;
  codec: Codec<V>;
  /**
   * Take the single-flight lock on a miss: for values that cost an upstream call. A value computed
   * locally in microseconds (an evaluative vector) would wait longer for a lock than to compute.
   */
  lock: boolean;
}

/** The lock a computation holds on a key, to hand its value (or its failure) to the waiters. */
export interface L2Lease {
  key: string;
  token: string | null;
}

export class TieredCache<V extends NonNullable<unknown>> {
  constructor(
    readonly kind: CacheKind,
    readonly l1: KeyedCache<V>,
    readonly l2: L2Tier<V> | null,
  ) {}

  l1Key(hash: string, control: CacheControl): string {
    return control.namespace === undefined ? hash : `${control.namespace}:${hash}`;
  }

  /**
   * Returns the value from L1, L2 or a load in flight, or runs `load` and stores its result in
   * both tiers. `onOutcome` is told what happened once it is known (for L2, after the round trip).
   */
  /**
   * `readL2: false` is for a caller that knows L2 cannot have the value yet (a review step of a
   * candidate that was just generated): on an L1 miss the computation starts at once, and the L2
   * lookup, which also takes the key's lock for other instances to wait on, runs beside it
   * instead of one round trip before it. The value is stored in both tiers as usual.
   */
  getOrCompute(
    hash: string,
    load: () => Promise<V>,
    control: CacheControl = {},
    onOutcome?: (o: TieredOutcome) => void,
    signal?: AbortSignal,
    readL2 = true,
  ): Promise<V> {
    if (control.noCache) {
      return (async () => {
        onOutcome?.('miss');
        const lease = this.l2 && !control.noStore ? { key: this.redisKey(hash, control), token: null } : null;
        const v = await load();
        this.fill(hash, v, control, lease);
        return v;
      })();
    }
    const report = (o: TieredOutcome) => onOutcome?.(o);
    return this.l1.getOrCompute(
      this.l1Key(hash, control),
      async () => {
        if (!readL2) {
          report('miss');
          return this.computeBesideLookup(hash, load, control);
        }
        const found = await this.lookup(hash, control, signal);
        if (found.hit) {
          report(found.outcome);
          return found.value;
        }
        report('miss');
        return this.computeWith(found.lease, load, control);
      },
      (o) => {
        if (o !== 'miss') report(o);
      },
      { store: !control.noStore, ttlMs: ttlMs(control) },
    );
  }

  /**
   * The L2 half of a lookup, for callers that keep their own L1 single flight (the pipeline's
   * candidates): the value, or the lease to fill once it is computed (null without L2 or when
   * another instance's wait ran out).
   */
  async lookup(
    hash: string,
    control: CacheControl,
    signal?: AbortSignal,
  ): Promise<{ hit: true; value: V; outcome: 'l2-hit' | 'l2-joined' } | { hit: false; lease: L2Lease | null }> {
    if (!this.l2 || control.noCache) return { hit: false, lease: null };
    const key = this.redisKey(hash, control);
    const found = await this.l2.store.lookup(key, this.l2.lock && !control.noStore);
    if (found.state === 'hit') {
      const v = this.decode(found.value);
      if (v !== undefined) {
        this.count('hit');
        return { hit: true, value: v, outcome: 'l2-hit' };
      }
      return { hit: false, lease: { key, token: null } };
    }
    if (found.state === 'busy') {
      const bytes = await this.l2.store.waitFor(key, signal);
      const v = bytes ? this.decode(bytes) : undefined;
      if (v !== undefined) {
        this.count('joined');
        return { hit: true, value: v, outcome: 'l2-joined' };
      }
      // The holder failed, went away or took too long: compute here, and store without a lock.
      this.count('miss');
      return { hit: false, lease: { key, token: null } };
    }
    this.count(found.state === 'unavailable' ? 'unavailable' : 'miss');
    if (found.state === 'locked') return { hit: false, lease: { key, token: found.token } };
    return { hit: false, lease: found.state === 'miss' ? { key, token: null } : null };
  }

  /** Stores a computed value in both tiers (unless no-store), handing it to the lease's waiters. */
  fill(hash: string, value: V, control: CacheControl, lease: L2Lease | null): void {
    if (!control.noStore) this.l1.set(this.l1Key(hash, control), value, ttlMs(control));
    this.storeL2(value, control, lease);
  }

  private storeL2(value: V, control: CacheControl, lease: L2Lease | null): void {
    if (control.noStore) {
      this.abandon(lease);
      return;
    }
    if (lease && this.l2) {
      let bytes: Uint8Array;
      try {
        bytes = this.l2.codec.encode(value);
      } catch {
        // A value the layout cannot hold (e.g. more than 255 alternatives per token) stays in L1 only.
        this.abandon(lease);
        return;
      }
      this.l2.store.store(lease.key, bytes, (control.ttlSeconds ?? this.l2.store.ttlSeconds) * 1000, lease.token ?? undefined);
    }
  }

  /** A lease whose computation failed: the waiters compute for themselves. */
  abandon(lease: L2Lease | null): void {
    if (lease?.token && this.l2) this.l2.store.release(lease.key, lease.token);
  }

  private async computeWith(lease: L2Lease | null, load: () => Promise<V>, control: CacheControl): Promise<V> {
    let v: V;
    try {
      v = await load();
    } catch (err) {
      this.abandon(lease);
      throw err;
    }
    // L1 is written by its own getOrCompute (with the same store/TTL decision).
    this.storeL2(v, control, lease);
    return v;
  }

  private async computeBesideLookup(hash: string, load: () => Promise<V>, control: CacheControl): Promise<V> {
    const lease = this.leaseOnly(hash, control);
    let v: V;
    try {
      v = await load();
    } catch (err) {
      void lease.then((l) => this.abandon(l));
      throw err;
    }
    // Not awaited: a slow Redis must not hold the answer back (the lookup has its own timeout).
    void lease.then((l) => this.storeL2(v, control, l));
    return v;
  }

  /** The lock on a key, without waiting for another holder: null when L2 has it, another instance is filling it, or L2 is unusable. */
  private async leaseOnly(hash: string, control: CacheControl): Promise<L2Lease | null> {
    if (!this.l2 || control.noStore) return null;
    const key = this.redisKey(hash, control);
    const found = await this.l2.store.lookup(key, this.l2.lock);
    if (found.state === 'locked') return { key, token: found.token };
    return found.state === 'miss' ? { key, token: null } : null;
  }

  private redisKey(hash: string, control: CacheControl): string {
    return redisKey(this.kind, hash, control.namespace);
  }

  private decode(bytes: Uint8Array): V | undefined {
    try {
      return this.l2!.codec.decode(bytes);
    } catch (err) {
      if (!(err instanceof CacheDecodeError)) throw err;
      ecrMetrics.redisErrors.inc({ op: 'decode', reason: 'error' });
      return undefined;
    }
  }

  private count(outcome: 'hit' | 'miss' | 'joined' | 'unavailable'): void {
    ecrMetrics.cacheLookups.inc({ cache: this.kind, tier: 'l2', outcome });
  }
}

function ttlMs(control: CacheControl): number | undefined {
  return control.ttlSeconds === undefined ? undefined : control.ttlSeconds * 1000;
}
