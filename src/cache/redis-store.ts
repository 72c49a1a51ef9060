/**
 * The Redis side of the shared cache tier (L2), on ioredis: reads, writes with a TTL, and the
 * cross-instance single flight (a `SET NX PX` lock per key; the holder publishes the value on the
 * key's channel, waiters subscribed to it take the value from the message).
 *
 * Redis being down or slow is never an error for the caller: every operation has a small timeout
 * (ioredis `commandTimeout`), commands are never queued while disconnected (they fail at once),
 * and a failed operation pauses the tier for `pauseMs` so that requests do not each wait out a
 * timeout. Failures are counted (ecr_redis_errors_total) and reported by a log line at most every
 * `warnIntervalMs`; ioredis reconnects by itself, and the first successful operation (or the
 * connection's `ready`) ends the degraded state, with a line saying so.
 *
 * URLs: `redis://[[user]:password@]host[:port][/db]`, `rediss://` (TLS), and Sentinel as
 * `redis+sentinel://[[user]:password@]host:port[,host:port...]/<master name>[/db]` (ioredis
 * asks the sentinels for the primary and follows failovers; `?sentinelPassword=` if they need
 * one), parsed by src/redis-url.ts as the queue's are. Cluster is not supported: the lookup
 * script reads a key and writes its lock, which Cluster requires to be in one hash slot.
 *
 * A database index the server refuses is not an outage but a configuration error: ioredis would
 * carry on in database 0, sharing (and overwriting) another deployment's entries. The tier is
 * then off for good (`configError`, one warning, health "degraded"), and the callers that start
 * with it (`ecr run`, `ecr serve`) refuse to start.
 */
import { randomUUID } from 'node:crypto';
import { Redis, type RedisOptions } from 'ioredis';
import { describeRefusedSelect, isSelectRefused, parseRedisUrl, type RedisDatabaseError, type RedisTarget } from './redis-url.js';
import { ecrMetrics } from '../monitoring/process-metrics.js';
import { fillChannel, lockKey } from './redis-keys.js';

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
  | { state: 'hit'; value: Uint8Array }
  | { state: 'locked'; token: string }
  | { state: 'busy' }
  | { state: 'miss' }
  | { state: 'unavailable' };

export interface RedisHealth {
  state: 'ok' | 'degraded';
  /** Why it is degraded. */
  reason?: string;
}

// One round trip for a miss: read the value, else take the lock (ARGV[1] = token, '' = no lock).
const LOOKUP_LUA = `
local v = redis.call('GET', KEYS[1])
if v then return {1, v} end
if ARGV[1] == '' then return {0} end
if redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2], 'NX') then return {2} end
return {3}`;
// A waiter, once subscribed: the value, else whether the lock is still held.
const PEEK_LUA = `
local v = redis.call('GET', KEYS[1])
if v then return {1, v} end
return {redis.call('EXISTS', KEYS[2]) == 1 and 3 or 0}`;
// A holder's fill in one command: the value with its TTL, the message to the waiters, and the
// lock released only if it is still this holder's (it may have expired and been taken since).
// KEYS[1] = data key, KEYS[2] = lock; ARGV = value ('' to store nothing), TTL ms, channel, token.
const FILL_LUA = `
if ARGV[1] ~= '' then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) end
redis.call('PUBLISH', ARGV[3], ARGV[1])
if redis.call('GET', KEYS[2]) == ARGV[4] then redis.call('DEL', KEYS[2]) end
return 1`;

type ScriptClient = Redis & {
  ecrLookupBuffer(key: string, lock: string, token: string, lockMs: number): Promise<[number, Buffer?]>;
  ecrPeekBuffer(key: string, lock: string): Promise<[number, Buffer?]>;
  ecrFill(key: string, lock: string, value: Buffer | string, ttlMs: number, channel: string, token: string): Promise<number>;
};

export type { RedisTarget };

/** Checks a Redis URL and gives its ioredis options (src/redis-url.ts); throws a UsageError naming what is supported. */
export function redisConnectionOptions(url: string): RedisTarget {
  return parseRedisUrl(url);
}

/** Checks a Redis URL; throws a UsageError naming what is supported. */
export function checkRedisUrl(url: string): void {
  parseRedisUrl(url);
}

