/**
 * Client API keys: `Authorization: Bearer KEY`, compared in constant time. Both sides are hashed
 * to SHA-256 first, so timingSafeEqual always compares 32 bytes and the key's length does not
 * leak either; every configured key is compared, whichever matches.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { ApiError } from './errors.js';

const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();

export function keyMatcher(keys: readonly string[]): (presented: string) => boolean {
  const digests = keys.map(digest);
  return (presented) => {
    const d = digest(presented);
    let ok = false;
    for (const k of digests) ok = timingSafeEqual(d, k) || ok;
    return ok;
  };
}

/** Requires a key on every route except the health checks (and /metrics unless `metricsAuth`). */
export function registerAuth(app: FastifyInstance, keys: readonly string[], metricsAuth: boolean): void {
  if (keys.length === 0) return;
  const matches = keyMatcher(keys);
  app.addHook('onRequest', async (request) => {
    const path = request.url.split('?')[0];
    if (path.startsWith('/health/') || (path === '/metrics' && !metricsAuth)) return;
    const header = request.headers.authorization ?? '';
    const m = /^Bearer\s+(.+)$/i.exec(header);
    if (!m || !matches(m[1].trim())) {
      throw new ApiError(
        401,
        'authentication_error',
        m ? 'Incorrect API key provided.' : 'Missing API key: send "Authorization: Bearer KEY".',
        null,
        'invalid_api_key',
      );
    }
  });
}
