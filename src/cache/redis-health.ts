/**
 * Whether the shared tier's operations succeed. Redis being down or slow is never an error for the
 * caller: a failed operation pauses the tier for `pauseMs` so that requests do not each wait out a
 * timeout, failures are counted (ecr_redis_errors_total) and reported by a log line at most every
 * `warnIntervalMs`, and the first success (or the connection's `ready`) ends the degraded state,
 * with a line saying so.
 */
import { ecrMetrics } from '../monitoring/process-metrics.js';

export interface RedisHealth {
  state: 'ok' | 'degraded';
  /** Why it is degraded. */
  reason?: string;
}

function reasonOf(err: unknown): string {
  const m = err instanceof Error ? err.message : String(err);
  if (/timed out/i.test(m)) return 'timeout';
  if (/writeable|connect|ECONNREFUSED|ECONNRESET|closed|EPIPE/i.test(m)) return 'connection';
  return 'error';
}

export class OperationHealth {
  private pausedUntil = 0;
  private lastErrorText: string | null = null;
  private degraded = false;
  private failuresSinceWarn = 0;
  private lastWarnAt = -Infinity;

  constructor(
    private readonly pauseMs: number,
    private readonly warnIntervalMs: number,
    private readonly warn: (message: string) => void,
  ) {}

  /** True for `pauseMs` after a failure (until a success ends it). */
  get paused(): boolean {
    return performance.now() < this.pausedUntil;
  }

  /** The last failure, `<op>: <message>`, until a success. */
  get lastError(): string | null {
    return this.lastErrorText;
  }

  failed(op: string, err: unknown): void {
    const message = err instanceof Error ? err.message : String(err);
    ecrMetrics.redisErrors.inc({ op, reason: reasonOf(err) });
    this.pausedUntil = performance.now() + this.pauseMs;
    this.lastErrorText = `${op}: ${message}`;
    this.failuresSinceWarn++;
    if (!this.degraded) {
      this.degraded = true;
      ecrMetrics.redisUp.set(0);
    }
    const now = performance.now();
    if (now - this.lastWarnAt >= this.warnIntervalMs) {
      this.lastWarnAt = now;
      this.warn(
        `redis cache degraded (${this.failuresSinceWarn} failed operation(s); last: ${this.lastErrorText}): serving from the in-process cache only until Redis answers`,
      );
      this.failuresSinceWarn = 0;
    }
  }

  succeeded(): void {
    if (this.degraded) this.recovered();
  }

  recovered(): void {
    ecrMetrics.redisUp.set(1);
    if (!this.degraded) return;
    this.degraded = false;
    this.pausedUntil = 0;
    this.lastErrorText = null;
    this.failuresSinceWarn = 0;
    this.lastWarnAt = -Infinity;
    this.warn('redis cache available again: using the shared tier');
  }
}