/** Resolves once `c` is ready, has ended, or `ms` passed. */
function readyOrGone(c: Redis, ms: number): Promise<void> {
  if (c.status === 'ready' || c.status === 'end') return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => { clearTimeout(timer); c.off('ready', done); c.off('end', done); resolve(); };
    const timer = setTimeout(done, ms);
    c.once('ready', done);
    c.once('end', done);
  });
}

function reasonOf(err: unknown): string {
  const m = err instanceof Error ? err.message : String(err);
  if (/timed out/i.test(m)) return 'timeout';
  if (/writeable|connect|ECONNREFUSED|ECONNRESET|closed|EPIPE/i.test(m)) return 'connection';
  return 'error';
}

export class RedisStore {
  readonly timeoutMs: number;
  readonly ttlSeconds: number;
  readonly lockMs: number;
  private readonly pauseMs: number;
  private readonly warnIntervalMs: number;
  private readonly warn: (message: string) => void;
  private readonly client: ScriptClient;
  private readonly sub: Redis;
  private readonly waiters = new Map<string, Set<(value: Uint8Array | null) => void>>();
  /** The SUBSCRIBE of each channel with waiters: every waiter (not only the first) awaits it before its peek. */
  private readonly subscriptions = new Map<string, Promise<unknown>>();
  private readonly pending = new Set<Promise<unknown>>();
  private pausedUntil = 0;
  private lastError: string | null = null;
  private degraded = false;
  private failuresSinceWarn = 0;
  private lastWarnAt = -Infinity;
  private closed = false;
  private readonly url: string;
  private readonly db: number;
  /** Set once the server refused the URL's database: the tier is off for good. */
  private refused: Promise<RedisDatabaseError> | null = null;
  private refusal: RedisDatabaseError | null = null;
  private readonly refusedListeners = new Set<() => void>();
  private readyCalls = 0;

  constructor(options: RedisStoreOptions) {
    const target = redisConnectionOptions(options.url);
    this.url = options.url;
    this.db = target.db ?? 0;
    this.timeoutMs = options.timeoutMs ?? REDIS_DEFAULTS.timeoutMs;
    this.ttlSeconds = options.ttlSeconds ?? REDIS_DEFAULTS.ttlSeconds;
    this.lockMs = options.lockMs ?? REDIS_DEFAULTS.lockMs;
    this.pauseMs = options.pauseMs ?? REDIS_DEFAULTS.pauseMs;
    this.warnIntervalMs = options.warnIntervalMs ?? REDIS_DEFAULTS.warnIntervalMs;
    this.warn = options.onWarn ?? ((m) => process.stderr.write(`ecr: ${m}\n`));
    const connection: RedisOptions = {
      // Never queue commands while disconnected: a request must not wait for Redis to return.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      commandTimeout: this.timeoutMs,
      // Commands issued in one tick (a request's K step lookups) leave in one write.
      enableAutoPipelining: true,
      connectTimeout: Math.max(1000, this.timeoutMs),
      // Reconnect for ever, at most a second apart, so a returning Redis is used again soon.
      retryStrategy: (times) => Math.min(times * 100, 1000),
      sentinelRetryStrategy: (times) => Math.min(times * 100, 1000),
      ...target,
    };
    const client = new Redis(connection) as ScriptClient;
    client.defineCommand('ecrLookup', { numberOfKeys: 2, lua: LOOKUP_LUA });
    client.defineCommand('ecrPeek', { numberOfKeys: 2, lua: PEEK_LUA });
    client.defineCommand('ecrFill', { numberOfKeys: 2, lua: FILL_LUA });
    this.client = client;
    // Subscriptions need a connection of their own; it exists from the start so the first waiter can use it.
    // Its waiters are released when it drops (below), so nothing is to be resubscribed on reconnect.
    this.sub = client.duplicate({ autoResubscribe: false });
    this.sub.on('messageBuffer', (channel: Buffer, message: Buffer) => this.onMessage(channel.toString(), message));
    for (const c of [client, this.sub]) {
      // ioredis reports connection errors as events; without a listener it prints them itself.
      c.on('error', (err: Error) => {
        if (this.closed) return;
        if (isSelectRefused(err)) this.refuseDatabase(err);
        else if (!this.refused) this.failed('connection', err);
      });
      c.on('ready', () => { if (c === client && !this.refused) this.recovered(); });
    }
    client.on('close', () => { if (!this.closed && !this.refused) this.failed('connection', new Error('connection closed')); });
    // A fill can no longer arrive once either connection is gone: the waiters compute for themselves.
    for (const c of [client, this.sub]) c.on('close', () => this.releaseWaiters());
  }

