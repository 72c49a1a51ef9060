/**
 * One JSON line per request (pino, through Fastify's logger) and the request metrics, written when
 * the response's socket work is over, aborted requests included (status 499), so neither a log line
 * nor an in-flight gauge decrement can be skipped. Prompt text is logged only with --log-prompts.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ecrMetrics } from '../monitoring/process-metrics.js';
import type { Gateway } from './gateway.js';

export interface EcrLogInfo {
  upstreamModel?: string;
  stream?: boolean;
  passthrough?: boolean;
  k?: number;
  cci?: number;
  admissible?: boolean;
  fallback?: boolean;
  upstreamCalls?: number;
  tokens?: number;
  /** x-ecr-cache: hit, partial or miss. */
  cache?: string;
  streamError?: number;
}

declare module 'fastify' {
  interface FastifyRequest {
    ecrLog?: EcrLogInfo;
    rawBody?: Buffer;
    /**
     * The x-request-id the response carries and pass-through forwards: the client's own when it
     * sent a usable one (for tracing across services), else the server's `request.id`.
     */
    requestId: string;
  }
}

/** A client's x-request-id is taken when it is short and plain (it is echoed in a header and logged). */
const CLIENT_REQUEST_ID = /^[\w.:-]{1,128}$/;

function routeOf(request: FastifyRequest): string {
  return request.routeOptions?.url ?? 'unmatched';
}

export function registerAccessLog(app: FastifyInstance, gw: Gateway): void {
  app.decorateRequest('requestId', '');
  app.addHook('onRequest', async (request, reply) => {
    const t0 = performance.now();
    const route = routeOf(request);
    const given = request.headers['x-request-id'];
    request.requestId = typeof given === 'string' && CLIENT_REQUEST_ID.test(given) ? given : request.id;
    reply.header('x-request-id', request.requestId);
    ecrMetrics.httpInFlight.inc({ route });
    reply.raw.once('close', () => {
      const latencyMs = performance.now() - t0;
      const aborted = !reply.raw.writableFinished;
      // A stream that ended with an error event is logged and counted with that error's status
      // (its headers said 200; `streamError` says so too).
      const status = aborted ? 499 : (request.ecrLog?.streamError ?? reply.raw.statusCode);
      const body = request.body as { model?: unknown; messages?: unknown } | undefined;
      const model = typeof body?.model === 'string' ? body.model : undefined;
      ecrMetrics.httpInFlight.dec({ route });
      ecrMetrics.httpRequests.inc({ route, model: gw.modelLabel(model), status: String(status) });
      ecrMetrics.httpRequestDuration.observe({ route }, latencyMs / 1000);
      const info = request.ecrLog ?? {};
      request.log.info(
        {
          requestId: request.requestId,
          method: request.method,
          route,
          status,
          latency_ms: Math.round(latencyMs * 100) / 100,
          ...(model !== undefined ? { model } : {}),
          ...info,
          ...(aborted ? { aborted: true } : {}),
          ...(gw.config.logPrompts && body?.messages !== undefined ? { messages: body.messages } : {}),
        },
        'request',
      );
    });
  });
}
