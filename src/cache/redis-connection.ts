/**
 * The shared tier's two connections to Redis (commands with the scripts, and subscriptions) and
 * their state: usable, degraded after a failure (redis-health.ts), or off for good when the server
 * refused the URL's database.
 *
 * Commands are never queued while disconnected (they fail at once), each has a small timeout
 * (ioredis `commandTimeout`), and ioredis reconnects by itself. A database index the server
 * refuses is not an outage but a configuration error: ioredis would carry on in database 0,
 * sharing (and overwriting) another deployment's entries. The tier is then off for good
 * (`configError`, one warning, health "degraded"), and the callers that start with it (`ecr run`,
 * `ecr serve`) refuse to start.
 */
import { Redis, type RedisOptions } from 'ioredis';
import { describeRefusedSelect, isSelectRefused, type RedisDatabaseError, type RedisTarget } from './redis-url.js';
import { defineScripts, type ScriptClient } from './redis-scripts.js';
import { OperationHealth, type RedisHealth } from './redis-health.js';
import { ecrMetrics } from '../monitoring/process-metrics.js';

export interface ConnectionSettings {
  /** The URL as given, for messages (redacted there). */
  url: string;
  timeoutMs: number;
  pauseMs: number;
  warnIntervalMs: number;
  warn: (message: string) => void;
  /** A connection closed or the tier stopped: nothing more can be published to this process. */
  onLost: () => void;
}

/** Resolves once `c` is ready, has ended, or `ms` passed. */
function readyOrGone(c: Redis, ms: number): Promise<void> {
  if (c.status === 'ready' || c.status === 'end') return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      c.off('ready', done);
      c.off('end', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    c.once('ready', done);
    c.once('end', done);
  });
}

export class RedisConnection {
  readonly client: ScriptClient;
  /** Subscriptions need a connection of their own. */
  readonly sub: Redis;
  /** Whether operations succeed: the store reports each one here. */
  readonly ops: OperationHealth;
  private readonly settings: ConnectionSettings;
  private readonly db: number;
  private closed = false;
  /** Set once the server refused the URL's database: the tier is off for good. */
  private refused: Promise<RedisDatabaseError> | null = null;
  private refusal: RedisDatabaseError | null = null;
  private readonly refusedListeners = new Set<() => void>();
  private readyCalls = 0;

  constructor(target: RedisTarget, settings: ConnectionSettings) {
    this.settings = settings;
    this.db = target.db ?? 0;
    this.ops = new OperationHealth(settings.pauseMs, settings.warnIntervalMs, settings.warn);
    const { timeoutMs } = settings;
    const connection: RedisOptions = {
      // Never queue commands while disconnected: a request must not wait for Redis to return.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      commandTimeout: timeoutMs,
      // Commands issued in one tick (a request's K step lookups) leave in one write.
      enableAutoPipelining: true,
      connectTimeout: Math.max(1000, timeoutMs),
      // Reconnect for ever, at most a second apart, so a returning Redis is used again soon.
      retryStrategy: (times) => Math.min(times * 100, 1000),
      sentinelRetryStrategy: (times) => Math.min(times * 100, 1000),
      ...target,
    };
    const client = defineScripts(new Redis(connection));
    this.client = client;
    // It exists from the start so the first waiter can use it. Its waiters are released when it
    // drops (below), so nothing is to be resubscribed on reconnect.
    this.sub = client.duplicate({ autoResubscribe: false });
    for (const c of [client, this.sub]) {
      // ioredis reports connection errors as events; without a listener it prints them itself.
      c.on('error', (err: Error) => {
        if (this.closed) return;
        if (isSelectRefused(err)) this.refuseDatabase(err);
        else if (!this.refused) this.ops.failed('connection', err);
      });
      c.on('ready', () => {
        if (c === client && !this.refused) this.ops.recovered();
      });
    }
    client.on('close', () => {
      if (!this.closed && !this.refused) this.ops.failed('connection', new Error('connection closed'));
    });
    // A fill can no longer arrive once either connection is gone: the waiters compute for themselves.
    for (const c of [client, this.sub]) c.on('close', () => settings.onLost());
  }

  /**
   * Resolves true once both connections are up, false after `timeoutMs` (the tier is then used
   * once Redis answers) or when the server refused the database (see `configError`).
   */
  async ready(timeoutMs: number): Promise<boolean> {
    this.readyCalls++;
    try {
      return await this.waitReady(timeoutMs);
    } finally {
      this.readyCalls--;
    }
  }

  private async waitReady(timeoutMs: number): Promise<boolean> {
    const up = (c: Redis) => (c.status === 'ready' ? Promise.resolve() : new Promise<void>((r) => c.once('ready', () => r())));
    let timer: NodeJS.Timeout | undefined;
    let onRefused: (() => void) | undefined;
    // The SELECT is refused before 'ready' is emitted: a refusal, not the 'ready', decides.
    const ok = await Promise.race([
      Promise.all([up(this.client), up(this.sub)]).then(() => this.refused === null),
      new Promise<boolean>((r) => {
        onRefused = () => r(false);
        if (this.refused) onRefused();
        else this.refusedListeners.add(onRefused);
      }),
      new Promise<boolean>((r) => {
        timer = setTimeout(() => r(false), timeoutMs);
      }),
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

  get isClosed(): boolean {
    return this.closed;
  }

  /** True when operations are sent (connected, and not paused after a failure). */
  get usable(): boolean {
    return !this.closed && this.refused === null && this.client.status === 'ready' && !this.ops.paused;
  }

  health(): RedisHealth {
    if (this.refused) return { state: 'degraded', reason: this.refusal?.message ?? 'the server refused the database index' };
    const lastError = this.ops.lastError;
    if (this.client.status !== 'ready') return { state: 'degraded', reason: `not connected (${this.client.status})${lastError ? `: ${lastError}` : ''}` };
    if (this.ops.paused) return { state: 'degraded', reason: lastError ?? 'paused after a failed operation' };
    return { state: 'ok' };
  }

  /** Ends both connections for good (the waiters are released first). */
  close(): void {
    this.closed = true;
    this.settings.onLost();
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
      await readyOrGone(this.client, Math.max(1000, this.settings.timeoutMs));
      const refusal = await describeRefusedSelect(this.client, this.settings.url, this.db, err);
      this.refusal = refusal;
      this.settings.onLost();
      this.client.disconnect();
      this.sub.disconnect();
      // A caller waiting in ready() reports it (and refuses to start); later, this line is all there is.
      if (this.readyCalls === 0) this.settings.warn(`redis cache disabled: ${refusal.message}`);
      return refusal;
    })();
    for (const l of this.refusedListeners) l();
    this.refusedListeners.clear();
  }
}