  /**
   * Resolves true once both connections are up, false after `timeoutMs` (the tier is then used
   * once Redis answers) or when the server refused the database (see `configError`).
   */
  async ready(timeoutMs = 2000): Promise<boolean> {
    this.readyCalls++;
    try {
      return await this.waitReady(timeoutMs);
    } finally {
      this.readyCalls--;
    }
  }

  private async waitReady(timeoutMs: number): Promise<boolean> {
    const up = (c: Redis) => c.status === 'ready' ? Promise.resolve() : new Promise<void>((r) => c.once('ready', () => r()));
    let timer: NodeJS.Timeout | undefined;
    let onRefused: (() => void) | undefined;
    // The SELECT is refused before 'ready' is emitted: a refusal, not the 'ready', decides.
    const ok = await Promise.race([
      Promise.all([up(this.client), up(this.sub)]).then(() => this.refused === null),
      new Promise<boolean>((r) => { onRefused = () => r(false); if (this.refused) onRefused(); else this.refusedListeners.add(onRefused); }),
      new Promise<boolean>((r) => { timer = setTimeout(() => r(false), timeoutMs); }),
    ]);
    clearTimeout(timer);
    if (onRefused) this.refusedListeners.delete(onRefused);
    if (this.refused) await this.refused;
    return ok;
  }

  /** The server refused the URL's database: a configuration error, set once `ready()` has seen it. */
  get configError(): RedisDatabaseError | null {
    return this.refusal;
  }

  /** True when operations are sent (connected, and not paused after a failure). */
  get usable(): boolean {
    return !this.closed && this.refused === null && this.client.status === 'ready' && performance.now() >= this.pausedUntil;
  }

  health(): RedisHealth {
    if (this.refused) return { state: 'degraded', reason: this.refusal?.message ?? 'the server refused the database index' };
    if (this.client.status !== 'ready') return { state: 'degraded', reason: `not connected (${this.client.status})${this.lastError ? `: ${this.lastError}` : ''}` };
    if (performance.now() < this.pausedUntil) return { state: 'degraded', reason: this.lastError ?? 'paused after a failed operation' };
    return { state: 'ok' };
  }

  /** The value of `key`; on a miss, takes the key's lock when `lock` is true. */
  async lookup(key: string, lock: boolean): Promise<L2Lookup> {
    if (!this.usable) return { state: 'unavailable' };
    const token = lock ? randomUUID() : '';
    try {
      const [code, value] = await this.client.ecrLookupBuffer(key, lockKey(key), token, this.lockMs);
      this.succeeded();
      if (code === 1 && value) return { state: 'hit', value };
      if (code === 2) return { state: 'locked', token };
      return code === 3 ? { state: 'busy' } : { state: 'miss' };
    } catch (err) {
      this.failed('lookup', err);
      return { state: 'unavailable' };
    }
  }

