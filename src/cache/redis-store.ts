/**
 * The Redis side of the shared cache tier (L2), on ioredis: reads, writes with a TTL, and the
 * cross-instance single flight (a `SET NX PX` lock per key; the holder publishes the value on the
 * key's channel, waiters subscribed to it take the value from the message).
 *
 * Redis being down or slow is never an error for the caller: a failed operation is a miss, and
 * pauses the tier (redis-health.ts). The connections and a refused database: redis-connection.ts;
 * the Lua scripts: redis-scripts.ts; the fill notifications: redis-fills.ts. URLs: redis-url.ts,
 * the parser the queue uses too. Cluster is not supported: the lookup script reads a key and
 * writes its lock, which Cluster requires to be in one hash slot.
 */
import { randomUUID } from 'node:crypto';
import { RedisConnection } from './redis-connection.js';
import { FillNotifications } from './redis-fills.js';
import type { RedisHealth } from './redis-health.js';
import { fillChannel, lockKey } from './redis-keys.js';
import { parseRedisUrl, type RedisDatabaseError } from './redis-url.js';

export interface RedisStoreOptions {
  /** `redis://...` or `rediss://...`. */
  url: string;
  /** Limit of one Redis operation in ms (default 100). */
  timeoutMs?: number;
  /** TTL of an entry in seconds unless a request gives its own (default 86400 = 1 day). */
  ttlSeconds?: number;
  /** Life of a single-flight lock, and the longest a waiter waits for its value, in ms (default 30000). */
  lockMs?: number;
  /** How long the tier is skipped after a failed operation, in ms (default 1000). */
  pauseMs?: number;
  /** Most one warning line per this many ms (default 30000). */
  warnIntervalMs?: number;
  /** Where warning lines go (default: stderr). */
  onWarn?: (message: string) => void;
}

export const REDIS_DEFAULTS = { timeoutMs: 100, ttlSeconds: 86_400, lockMs: 30_000, pauseMs: 1000, warnIntervalMs: 30_000 } as const;

/** What a lookup found: the value, a lock this caller now holds, a lock another holds, or nothing usable. */
export type L2Lookup =
  { state: 'hit'; value: Uint8Array } | { state: 'locked'; token: string } | { state: 'busy' } | { state: 'miss' } | { state: 'unavailable' };

export class RedisStore {
  readonly timeoutMs: number;
  readonly ttlSeconds: number;
  readonly lockMs: number;
  private readonly connection: RedisConnection;
  private readonly fills: FillNotifications;
  private readonly pending = new Set<Promise<unknown>>();

  constructor(options: RedisStoreOptions) {
    const target = parseRedisUrl(options.url);
    this.timeoutMs = options.timeoutMs ?? REDIS_DEFAULTS.timeoutMs;
    this.ttlSeconds = options.ttlSeconds ?? REDIS_DEFAULTS.ttlSeconds;
    this.lockMs = options.lockMs ?? REDIS_DEFAULTS.lockMs;
    this.connection = new RedisConnection(target, {
      url: options.url,
      timeoutMs: this.timeoutMs,
      pauseMs: options.pauseMs ?? REDIS_DEFAULTS.pauseMs,
      warnIntervalMs: options.warnIntervalMs ?? REDIS_DEFAULTS.warnIntervalMs,
      warn: options.onWarn ?? ((m) => process.stderr.write(`ecr: ${m}\n`)),
      // Called only from events and close(), after the constructor has set `fills`.
      onLost: () => this.fills.releaseAll(),
    });
    this.fills = new FillNotifications(this.connection.sub);
  }

  /**
   * Resolves true once both connections are up, false after `timeoutMs` (the tier is then used
   * once Redis answers) or when the server refused the database (see `configError`).
   */
  ready(timeoutMs = 2000): Promise<boolean> {
    return this.connection.ready(timeoutMs);
  }

  /** The server refused the URL's database: a configuration error, set once `ready()` has seen it. */
  get configError(): RedisDatabaseError | null {
    return this.connection.configError;
  }

  /** True when operations are sent (connected, and not paused after a failure). */
  get usable(): boolean {
    return this.connection.usable;
  }

  health(): RedisHealth {
    return this.connection.health();
  }

  /** The value of `key`; on a miss, takes the key's lock when `lock` is true. */
  async lookup(key: string, lock: boolean): Promise<L2Lookup> {
    if (!this.usable) return { state: 'unavailable' };
    const token = lock ? randomUUID() : '';
    try {
      const [code, value] = await this.connection.client.ecrLookupBuffer(key, lockKey(key), token, this.lockMs);
      this.connection.ops.succeeded();
      if (code === 1 && value) return { state: 'hit', value };
      if (code === 2) return { state: 'locked', token };
      return code === 3 ? { state: 'busy' } : { state: 'miss' };
    } catch (err) {
      this.connection.ops.failed('lookup', err);
      return { state: 'unavailable' };
    }
  }

  /**
   * Waits for another instance to fill `key`: its value, or null when the holder gave up, the lock
   * is gone without a value, `lockMs` passed, the signal fired or Redis failed.
   */
  async waitFor(key: string, signal?: AbortSignal): Promise<Uint8Array | null> {
    if (!this.usable || !this.fills.ready || signal?.aborted) return null;
    const waiter = this.fills.listen(fillChannel(key));
    const timer = setTimeout(() => waiter.resolve(null), this.lockMs);
    const onAbort = () => waiter.resolve(null);
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      // A message published before the subscription is active would be lost: wait for it.
      await waiter.subscribed;
      // The value may have landed between the lookup and the subscription.
      const [code, value] = await this.connection.client.ecrPeekBuffer(key, lockKey(key));
      this.connection.ops.succeeded();
      if (code === 1 && value) return value;
      if (code === 0) return null;
      return await waiter.value;
    } catch (err) {
      this.connection.ops.failed('wait', err);
      return null;
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      const unsubscribed = waiter.leave();
      if (unsubscribed) this.track(unsubscribed);
    }
  }

  /** Writes `value` with a TTL (ms); a lock holder also publishes it to the waiters and releases the lock. */
  store(key: string, bytes: Uint8Array, ttlMs: number, token?: string): void {
    if (!this.usable) return;
    const value = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const px = Math.max(1, Math.round(ttlMs));
    const client = this.connection.client;
    this.track(this.run('store', token ? client.ecrFill(key, lockKey(key), value, px, fillChannel(key), token) : client.set(key, value, 'PX', px)));
  }

  /** A lock holder that has no value to store (its computation failed, or no-store) lets the waiters go. */
  release(key: string, token: string): void {
    if (!this.usable) return;
    // An empty message means "compute it yourselves"; no real entry is empty.
    this.track(this.run('release', this.connection.client.ecrFill(key, lockKey(key), '', 1, fillChannel(key), token)));
  }

  /** Resolves when the writes started so far have finished (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
  }

  async close(): Promise<void> {
    if (this.connection.isClosed) return;
    await this.idle();
    this.connection.close();
  }

  private async run(op: string, command: Promise<unknown>): Promise<void> {
    try {
      await command;
      this.connection.ops.succeeded();
    } catch (err) {
      this.connection.ops.failed(op, err);
    }
  }

  private track(p: Promise<unknown>): void {
    this.pending.add(p);
    void p.finally(() => this.pending.delete(p));
  }
}
