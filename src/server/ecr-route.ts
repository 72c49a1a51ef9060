/**
 * Chat completions through ECR: validate, take a concurrency slot, run a per-request pipeline
 * derived from the root one against the upstream model, and answer with one `chat.completion` or,
 * for `stream: true`, SSE. A stream's headers wait until the first progress tick, so a request that
 * fails fast (upstream down, every candidate rejected) still gets a real 4xx/5xx status.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { PipelineResult } from '../pipeline/types.js';
import { completionBody, completionChunks, completionId, ecrHeaders, type CompletionMeta } from './completion.js';
import { ApiError, invalidRequest, toApiError } from './errors.js';
import type { Gateway } from './gateway.js';
import { mergeSettings, parseEcrChatRequest, parseEcrSettings, scoringConfig, type EcrSettings } from './request-settings.js';
import { SSE_HEADERS, SseStream } from './sse.js';

function headerSettings(request: FastifyRequest, gw: Gateway): EcrSettings {
  const raw = request.headers['x-ecr-config'];
  if (raw === undefined) return {};
  let json: unknown;
  try {
    json = JSON.parse(Array.isArray(raw) ? raw[0] : raw);
  } catch (e) {
    throw invalidRequest('x-ecr-config', `header is not JSON: ${(e as Error).message}`);
  }
  return parseEcrSettings(json, gw.config, 'x-ecr-config');
}

export async function ecrCompletion(request: FastifyRequest, reply: FastifyReply, gw: Gateway, upstreamModel: string): Promise<FastifyReply> {
  const arrived = new Date();
  const body = request.body as Record<string, unknown>;
  if (upstreamModel === '') throw invalidRequest('model', 'name the upstream model after "ecr/", e.g. "ecr/llama3"');
  const plan = parseEcrChatRequest(body, upstreamModel);
  const bodySettings = body.ecr !== undefined ? parseEcrSettings(body.ecr, gw.config, 'ecr') : {};
  const s = mergeSettings(gw.config.defaults, headerSettings(request, gw), bodySettings);
  const audit = s.audit ?? 'summary';
  const k = s.k ?? gw.root.maxK;
  request.ecrLog = { upstreamModel, stream: plan.stream };

  if (!gw.gate.tryAcquire()) {
    throw new ApiError(
      429,
      'rate_limit_error',
      `the gateway is at its limit of ${gw.gate.limit} concurrent ECR requests; retry shortly`,
      null,
      'concurrency_limit',
      { 'retry-after': '1' },
    );
  }
  const abort = gw.track(reply.raw);
  try {
    const pipeline = gw.root.derive({
      provider: gw.providerFor(upstreamModel, request.via),
      k,
      horizon: s.horizon ?? gw.root.horizon,
      adaptiveK: s.fixedK !== undefined ? !s.fixedK : (s.adaptiveK ?? true),
      topLogprobs: s.topLogprobs ?? 5,
      sampling: { temperature: gw.config.temperature, ...plan.sampling },
      unrollSampling: undefined,
      config: scoringConfig(gw.config.scoring, s),
    });
    const meta: CompletionMeta = { id: completionId(), created: Math.floor(Date.now() / 1000), model: plan.model };
    const run = pipeline.run(plan.prompt, { messages: plan.messages, signal: abort.signal, ...(s.cache ? { cache: s.cache } : {}) }).then((result) => {
      gw.auditLog?.record({
        group: request.id,
        requestId: request.requestId,
        time: arrived,
        result,
        serverWeights: s.weights === undefined && s.preset === undefined,
        ...(gw.config.logPrompts ? { messages: plan.messages } : {}),
      });
      return result;
    });
    if (!plan.stream) {
      const result = await run;
      noteResult(request, result);
      return reply.headers(ecrHeaders(result)).send(completionBody(meta, result, audit));
    }
    return await stream(request, reply, gw, run, meta, audit, plan.includeUsage);
  } finally {
    gw.gate.release();
  }
}

async function stream(
  request: FastifyRequest,
  reply: FastifyReply,
  gw: Gateway,
  run: Promise<PipelineResult>,
  meta: CompletionMeta,
  audit: 'none' | 'summary' | 'full',
  includeUsage: boolean,
): Promise<FastifyReply> {
  const sse = new SseStream();
  const t0 = performance.now();
  let started = false;
  const start = () => {
    if (started) return;
    started = true;
    reply.code(200).headers(SSE_HEADERS).send(sse.stream);
  };
  const timer = setInterval(() => {
    start();
    sse.comment(`ecr progress elapsed_ms=${Math.round(performance.now() - t0)}`);
  }, gw.config.progressInterval);
  let result: PipelineResult;
  try {
    result = await run;
  } catch (err) {
    clearInterval(timer);
    if (!started) throw err;
    // Headers are gone: the error becomes the stream's last event, as OpenAI's API does it.
    const api = toApiError(err);
    request.ecrLog = { ...request.ecrLog, streamError: api.status };
    sse.event(api.body());
    sse.end();
    return reply;
  }
  clearInterval(timer);
  noteResult(request, result);
  if (!started) reply.headers(ecrHeaders(result));
  start();
  for (const chunk of completionChunks(meta, result, audit, includeUsage)) sse.event(chunk);
  sse.done();
  return reply;
}

function noteResult(request: FastifyRequest, r: PipelineResult): void {
  request.ecrLog = {
    ...request.ecrLog,
    k: r.stats.k.used,
    cci: r.metrics.CCI,
    admissible: r.admissible,
    fallback: r.stats.scoring.reason === 'fallback',
    upstreamCalls: r.stats.llmCalls + r.stats.calls.embed.requests,
    cache: r.stats.cacheResult,
    tokens: r.stats.tokens.prompt + r.stats.tokens.completion,
  };
}
