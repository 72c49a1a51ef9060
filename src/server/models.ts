/** GET /v1/models: the upstream's models, each also offered as `ecr/<model>` (what Open WebUI and similar clients pick from). */
import type { FastifyInstance } from 'fastify';
import { ecrMetrics } from '../monitoring/process-metrics.js';
import { ApiError } from './errors.js';
import type { Gateway } from './gateway.js';
import { UpstreamUnreachableError, getJson } from './upstream.js';
import { joinUrlPath } from '../llm/http-transport.js';
import { redactUrl } from '../core/redact-url.js';

export const ECR_PREFIX = 'ecr/';

export function registerModels(app: FastifyInstance, gw: Gateway): void {
  app.get('/v1/models', async (request) => {
    const url = joinUrlPath(gw.config.upstream, '/models');
    let r;
    try {
      r = await getJson(url, { via: request.via, ...gw.upstreamAuth(request.headers.authorization) }, gw.config.upstreamTimeout);
    } catch (err) {
      ecrMetrics.upstreamCalls.inc({ kind: 'models', status: 'error' });
      if (err instanceof UpstreamUnreachableError)
        throw new ApiError(err.timedOut ? 504 : 502, err.timedOut ? 'timeout_error' : 'upstream_error', err.message, null, 'upstream_unreachable');
      throw err;
    }
    ecrMetrics.upstreamCalls.inc({ kind: 'models', status: String(r.status) });
    const data = (r.json as { data?: unknown } | null)?.data;
    if (r.status === 508)
      throw new ApiError(
        508,
        'upstream_error',
        `upstream ${redactUrl(url)} answered HTTP 508: a loop, its upstream leads back to this gateway`,
        null,
        'loop_detected',
      );
    if (r.status !== 200 || !Array.isArray(data)) {
      throw new ApiError(
        502,
        'upstream_error',
        `upstream ${redactUrl(url)} answered HTTP ${r.status}${Array.isArray(data) ? '' : ' without a model list'}`,
        null,
        'upstream_error',
      );
    }
    const models = data.filter((m): m is { id: string } => typeof (m as { id?: unknown })?.id === 'string');
    return {
      object: 'list',
      data: [
        ...models,
        ...models
          .filter((m) => !m.id.startsWith(ECR_PREFIX))
          .map((m) => ({ id: `${ECR_PREFIX}${m.id}`, object: 'model', created: (m as { created?: number }).created ?? 0, owned_by: 'ecr' })),
      ],
    };
  });
}
