/** GET /metrics: the process registry (pipeline, gateway and prom-client's default process metrics). */
import type { FastifyInstance } from 'fastify';
import { enableDefaultMetrics, registry } from '../monitoring/process-metrics.js';

export function registerMetrics(app: FastifyInstance): void {
  enableDefaultMetrics();
  app.get('/metrics', async (_request, reply) => reply.type(registry.contentType).send(await registry.metrics()));
}
