/**
 * Builds the gateway: a Fastify instance with one plugin per concern (auth, access log, health,
 * metrics, models, chat completions) and OpenAI-format errors everywhere. `startGateway` also
 * listens; `ecr serve` adds the signal handling.
 */
import { randomUUID } from 'node:crypto';
import type { Writable } from 'node:stream';
import { pino } from 'pino';
import Fastify, { LogController, type FastifyError, type FastifyInstance } from 'fastify';
import { registerAccessLog } from './access-log.js';
import { registerAuth } from './auth.js';
import type { ServeConfig } from './config.js';
import { ecrCompletion } from './ecr-route.js';
import { ApiError, invalidRequest, toApiError } from './errors.js';
import { parseJsonBody } from './json-body.js';
import { Gateway } from './gateway.js';
import { registerHealth } from './health.js';
import { registerMetrics } from './metrics-route.js';
import { ECR_PREFIX, registerModels } from './models.js';
import { passThrough } from './passthrough.js';
import { registerLoopGuard, upstreamIsSelf } from './loop.js';
import { ecrMetrics } from '../monitoring/process-metrics.js';
import { UsageError } from '../core/errors.js';
import { redactUrl } from '../core/redact-url.js';

export { redactUrl };

export interface GatewayOptions {
  /** Where the JSON log lines go (default stdout). */
  logStream?: Writable;
}

export interface BuiltGateway {
  app: FastifyInstance;
  gateway: Gateway;
}

function validationParam(err: FastifyError): string | null {
  const v = err.validation?.[0];
  if (!v) return null;
  const path = v.instancePath.replace(/^\//, '').replace(/\//g, '.');
  const missing = (v.params as { missingProperty?: string })?.missingProperty;
  return [path, missing].filter(Boolean).join('.') || null;
}

export function buildGateway(config: ServeConfig, options: GatewayOptions = {}): BuiltGateway {
  const gateway = new Gateway(config, (err) => {
    ecrMetrics.auditLogErrors.inc();
    app.log.error({ err: err.message, file: config.auditLog }, 'audit log write failed');
  });
  // The access log goes to stdout through an asynchronous writer: a synchronous write per request
  // was ~8% of a pass-through request's CPU. It is flushed when the server closes.
  const logDestination = options.logStream ? null : pino.destination({ dest: 1, sync: false });
  const app: FastifyInstance = Fastify({
    logger: { level: config.logLevel, stream: options.logStream ?? logDestination! },
    // Fastify's own per-request lines are replaced by one access-log line (access-log.ts).
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: config.bodyLimit,
    // Always the server's own, unique: it keys the access log (reqId) and is the audit log's group,
    // which a client must not be able to choose (and so mix its lines into another request's).
    // The client's x-request-id is kept beside it (access-log.ts).
    genReqId: () => `req_${randomUUID().replace(/-/g, '')}`,
    // Requests that arrive on an open connection while the server drains get the gateway's own
    // 503 (refuseWhileClosing below), in the OpenAI error shape clients parse, not Fastify's.
    return503OnClosing: false,
    forceCloseConnections: 'idle',
  });
  if (logDestination)
    app.addHook('onClose', async () => {
      logDestination.flushSync();
    });
  if (gateway.auditLog) {
    const audit = gateway.auditLog;
    app.addHook('onClose', async () => {
      await audit.close();
    });
  }
  gateway.warn = (m) => app.log.warn(m);
  // Writes still in flight finish (each within --redis-timeout) before the connections close.
  if (gateway.redis)
    app.addHook('onClose', async () => {
      await gateway.redis!.close();
    });

  // JSON only (Fastify's own text/plain parser would hand a string to the routes: 400 "must be
  // object" where any other content type gets 415). Keep the raw bytes: pass-through forwards
  // exactly what the client sent.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request, body: Buffer, done) => {
    request.rawBody = body;
    try {
      done(null, parseJsonBody(body));
    } catch (e) {
      done(e as Error, undefined);
    }
  });

  app.setErrorHandler((err: FastifyError, _request, reply) => {
    let api: ApiError;
    if (err.validation) api = invalidRequest(validationParam(err), err.message.replace(/^body\/?\S* /, ''));
    else if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE')
      api = new ApiError(413, 'invalid_request_error', `the request body is larger than the limit of ${config.bodyLimit} bytes`, null, 'body_too_large');
    else if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE')
      api = new ApiError(415, 'invalid_request_error', 'send the body as application/json', null, 'unsupported_media_type');
    else if (!(err instanceof ApiError) && err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500)
      api = new ApiError(err.statusCode, 'invalid_request_error', err.message);
    else api = toApiError(err);
    if (api.status === 401) ecrMetrics.rejected.inc({ reason: 'auth' });
    else if (api.apiCode === 'concurrency_limit') ecrMetrics.rejected.inc({ reason: 'concurrency' });
    else if (api.status === 400) ecrMetrics.rejected.inc({ reason: 'invalid' });
    if (api.status >= 500) reply.log.warn({ err: api.message, status: api.status }, 'request failed');
    return reply.code(api.status).headers(api.headers).send(api.body());
  });
  app.setNotFoundHandler((request, reply) => {
    const api = new ApiError(
      404,
      'invalid_request_error',
      `no route ${request.method} ${request.url.split('?')[0]}${request.url.startsWith('/v1/') ? '' : ' (the API is under /v1/)'}`,
      null,
      'not_found',
    );
    return reply.code(404).send(api.body());
  });
  app.addHook('onSend', async (_request, reply, payload) => {
    if (gateway.closing) reply.header('connection', 'close');
    return payload;
  });

  registerAccessLog(app, gateway);
  refuseWhileClosing(app, gateway);
  // Before auth: a loop is reported as one even when the gateway's upstream key is also a client key.
  registerLoopGuard(app, gateway.id);
  registerAuth(app, config.apiKeys, config.metricsAuth);
  registerHealth(app, gateway);
  registerMetrics(app, () => gateway.root.cacheStats());
  registerModels(app, gateway);

  const modelSchema = {
    body: { type: 'object', required: ['model'], properties: { model: { type: 'string', minLength: 1 } } },
  };
  app.post('/v1/chat/completions', { schema: modelSchema }, async (request, reply) => {
    const model = (request.body as { model: string }).model;
    if (model.startsWith(ECR_PREFIX)) return ecrCompletion(request, reply, gateway, model.slice(ECR_PREFIX.length));
    if (config.ecrAll) return ecrCompletion(request, reply, gateway, model);
    return passThrough(request, reply, gateway, '/chat/completions');
  });
  app.post('/v1/embeddings', { schema: modelSchema }, async (request, reply) => passThrough(request, reply, gateway, '/embeddings'));
  return { app, gateway };
}

