/**
 * Requests for non-ECR models go to the upstream unchanged: the client's body bytes as received,
 * and the upstream's status, content type and body streamed back as they arrive (SSE included).
 * A client that goes away tears the upstream exchange down.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { ecrMetrics } from '../monitoring/process-metrics.js';
import { ApiError } from './errors.js';
import type { Gateway } from './gateway.js';
import { UpstreamUnreachableError, requestUpstream } from './upstream.js';
import { joinUrlPath } from '../llm/http-transport.js';

/** Response headers worth keeping from the upstream (hop-by-hop ones are the server's business). */
const FORWARDED = ['content-type', 'content-length', 'retry-after', 'cache-control', 'openai-processing-ms', 'x-ratelimit-remaining-requests', 'x-ratelimit-remaining-tokens'];

export async function passThrough(request: FastifyRequest, reply: FastifyReply, gw: Gateway, path: string): Promise<FastifyReply> {
  const abort = new AbortController();
  reply.raw.on('close', () => { if (!reply.raw.writableFinished) abort.abort(); });
  const headers: Record<string, string> = {
    'content-type': request.headers['content-type'] ?? 'application/json',
    accept: request.headers.accept ?? '*/*',
    'x-request-id': request.requestId,
    via: request.via,
    ...gw.upstreamAuth(request.headers.authorization),
  };
  let res;
  try {
    res = await requestUpstream({ method: 'POST', url: joinUrlPath(gw.config.upstream, path), headers, body: request.rawBody ?? Buffer.alloc(0), timeoutMs: gw.config.upstreamTimeout, signal: abort.signal });
  } catch (err) {
    ecrMetrics.upstreamCalls.inc({ kind: 'passthrough', status: err instanceof UpstreamUnreachableError && err.timedOut ? 'timeout' : 'error' });
    if (err instanceof UpstreamUnreachableError) {
      throw err.timedOut
        ? new ApiError(504, 'timeout_error', err.message, null, 'upstream_timeout')
        : new ApiError(502, 'upstream_error', err.message, null, 'upstream_unreachable');
    }
    throw err;
  }
  ecrMetrics.upstreamCalls.inc({ kind: 'passthrough', status: String(res.statusCode ?? 0) });
  request.ecrLog = { ...request.ecrLog, passthrough: true };
  reply.code(res.statusCode ?? 502);
  for (const h of FORWARDED) {
    const v = res.headers[h];
    if (v !== undefined) reply.header(h, v);
  }
  return reply.send(res);
}
