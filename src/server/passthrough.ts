/**
 * Requests for non-ECR models go to the upstream unchanged: the client's body bytes as received,
 * and the upstream's status, content type and body streamed back as they arrive (SSE included).
 * A client that goes away tears the upstream exchange down. Cut by shutdown, a request still
 * waiting for the upstream answers 503, and an SSE stream ends with an `error` event.
 */
import type { IncomingMessage } from 'node:http';
import { PassThrough } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { ecrMetrics } from '../monitoring/process-metrics.js';
import { ApiError, ShuttingDownError, toApiError } from './errors.js';
import type { Gateway } from './gateway.js';
import { UpstreamUnreachableError, requestUpstream } from './upstream.js';
import { joinUrlPath } from '../llm/http-transport.js';

/** Response headers worth keeping from the upstream (hop-by-hop ones are the server's business). */
const FORWARDED = [
  'content-type',
  'content-length',
  'retry-after',
  'cache-control',
  'openai-processing-ms',
  'x-ratelimit-remaining-requests',
  'x-ratelimit-remaining-tokens',
];

export async function passThrough(request: FastifyRequest, reply: FastifyReply, gw: Gateway, path: string): Promise<FastifyReply> {
  const abort = gw.track(reply.raw);
  const headers: Record<string, string> = {
    'content-type': request.headers['content-type'] ?? 'application/json',
    accept: request.headers.accept ?? '*/*',
    'x-request-id': request.requestId,
    via: request.via,
    ...gw.upstreamAuth(request.headers.authorization),
  };
  let res;
  try {
    res = await requestUpstream({
      method: 'POST',
      url: joinUrlPath(gw.config.upstream, path),
      headers,
      body: request.rawBody ?? Buffer.alloc(0),
      timeoutMs: gw.config.upstreamTimeout,
      signal: abort.signal,
    });
  } catch (err) {
    if (abort.signal.reason instanceof ShuttingDownError) throw toApiError(abort.signal.reason);
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
  if (!/^text\/event-stream/i.test(String(res.headers['content-type'] ?? ''))) return reply.send(res);
  return reply.send(sseUntilShutdown(res, abort.signal, request));
}

/** True when `tail` (the last bytes sent) ends an SSE event: a cut there leaves no event half-sent. */
function endsEvent(tail: Buffer): boolean {
  const s = tail.toString('latin1');
  return s === '' || s.endsWith('\n\n') || s.endsWith('\r\r') || s.endsWith('\r\n\r\n');
}

/**
 * The upstream's SSE body as it arrives. Cut by shutdown between two events, it ends with an
 * `error` event (as an ECR stream does); cut inside an event, which no addition can make whole,
 * it just ends.
 */
function sseUntilShutdown(res: IncomingMessage, signal: AbortSignal, request: FastifyRequest): PassThrough {
  const out = new PassThrough();
  let tail = Buffer.alloc(0);
  res.on('data', (c: Buffer) => {
    tail = Buffer.concat([tail, c.subarray(-4)]).subarray(-4);
  });
  res.on('error', (err) => {
    if (!(signal.reason instanceof ShuttingDownError)) out.destroy(err);
  });
  res.pipe(out);
  signal.addEventListener(
    'abort',
    () => {
      if (!(signal.reason instanceof ShuttingDownError) || out.writableEnded) return;
      res.unpipe(out);
      const api = toApiError(signal.reason);
      request.ecrLog = { ...request.ecrLog, streamError: api.status };
      out.end(endsEvent(tail) ? `data: ${JSON.stringify(api.body())}\n\n` : undefined);
    },
    { once: true },
  );
  return out;
}