  /**
   * Waits for another instance to fill `key`: its value, or null when the holder gave up, the lock
   * is gone without a value, `lockMs` passed, the signal fired or Redis failed.
   */
  async waitFor(key: string, signal?: AbortSignal): Promise<Uint8Array | null> {
    if (!this.usable || this.sub.status !== 'ready' || signal?.aborted) return null;
    const channel = fillChannel(key);
    let resolveWait!: (v: Uint8Array | null) => void;
    const waited = new Promise<Uint8Array | null>((r) => { resolveWait = r; });
    let set = this.waiters.get(channel);
    if (!set) {
      set = new Set();
      this.waiters.set(channel, set);
      this.subscriptions.set(channel, this.sub.subscribe(channel));
    }
    const subscribed = this.subscriptions.get(channel)!;
    set.add(resolveWait);
    const timer = setTimeout(() => resolveWait(null), this.lockMs);
    const onAbort = () => resolveWait(null);
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      // A message published before the subscription is active would be lost: wait for it.
      await subscribed;
      // The value may have landed between the lookup and the subscription.
      const [code, value] = await this.client.ecrPeekBuffer(key, lockKey(key));
      this.succeeded();
      if (code === 1 && value) return value;
      if (code === 0) return null;
      return await waited;
    } catch (err) {
      this.failed('wait', err);
      return null;
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      set.delete(resolveWait);
      if (set.size === 0 && this.waiters.get(channel) === set) {
        this.waiters.delete(channel);
        this.subscriptions.delete(channel);
        if (this.sub.status === 'ready') this.track(this.sub.unsubscribe(channel).catch(() => {}));
      }
    }
  }

  /** Writes `value` with a TTL (ms); a lock holder also publishes it to the waiters and releases the lock. */
  store(key: string, bytes: Uint8Array, ttlMs: number, token?: string): void {
    if (!this.usable) return;
    const value = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const px = Math.max(1, Math.round(ttlMs));
    this.track(this.run('store', token
      ? this.client.ecrFill(key, lockKey(key), value, px, fillChannel(key), token)
      : this.client.set(key, value, 'PX', px)));
  }

  /** A lock holder that has no value to store (its computation failed, or no-store) lets the waiters go. */
  release(key: string, token: string): void {
    if (!this.usable) return;
    // An empty message means "compute it yourselves"; no real entry is empty.
    this.track(this.run('release', this.client.ecrFill(key, lockKey(key), '', 1, fillChannel(key), token)));
  }

  /** Resolves when the writes started so far have finished (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await this.idle();
    this.closed = true;
    this.releaseWaiters();
    this.client.disconnect();
    this.sub.disconnect();
  }

  /**
   * The server refused the URL's database. ioredis would go on in database 0, so the tier stops
   * here for good: one warning, the connections closed, and `configError` for the callers.
   */
  private refuseDatabase(err: Error): void {
    if (this.refused) return;
    ecrMetrics.redisErrors.inc({ op: 'connect', reason: 'database' });
    ecrMetrics.redisUp.set(0);
    this.refused = (async () => {
      // The connection becomes 'ready' in database 0 right after; CONFIG GET (the same in every
      // database) then tells how many the server has, for the message.
      await readyOrGone(this.client, Math.max(1000, this.timeoutMs));
      const refusal = await describeRefusedSelect(this.client, this.url, this.db, err);
      this.refusal = refusal;
      this.releaseWaiters();
      this.client.disconnect();
      this.sub.disconnect();
      // A caller waiting in ready() reports it (and refuses to start); later, this line is all there is.
      if (this.readyCalls === 0) this.warn(`redis cache disabled: ${refusal.message}`);
      return refusal;
    })();
    for (const l of this.refusedListeners) l();
    this.refusedListeners.clear();
  }

  private async run(op: string, command: Promise<unknown>): Promise<void> {
    try {
      await command;
      this.succeeded();
    } catch (err) {
      this.failed(op, err);
    }
  }

  private track(p: Promise<unknown>): void {
    this.pending.add(p);
    void p.finally(() => this.pending.delete(p));
  }

  private releaseWaiters(): void {
    for (const set of this.waiters.values()) for (const w of [...set]) w(null);
  }

  private onMessage(channel: string, message: Buffer): void {
    const set = this.waiters.get(channel);
    if (!set) return;
    for (const w of [...set]) w(message.length === 0 ? null : message);
  }

  private failed(op: string, err: unknown): void {
    const message = err instanceof Error ? err.message : String(err);
    ecrMetrics.redisErrors.inc({ op, reason: reasonOf(err) });
    this.pausedUntil = performance.now() + this.pauseMs;
    this.lastError = `${op}: ${message}`;
    this.failuresSinceWarn++;
    if (!this.degraded) { this.degraded = true; ecrMetrics.redisUp.set(0); }
    const now = performance.now();
    if (now - this.lastWarnAt >= this.warnIntervalMs) {
      this.lastWarnAt = now;
      this.warn(`redis cache degraded (${this.failuresSinceWarn} failed operation(s); last: ${this.lastError}): serving from the in-process cache only until Redis answers`);
      this.failuresSinceWarn = 0;
    }
  }

  private succeeded(): void {
    if (this.degraded) this.recovered();
  }

  private recovered(): void {
    ecrMetrics.redisUp.set(1);
    if (!this.degraded) return;
    this.degraded = false;
    this.pausedUntil = 0;
    this.lastError = null;
    this.failuresSinceWarn = 0;
    this.lastWarnAt = -Infinity;
    this.warn('redis cache available again: using the shared tier');
  }
}
