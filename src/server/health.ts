/**
 * Health checks (no auth): liveliness = the process answers; readiness = the upstream answers.
 * A shared Redis cache tier that does not answer is reported (`redis: "degraded"`) but leaves the
 * gateway ready: it serves from its in-process cache meanwhile.
 */
import type { FastifyInstance } from 'fastify';
import { ecrMetrics } from '../monitoring/process-metrics.js';
import type { Gateway } from './gateway.js';
import { getJson } from './upstream.js';
import { joinUrlPath } from '../llm/http-transport.js';
import { redactUrlsIn } from '../core/redact-url.js';

export function registerHealth(app: FastifyInstance, gw: Gateway): void {
  app.get('/health/liveliness', async () => ({ status: 'ok' }));
  app.get('/health/readiness', async (request, reply) => {
    if (gw.closing) return reply.code(503).send({ status: 'shutting_down' });
    const health = gw.redis?.health();
    const redis = health ? { redis: health.state, ...(health.reason ? { redisReason: health.reason } : {}) } : {};
    try {
      const r = await getJson(
        joinUrlPath(gw.config.upstream, '/models'),
        { via: request.via, ...gw.upstreamAuth(undefined) },
        Math.min(2000, gw.config.upstreamTimeout),
      );
      ecrMetrics.upstreamCalls.inc({ kind: 'readiness', status: String(r.status) });
      // Any answer but a server error means the upstream is there (a 401 is a key problem, not an outage).
      if (r.status >= 500) return reply.code(503).send({ status: 'unavailable', upstream: `HTTP ${r.status}`, ...redis });
      return { status: 'ready', upstream: 'reachable', ...redis };
    } catch (err) {
      ecrMetrics.upstreamCalls.inc({ kind: 'readiness', status: 'error' });
      return reply.code(503).send({ status: 'unavailable', upstream: redactUrlsIn((err as Error).message), ...redis });
    }
  });
}
