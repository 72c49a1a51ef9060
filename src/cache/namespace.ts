/**
 * The one check of a cache namespace, for every place one comes in: `ecr run --cache-namespace`,
 * the gateway's `ecr.cache.namespace`, RunOptions.cache and redisKey. Each caller keeps its own
 * error type and the name it gives the value (`fail` wraps the shared wording).
 */

/** Letters, digits, `_`, `-` and `.`, 1 to 64 of them: no `:` (it separates the key's parts). */
export const NAMESPACE_RE = /^[A-Za-z0-9_.-]{1,64}$/;

/**
 * Returns `value` when it is a namespace, else throws `fail(problem)`, the problem reading
 * `must be 1 to 64 letters, digits, "_", "-" or ".", got <value as JSON>`.
 */
export function checkCacheNamespace(value: unknown, fail: (problem: string) => Error): string {
  if (typeof value === 'string' && NAMESPACE_RE.test(value)) return value;
  throw fail(`must be 1 to 64 letters, digits, "_", "-" or ".", got ${JSON.stringify(value)}`);
}
