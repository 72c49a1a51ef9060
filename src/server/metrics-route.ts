/** GET /metrics: the process registry (pipeline, gateway and prom-client's default process metrics). */
import type { FastifyInstance } from 'fastify';
import type { CacheStats } from '../cache/keyed-cache.js';
import { ecrMetrics, enableDefaultMetrics, registry } from '../monitoring/process-metrics.js';

/** `cacheStats`: the shared pipeline caches, read at each scrape (their fill is what the gateway's memory follows). */
export function registerMetrics(app: FastifyInstance, cacheStats: () => CacheStats[]): void {
  enableDefaultMetrics();
  app.get('/metrics', async (_request, reply) => {
    for (const c of cacheStats()) {
      ecrMetrics.cacheSize.set({ cache: c.name }, c.size);
      ecrMetrics.cacheEntries.set({ cache: c.name }, c.entries);
    }
    return reply.type(registry.contentType).send(await registry.metrics());
  });
}