/**
 * While draining, a new request (one that arrived on a connection still open) is refused with a
 * 503 that says to retry; the health routes still answer (readiness reports shutting_down).
 */
function refuseWhileClosing(app: FastifyInstance, gateway: Gateway): void {
  app.addHook('onRequest', async (request) => {
    if (!gateway.closing || request.url.startsWith('/health/')) return;
    throw new ApiError(
      503,
      'service_unavailable',
      'the gateway is shutting down and takes no new requests; retry it on another instance',
      null,
      'shutting_down',
      { 'retry-after': '1' },
    );
  });
}

/** A port or host that cannot be listened on is a configuration error (exit 2), in one line. */
function listenError(err: unknown, config: ServeConfig): unknown {
  const code = (err as NodeJS.ErrnoException)?.code;
  const where = `${config.host.includes(':') ? `[${config.host}]` : config.host}:${config.port}`;
  switch (code) {
    case 'EADDRINUSE':
      return new UsageError(`--port ${config.port}: ${where} is already in use; choose another port, or --port 0 for any free one`);
    case 'EACCES':
      return new UsageError(
        `--port ${config.port}: not permitted to listen on ${where} (ports below 1024 need privileges); choose another port, or --port 0 for any free one`,
      );
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EAI_NONAME':
    case 'EAI_FAIL':
      return new UsageError(`--host ${config.host}: cannot resolve this name (${code}); give an address of this machine, e.g. 127.0.0.1 or 0.0.0.0`);
    case 'EADDRNOTAVAIL':
      return new UsageError(`--host ${config.host}: not an address of this machine (${code}); give one of its addresses, e.g. 127.0.0.1 or 0.0.0.0`);
    default:
      return err;
  }
}

/** Builds and listens; resolves with the URL it listens on (port 0 picks a free one). */
export async function startGateway(config: ServeConfig, options: GatewayOptions = {}): Promise<BuiltGateway & { url: string }> {
  const built = buildGateway(config, options);
  // A short wait lets the first requests use Redis; a Redis that is down does not hold the start.
  if (built.gateway.redis && !(await built.gateway.redis.ready(Math.max(1000, config.redisTimeout)))) {
    // A database the server refuses is a configuration error (exit 2), not a Redis that is down.
    const refused = built.gateway.redis.configError;
    if (refused) {
      await built.app.close();
      throw refused;
    }
    built.app.log.warn({ redis: redactUrl(config.redis!) }, 'redis not reachable at start: serving from the in-process cache until it answers');
  }
  try {
    await built.app.listen({ port: config.port, host: config.host });
  } catch (err) {
    // Nothing was served: release what was opened (Redis connections, the audit log) so the process can exit.
    await built.app.close();
    throw listenError(err, config);
  }
  const self = await upstreamIsSelf(
    config.upstream,
    built.app.addresses().filter((a) => typeof a !== 'string'),
  );
  if (self) {
    await built.app.close();
    throw new UsageError(
      `--upstream ${redactUrl(config.upstream)} is this gateway itself (${self}, where it listens): every request would call itself; point it at the LLM server`,
    );
  }
  const addr = built.app.server.address();
  const port = typeof addr === 'object' && addr ? addr.port : config.port;
  return { ...built, url: `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}` };
}
