/**
 * Retry policy for HTTP calls: exponential backoff with full jitter (delay drawn uniformly from
 * [0, min(cap, base * 2^attempt)]), and a server's Retry-After honoured as the wait when given.
 */

export interface RetryPolicy {
  /** Retries after the first attempt (default 3). */
  retries: number;
  /** Backoff base in ms (default 250). */
  baseDelayMs: number;
  /** Backoff cap in ms (default 8000). */
  maxDelayMs: number;
  /** A Retry-After longer than this is not waited for; the call fails instead (default 60 s). */
  maxRetryAfterMs: number;
  /** Source of jitter in [0, 1); injectable so tests can pin the wait. */
  random: () => number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = {
  retries: 3,
  baseDelayMs: 250,
  maxDelayMs: 8000,
  maxRetryAfterMs: 60_000,
  random: Math.random,
};

/** Full-jitter backoff delay before retry number `attempt + 1` (attempt is 0-based). */
export function backoffDelayMs(policy: RetryPolicy, attempt: number): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** attempt);
  return policy.random() * ceiling;
}

/**
 * Parses a Retry-After header: delta-seconds (integer; decimals accepted) or an HTTP date.
 * Returns the wait in ms (>= 0), or undefined when absent or unparseable.
 */
export function parseRetryAfter(header: string | null | undefined, now: number = Date.now()): number | undefined {
  if (header === null || header === undefined) return undefined;
  const v = header.trim();
  if (v === '') return undefined;
  if (/^\d+(\.\d+)?$/.test(v)) return Number(v) * 1000;
  const when = Date.parse(v);
  if (Number.isNaN(when)) return undefined;
  return Math.max(0, when - now);
}

/**
 * Retryable statuses: 429 and 5xx. Other 4xx are the caller's fault and fail at once, and so does
 * 508 Loop Detected (an upstream that leads back to the caller answers it every time).
 */
export function isRetryableStatus(status: number): boolean {
  return status === 429 || (status >= 500 && status !== 508);
}

/** Sleeps `ms`, or rejects with the signal's reason when it aborts first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
