/**
 * `ecr serve` in process on 127.0.0.1, with the official `openai` client against it and the
 * loopback server as the upstream.
 */
import { createServer } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { once } from 'node:events';
import { Writable } from 'node:stream';
import OpenAI from 'openai';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { resetNDetection } from '../src/llm/sample-choices.js';
import { LoopbackServer, type LogEntry } from '../src/testing/loopback-server.js';
import { resolveServeConfig, type ServeConfig } from '../src/server/config.js';
import { shutdown } from '../src/server/shutdown.js';
import { startGateway } from '../src/server/app.js';
import { generateCandidates, selectBest } from '../src/pipeline/drop-in.js';
import { bodyOf, errorOf } from './helpers/http.js';

const PROMPT = 'What is the boiling point of water at sea level?';
type Started = Awaited<ReturnType<typeof startGateway>>;

let upstream: LoopbackServer;
const gateways: Started[] = [];

function configFor(extra: string[] = [], url = upstream.url): ServeConfig {
  const c = resolveServeConfig(['--upstream', url, '--port', '0', '--log-level', 'silent', '--retries', '0', ...extra], {});
  if (c === 'help') throw new Error('unexpected help');
  return c;
}

async function gateway(extra: string[] = [], options: { url?: string; logs?: string[] } = {}): Promise<Started> {
  const logStream = options.logs
    ? new Writable({
        write(chunk, _e, cb) {
          options.logs!.push(...String(chunk).split('\n').filter(Boolean));
          cb();
        },
      })
    : undefined;
  const config = configFor(options.logs ? ['--log-level', 'info', ...extra] : extra, options.url);
  const g = await startGateway(config, { logStream });
  gateways.push(g);
  return g;
}

function client(g: Started, apiKey = 'sk-unused'): OpenAI {
  return new OpenAI({ baseURL: `${g.url}/v1`, apiKey, maxRetries: 0 });
}

const chats = (): LogEntry[] => upstream.log.filter((e) => e.path === '/v1/chat/completions');
const words = (s: string) => s.split(/\s+/).filter(Boolean).length;

/** Parses an SSE body into its events: comments and data payloads, in order. */
function sseEvents(text: string): Array<{ comment: string } | { data: string }> {
  expect(text.endsWith('\n\n')).toBe(true);
  return text
    .split('\n\n')
    .filter(Boolean)
    .map((block) => {
      if (block.startsWith(': ')) return { comment: block.slice(2) };
      expect(block.startsWith('data: '), block).toBe(true);
      return { data: block.slice(6) };
    });
}

beforeAll(async () => {
  upstream = await LoopbackServer.start({ models: ['loop', 'other'] });
});
afterAll(async () => {
  await upstream.close();
});
beforeEach(() => {
  resetNDetection();
  upstream.clearFailures();
  upstream.clearLog();
  upstream.latencyMs = 0;
  upstream.systemFingerprint = undefined;
});
// closeAllConnections: undici keeps an aborted fetch's socket for its keep-alive time (4 s), which close() would wait out.
afterEach(async () => {
  for (const g of gateways.splice(0)) {
    g.app.server.closeAllConnections();
    await g.app.close();
  }
});

describe('ecr serve: ECR completions through the openai client', () => {
  it('answers a complete chat.completion with usage summed over every upstream call, headers and the audit', async () => {
    upstream.systemFingerprint = 'fp_loop_1';
    const g = await gateway();
    const { data, response } = await client(g)
      .chat.completions.create({
        model: 'ecr/loop',
        messages: [{ role: 'user', content: PROMPT }],
        ecr: { k: 3, horizon: 1, fixedK: true },
      } as OpenAI.ChatCompletionCreateParamsNonStreaming)
      .withResponse();
    expect(data.id).toMatch(/^chatcmpl-ecr-[0-9a-f]{32}$/);
    expect(data.object).toBe('chat.completion');
    expect(data.model).toBe('ecr/loop');
    expect(Math.abs(data.created - Date.now() / 1000)).toBeLessThan(3600);
    expect(data.system_fingerprint).toBe('fp_loop_1');
    expect(data.choices).toHaveLength(1);
    expect(data.choices[0].finish_reason).toBe('stop');
    const audit = (
      data as unknown as { ecr: { selected_index: number; candidates: Array<{ index: number; selected: boolean; metrics: { CCI: number } }>; cci: number } }
    ).ecr;
    expect(audit.candidates).toHaveLength(3);
    const selected = audit.candidates.find((c) => c.selected)!;
    expect(selected.index).toBe(audit.selected_index);
    // The answer is the selected candidate's text as the upstream produced it.
    const generated = chats().find((e) => e.kind === 'generate')!;
    expect(generated.n).toBe(3);
    expect(data.choices[0].message.content).toBe(generated.texts![audit.selected_index]);
    // Usage: prompt and completion tokens of all 1 + 3 upstream chat calls.
    const calls = chats();
    expect(calls).toHaveLength(4);
    const prompt = calls.reduce((s, e) => s + e.messages!.reduce((t, m) => t + words(m.content), 0), 0);
    const completion = calls.reduce((s, e) => s + e.texts!.reduce((t, x) => t + words(x ?? ''), 0), 0);
    expect(data.usage).toEqual({ prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion });
    expect(Number(response.headers.get('x-ecr-cci'))).toBe(selected.metrics.CCI);
    expect(response.headers.get('x-ecr-candidates')).toBe('3');
    expect(response.headers.get('x-ecr-admissible')).toMatch(/^(true|false)$/);
    expect(response.headers.get('x-request-id')).toMatch(/^req_/);
  });

  it('takes ECR settings from extra_body (and the x-ecr-config header); audit "full" has the steps', async () => {
    const g = await gateway();
    const { data, response } = await client(g)
      .chat.completions.create({
        model: 'ecr/loop',
        messages: [{ role: 'user', content: PROMPT }],
        ecr: { k: 2, horizon: 2, fixedK: true, tau: 1, audit: 'full', topLogprobs: 0 },
      } as OpenAI.ChatCompletionCreateParamsNonStreaming)
      .withResponse();
    expect(
      chats()
        .filter((e) => e.kind === 'generate')
        .map((e) => e.n),
    ).toEqual([2]);
    expect(chats().filter((e) => e.kind === 'unroll')).toHaveLength(4);
    expect(chats().every((e) => e.logprobsRequested === false)).toBe(true);
    const audit = (data as unknown as { ecr: { tau: number; fallback: boolean; candidates: Array<{ steps: Array<{ text: string; E: number[] }> }> } }).ecr;
    expect(audit.tau).toBe(1);
    expect(audit.fallback).toBe(true); // nothing reaches CCI >= 1
    expect(response.headers.get('x-ecr-fallback')).toBe('true');
    expect(audit.candidates[0].steps).toHaveLength(3);
    expect(audit.candidates[0].steps[0].E).toHaveLength(5);

    upstream.clearLog();
    const viaHeader = await client(g).chat.completions.create(
      { model: 'ecr/loop', messages: [{ role: 'user', content: PROMPT }] },
      { headers: { 'x-ecr-config': JSON.stringify({ k: 3, horizon: 1, fixedK: true, audit: 'none' }) } },
    );
    expect(
      chats()
        .filter((e) => e.kind === 'generate')
        .map((e) => e.n),
    ).toEqual([3]);
    expect((viaHeader as unknown as { ecr?: unknown }).ecr).toBeUndefined();
  });

  it('continues the whole conversation and honours the sampling parameters', async () => {
    const g = await gateway();
    const messages = [
      { role: 'system' as const, content: 'You are terse.' },
      { role: 'user' as const, content: 'Name a colour.' },
      { role: 'assistant' as const, content: 'Blue.' },
      { role: 'user' as const, content: PROMPT },
    ];
    await client(g).chat.completions.create({
      model: 'ecr/loop',
      messages,
      temperature: 0.3,
      top_p: 0.9,
      max_completion_tokens: 64,
      seed: 7,
      stop: ['\n\n'],
      ecr: { k: 2, horizon: 1, fixedK: true },
    } as OpenAI.ChatCompletionCreateParamsNonStreaming);
    // The loopback calls any request with an assistant turn a review; the first one is the generation.
    const [gen, ...reviews] = chats();
    expect(gen.messages).toEqual(messages);
    const body = JSON.parse(new TextDecoder().decode(gen.rawBody));
    expect(body).toMatchObject({ model: 'loop', temperature: 0.3, top_p: 0.9, max_tokens: 64, seed: 7, stop: ['\n\n'], n: 2 });
    expect(reviews).toHaveLength(2);
    for (const u of reviews) {
      expect(u.messages!.slice(0, 4)).toEqual(messages);
      expect(u.messages![4].role).toBe('assistant');
      expect(u.messages).toHaveLength(6);
    }
  });

  it('streams through the SDK iterator: role first, content, finish_reason last, usage, the audit', async () => {
    const g = await gateway();
    const stream = await client(g).chat.completions.create({
      model: 'ecr/loop',
      messages: [{ role: 'user', content: PROMPT }],
      stream: true,
      stream_options: { include_usage: true },
      ecr: { k: 2, horizon: 1, fixedK: true },
    } as OpenAI.ChatCompletionCreateParamsStreaming);
    const chunks: OpenAI.ChatCompletionChunk[] = [];
    for await (const c of stream) chunks.push(c);
    expect(new Set(chunks.map((c) => c.id)).size).toBe(1);
    expect(chunks[0].choices[0].delta.role).toBe('assistant');
    const text = chunks.map((c) => c.choices[0]?.delta.content ?? '').join('');
    const audit = (chunks.at(-1) as unknown as { ecr: { selected_index: number } }).ecr;
    expect(text).toBe(chats().find((e) => e.kind === 'generate')!.texts![audit.selected_index]);
    const finishAt = chunks.findIndex((c) => c.choices[0]?.finish_reason);
    expect(chunks[finishAt].choices[0].finish_reason).toBe('stop');
    expect(chunks.slice(finishAt + 1).every((c) => c.choices.length === 0)).toBe(true);
    expect(chunks.find((c) => c.usage)?.usage?.total_tokens).toBeGreaterThan(0);

    // The SDK's stream helper accepts it and assembles the same message.
    const helper = client(g).chat.completions.stream({
      model: 'ecr/loop',
      messages: [{ role: 'user', content: PROMPT }],
      ecr: { k: 2, horizon: 1, fixedK: true },
    });
    const final = await helper.finalChatCompletion();
    expect(final.choices[0].message.content).toMatch(/^\[c:[0-9a-f]+ s:0\] /);
    expect(final.choices[0].finish_reason).toBe('stop');
  });

  it('is SSE at the byte level: same id on every chunk, ordered events, progress comments during a slow upstream, [DONE]', async () => {
    upstream.latencyMs = 150;
    const g = await gateway(['--progress-interval', '10']);
    const res = await fetch(`${g.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        model: 'ecr/loop',
        stream: true,
        stream_options: { include_usage: true },
        messages: [{ role: 'user', content: PROMPT }],
        ecr: { k: 2, horizon: 1, fixedK: true },
      }),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const events = sseEvents(await res.text());
    const firstData = events.findIndex((e) => 'data' in e);
    expect(firstData).toBeGreaterThan(0);
    expect(events.slice(0, firstData).every((e) => 'comment' in e && /^ecr progress elapsed_ms=\d+$/.test(e.comment))).toBe(true);
    const data = events.slice(firstData);
    expect(data.every((e) => 'data' in e)).toBe(true);
    const payloads = data.map((e) => (e as { data: string }).data);
    expect(payloads.at(-1)).toBe('[DONE]');
    const chunks = payloads.slice(0, -1).map((p) => JSON.parse(p));
    expect(new Set(chunks.map((c) => c.id)).size).toBe(1);
    expect(new Set(chunks.map((c) => c.created)).size).toBe(1);
    expect(chunks.every((c) => c.model === 'ecr/loop' && c.object === 'chat.completion.chunk')).toBe(true);
    expect(chunks[0].choices[0].delta).toEqual({ role: 'assistant', content: '' });
    const withChoices = chunks.filter((c) => c.choices.length > 0);
    expect(withChoices.slice(0, -1).every((c) => c.choices[0].finish_reason === null)).toBe(true);
    expect(withChoices.at(-1).choices[0].finish_reason).toBe('stop');
    const tail = chunks.slice(withChoices.length);
    expect(tail).toHaveLength(2);
    expect(tail[0].usage.total_tokens).toBe(tail[0].usage.prompt_tokens + tail[0].usage.completion_tokens);
    expect(tail[1].ecr.candidates).toHaveLength(2);
    expect(chunks.filter((c) => c !== tail[0]).every((c) => c.usage === null)).toBe(true);
  });
});

describe('ecr serve: pass-through', () => {
  it('proxies other models byte for byte, plain and streaming', async () => {
    const g = await gateway();
    const raw = '{ "model":"loop",  "messages":[{"role":"user","content":"Say hi"}], "x_custom": [1, 2.50] }';
    const res = await fetch(`${g.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: raw });
    expect(res.status).toBe(200);
    const entry = chats().at(-1)!;
    expect(new TextDecoder().decode(entry.rawBody)).toBe(raw);
    const body = await bodyOf<OpenAI.ChatCompletion>(res);
    expect(body.id).toBe(`chatcmpl-loopback-${entry.seq}`);
    expect(body.choices[0].message.content).toBe(entry.texts![0]);

    const stream = await client(g).chat.completions.create({ model: 'loop', messages: [{ role: 'user', content: 'Say hi' }], stream: true });
    const chunks: OpenAI.ChatCompletionChunk[] = [];
    for await (const c of stream) chunks.push(c);
    const streamed = chats().at(-1)!;
    expect(streamed.streamed).toBe(true);
    expect(chunks.every((c) => c.id === `chatcmpl-loopback-${streamed.seq}`)).toBe(true);
    expect(chunks.map((c) => c.choices[0]?.delta.content ?? '').join('')).toBe(streamed.texts![0]);
  });

  it('passes the upstream status and body through, and answers 502 when the upstream is down', async () => {
    const g = await gateway();
    upstream.fail({ path: '/v1/chat/completions', action: { status: 418, body: 'teapot' } });
    const err = await client(g)
      .chat.completions.create({ model: 'loop', messages: [{ role: 'user', content: 'x' }] })
      .catch((e) => e);
    expect(err).toBeInstanceOf(OpenAI.APIError);
    expect(err.status).toBe(418);
    expect(err.error).toEqual({ message: 'teapot' });

    const dead = await LoopbackServer.start();
    const deadUrl = dead.url;
    await dead.close();
    const g2 = await gateway([], { url: deadUrl });
    const down = await client(g2)
      .chat.completions.create({ model: 'loop', messages: [{ role: 'user', content: 'x' }] })
      .catch((e) => e);
    expect(down).toBeInstanceOf(OpenAI.InternalServerError);
    expect(down.status).toBe(502);
    expect(down.message).toMatch(/ECONNREFUSED/);
  });
});

describe('ecr serve: errors in OpenAI format', () => {
  it('400 names the field: unknown ecr key, out-of-range values, n > 1, tools, bad header JSON', async () => {
    const g = await gateway();
    const c = client(g);
    const base = { model: 'ecr/loop', messages: [{ role: 'user' as const, content: PROMPT }] };
    const cases: Array<[Record<string, unknown>, string, Record<string, string>?]> = [
      [{ ecr: { kk: 2 } }, 'ecr.kk'],
      [{ ecr: { k: 17 } }, 'ecr.k'],
      [{ ecr: { horizon: 0 } }, 'ecr.horizon'],
      [{ ecr: { tau: 1.5 } }, 'ecr.tau'],
      [{ ecr: { weights: [0.5, 0.5, 0.5, 0, 0] } }, 'ecr.weights'],
      [{ ecr: { audit: 'everything' } }, 'ecr.audit'],
      [{ n: 2 }, 'n'],
      [{ tools: [{ type: 'function', function: { name: 'f', parameters: {} } }] }, 'tools'],
      [{ response_format: { type: 'json_object' } }, 'response_format'],
      [{ temperature: 3 }, 'temperature'],
      [{ messages: [{ role: 'tool', content: 'x' }] }, 'messages[0].role'],
      [{}, 'x-ecr-config', { 'x-ecr-config': '{not json' }],
    ];
    for (const [extra, param, headers] of cases) {
      const err = await c.chat.completions.create({ ...base, ...extra } as OpenAI.ChatCompletionCreateParamsNonStreaming, { headers }).catch((e) => e);
      expect(err, param).toBeInstanceOf(OpenAI.BadRequestError);
      expect(err.param, JSON.stringify(extra)).toBe(param);
      expect(err.type).toBe('invalid_request_error');
      expect(err.message).toContain(param);
    }
    const missing = await c.chat.completions.create({ messages: base.messages } as never).catch((e) => e);
    expect(missing).toBeInstanceOf(OpenAI.BadRequestError);
    expect(missing.param).toBe('model');
    expect(chats()).toHaveLength(0);
  });

  it('415 for a text/plain body as for any non-JSON type; a number beyond the float range is named and said to be out of range', async () => {
    const g = await gateway();
    const post = (body: string, type = 'application/json') =>
      fetch(`${g.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': type }, body });
    const ok = JSON.stringify({ model: 'ecr/loop', messages: [{ role: 'user', content: PROMPT }] });
    for (const type of ['text/plain', 'text/plain; charset=utf-8', 'application/xml']) {
      const res = await post(ok, type);
      expect(res.status, type).toBe(415);
      expect((await errorOf(res)).code).toBe('unsupported_media_type');
    }
    const cases: Array<[string, string]> = [
      ['{"model":"ecr/loop","messages":[{"role":"user","content":"x"}],"temperature":1e400}', 'temperature'],
      ['{"model":"ecr/loop","messages":[{"role":"user","content":"x"}],"ecr":{"k":2,"tau":-1e999}}', 'ecr.tau'],
      [`{"model":"loop","messages":[{"role":"user","content":"x"}],"max_tokens":1${'0'.repeat(400)}}`, 'max_tokens'],
      ['{"model":"loop","messages":[{"role":"user","content":"x"}],"logit_bias":{"50256":-1E+309}}', 'logit_bias.50256'],
    ];
    for (const [body, param] of cases) {
      const res = await post(body);
      expect(res.status, body.slice(0, 80)).toBe(400);
      const error = await errorOf(res);
      expect(error.param).toBe(param);
      expect(error.message).toMatch(new RegExp(`^${param.replace(/\./g, '\\.')}: the number is out of range`));
      expect(error.message).not.toContain('null');
    }
    expect(chats()).toHaveLength(0);
  });

  it('401 for a missing or wrong key (constant-time compare); health stays open', async () => {
    const g = await gateway(['--api-key', 'sk-right', '--api-key', 'sk-other']);
    const err = await client(g, 'sk-wrong')
      .models.list()
      .catch((e) => e);
    expect(err).toBeInstanceOf(OpenAI.AuthenticationError);
    expect(err.code).toBe('invalid_api_key');
    const ok = await client(g, 'sk-other').models.list();
    expect(ok.data.map((m) => m.id)).toContain('ecr/loop');
    expect((await fetch(`${g.url}/health/liveliness`)).status).toBe(200);
    expect((await fetch(`${g.url}/metrics`)).status).toBe(200);
    expect(upstream.log.filter((e) => e.path === '/v1/models').every((e) => e.authorization === undefined)).toBe(true);
  });

  it('429 with Retry-After past the concurrency cap, without queueing', async () => {
    upstream.latencyMs = 300;
    const g = await gateway(['--max-concurrent', '1']);
    const c = client(g);
    const first = c.chat.completions.create({
      model: 'ecr/loop',
      messages: [{ role: 'user', content: PROMPT }],
      ecr: { k: 1, horizon: 1 },
    } as OpenAI.ChatCompletionCreateParamsNonStreaming);
    await vi.waitFor(() => expect(upstream.pending()).toBeGreaterThan(0));
    const err = await c.chat.completions.create({ model: 'ecr/loop', messages: [{ role: 'user', content: PROMPT }] }).catch((e) => e);
    expect(err).toBeInstanceOf(OpenAI.RateLimitError);
    expect(err.headers.get('retry-after')).toBe('1');
    expect((await first).choices).toHaveLength(1);
  });

  it('502 when every candidate fails, 429 with Retry-After when the upstream rate-limits, 504 on upstream timeout', async () => {
    const g = await gateway();
    const c = client(g);
    const req = {
      model: 'ecr/loop',
      messages: [{ role: 'user' as const, content: PROMPT }],
      ecr: { k: 2, horizon: 1, fixedK: true },
    } as OpenAI.ChatCompletionCreateParamsNonStreaming;
    upstream.fail({ path: '/v1/chat/completions', times: Infinity, action: { status: 500, body: 'model crashed' } });
    const bad = await c.chat.completions.create(req).catch((e) => e);
    expect(bad).toBeInstanceOf(OpenAI.InternalServerError);
    expect(bad.status).toBe(502);
    expect(bad.message).toContain('model crashed');
    upstream.clearFailures();
    upstream.fail({ path: '/v1/chat/completions', times: Infinity, action: { status: 429, retryAfter: '7' } });
    const limited = await c.chat.completions.create(req).catch((e) => e);
    expect(limited).toBeInstanceOf(OpenAI.RateLimitError);
    expect(limited.headers.get('retry-after')).toBe('7');
    upstream.clearFailures();

    upstream.latencyMs = 400;
    const slow = await gateway(['--upstream-timeout', '50']);
    const timedOut = await client(slow)
      .chat.completions.create(req)
      .catch((e) => e);
    expect(timedOut).toBeInstanceOf(OpenAI.InternalServerError);
    expect(timedOut.status).toBe(504);
  });

  it('a candidate the upstream refuses is excluded with its refusal in the audit; all refused is a 502 naming it', async () => {
    const refusing = await LoopbackServer.start({
      contentless: ({ kind, choice }) => (kind === 'generate' && choice === 0 ? { refusal: 'I cannot help with that.' } : undefined),
    });
    try {
      const g = await gateway([], { url: refusing.url });
      const req = {
        model: 'ecr/loop',
        messages: [{ role: 'user' as const, content: PROMPT }],
        ecr: { k: 2, horizon: 1, fixedK: true },
      } as OpenAI.ChatCompletionCreateParamsNonStreaming;
      const r = (await client(g).chat.completions.create(req)) as OpenAI.ChatCompletion & {
        ecr: { selected_index: number; candidates: Array<{ index: number; status: string; error?: { refusal?: string } }> };
      };
      expect(r.ecr.selected_index).toBe(1);
      expect(r.ecr.candidates[0]).toMatchObject({ index: 0, status: 'failed', error: { refusal: 'I cannot help with that.' } });
      expect(r.choices[0].message.content).toMatch(/^\[c:/);

      refusing.contentless = () => ({ refusal: 'I cannot help with that.' });
      const all = await client(g)
        .chat.completions.create(req)
        .catch((e) => e);
      expect(all).toBeInstanceOf(OpenAI.InternalServerError);
      expect(all.status).toBe(502);
      expect(all.message).toContain('I cannot help with that.');
    } finally {
      await refusing.close();
    }
  });

  it('passes a streamed refusal through (delta.refusal, no content)', async () => {
    const refusing = await LoopbackServer.start({ contentless: () => ({ refusal: 'No.' }) });
    try {
      const g = await gateway([], { url: refusing.url });
      const stream = await client(g).chat.completions.create({ model: 'loop', messages: [{ role: 'user', content: 'x' }], stream: true });
      const deltas: Array<Record<string, unknown>> = [];
      for await (const c of stream) if (c.choices[0]) deltas.push(c.choices[0].delta as Record<string, unknown>);
      expect(deltas.map((d) => d.refusal).filter(Boolean)).toEqual(['No.']);
      expect(deltas.some((d) => typeof d.content === 'string' && d.content !== '')).toBe(false);
    } finally {
      await refusing.close();
    }
  });

  it('a streamed request that fails before the first progress tick gets a real status', async () => {
    const g = await gateway(['--progress-interval', '60000']);
    upstream.fail({ path: '/v1/chat/completions', times: Infinity, action: { status: 503 } });
    const res = await fetch(`${g.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'ecr/loop', stream: true, messages: [{ role: 'user', content: PROMPT }], ecr: { k: 1, horizon: 1 } }),
    });
    expect(res.status).toBe(502);
    expect((await errorOf(res)).type).toBe('upstream_error');
  });

  it('413 past the body limit', async () => {
    const g = await gateway(['--body-limit', '2048']);
    const err = await client(g)
      .chat.completions.create({ model: 'ecr/loop', messages: [{ role: 'user', content: 'x'.repeat(4096) }] })
      .catch((e) => e);
    expect(err.status).toBe(413);
    expect(err.code).toBe('body_too_large');
  });
});

describe('ecr serve: cancellation, models, health, metrics, logs', () => {
  it('a client that disconnects cancels its upstream calls (counted at the upstream)', async () => {
    upstream.latencyMs = 2000;
    const g = await gateway();
    const abort = new AbortController();
    const pending = fetch(`${g.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      signal: abort.signal,
      body: JSON.stringify({ model: 'ecr/loop', messages: [{ role: 'user', content: PROMPT }], ecr: { k: 3, horizon: 2, fixedK: true } }),
    }).catch((e) => e);
    await vi.waitFor(() => expect(upstream.pending()).toBe(1));
    abort.abort();
    await pending;
    await vi.waitFor(() => expect(upstream.aborted()).toBe(1));
    // No review step was ever requested: the request died with its client.
    await vi.waitFor(() => expect(g.gateway.gate.inUse).toBe(0));
    expect(chats().filter((e) => e.kind === 'unroll')).toHaveLength(0);
  });

  it('lists the upstream models plus ecr/ entries; readiness follows the upstream', async () => {
    const g = await gateway();
    const models = await client(g).models.list();
    expect(models.data.map((m) => m.id)).toEqual(['loop', 'other', 'ecr/loop', 'ecr/other']);
    expect((await fetch(`${g.url}/health/readiness`)).status).toBe(200);
    const dead = await LoopbackServer.start();
    const deadUrl = dead.url;
    await dead.close();
    const g2 = await gateway([], { url: deadUrl });
    const r = await fetch(`${g2.url}/health/readiness`);
    expect(r.status).toBe(503);
    expect((await fetch(`${g2.url}/health/liveliness`)).status).toBe(200);
  });

  it('exposes Prometheus metrics: requests by route, model and status, selected CCI, in-flight', async () => {
    const g = await gateway();
    await client(g).chat.completions.create({
      model: 'ecr/loop',
      messages: [{ role: 'user', content: PROMPT }],
      ecr: { k: 2, horizon: 1, fixedK: true },
    } as OpenAI.ChatCompletionCreateParamsNonStreaming);
    await vi.waitFor(async () => {
      const text = await (await fetch(`${g.url}/metrics`)).text();
      expect(text).toMatch(/^ecr_http_requests_total\{route="\/v1\/chat\/completions",model="ecr\/loop",status="200"\} [1-9]\d*$/m);
    });
    const text = await (await fetch(`${g.url}/metrics`)).text();
    expect(text).toMatch(/^ecr_selected_cci_count [1-9]\d*$/m);
    expect(text).toMatch(/^ecr_selections_total\{reason="(admitted|fallback)"\} [1-9]\d*$/m);
    expect(text).toMatch(/^ecr_http_requests_in_flight\{route="\/metrics"\} 1$/m);
    expect(text).toMatch(/^ecr_process_cpu_seconds_total /m);
    // No --redis: no ecr_redis_up series (an alert on it being 0 must not fire here).
    expect(text).toMatch(/^# TYPE ecr_redis_up gauge$/m);
    expect(text).not.toMatch(/^ecr_redis_up /m);
  });

  it('--cache-max-bytes bounds the shared pipeline caches (evicting past it), and /metrics shows their fill', async () => {
    const ask = (g: Started, i: number) =>
      client(g).chat.completions.create({
        model: 'ecr/loop',
        messages: [{ role: 'user', content: `${PROMPT} (${i})` }],
        ecr: { k: 2, horizon: 1, fixedK: true },
      } as OpenAI.ChatCompletionCreateParamsNonStreaming);
    const roomy = await gateway();
    for (let i = 0; i < 6; i++) await ask(roomy, i);
    expect(roomy.gateway.root.cacheStats().every((c) => c.evictions === 0)).toBe(true);
    const steps = roomy.gateway.root.cacheStats().find((c) => c.name === 'steps')!;
    expect(steps.size).toBeGreaterThan(2048);

    const tight = await gateway(['--cache-max-bytes', '2048']);
    for (let i = 0; i < 6; i++) await ask(tight, i);
    const stats = tight.gateway.root.cacheStats();
    expect(stats.every((c) => c.size <= 2048)).toBe(true);
    expect(stats.reduce((a, c) => a + c.evictions, 0)).toBeGreaterThan(0);
    const text = await (await fetch(`${tight.url}/metrics`)).text();
    for (const c of stats) expect(text).toMatch(new RegExp(`^ecr_cache_size_bytes\\{cache="${c.name}"\\} ${c.size}$`, 'm'));
    expect(text).toMatch(/^ecr_cache_entries\{cache="steps"\} \d+$/m);
  });

  it('writes one JSON access-log line per request, without prompt text unless --log-prompts', async () => {
    const logs: string[] = [];
    const g = await gateway([], { logs });
    const { response } = await client(g)
      .chat.completions.create({
        model: 'ecr/loop',
        messages: [{ role: 'user', content: PROMPT }],
        ecr: { k: 2, horizon: 1, fixedK: true },
      } as OpenAI.ChatCompletionCreateParamsNonStreaming)
      .withResponse();
    await vi.waitFor(() => expect(logs.filter((l) => JSON.parse(l).msg === 'request')).toHaveLength(1));
    const line = JSON.parse(logs.find((l) => JSON.parse(l).msg === 'request')!);
    expect(line).toMatchObject({
      reqId: response.headers.get('x-request-id'),
      requestId: response.headers.get('x-request-id'),
      model: 'ecr/loop',
      status: 200,
      k: 2,
      route: '/v1/chat/completions',
    });
    expect(line.cci).toBe(Number(response.headers.get('x-ecr-cci')));
    expect(typeof line.latency_ms).toBe('number');
    expect(logs.join('\n')).not.toContain('boiling');

    const withPrompts: string[] = [];
    const g2 = await gateway(['--log-prompts'], { logs: withPrompts });
    await client(g2).chat.completions.create({
      model: 'ecr/loop',
      messages: [{ role: 'user', content: PROMPT }],
      ecr: { k: 1, horizon: 1 },
    } as OpenAI.ChatCompletionCreateParamsNonStreaming);
    await vi.waitFor(() => expect(withPrompts.join('\n')).toContain('boiling'));
  });
});

describe('ecr serve: shutdown', () => {
  it('past --shutdown-timeout, cut requests get a 503 JSON error, or an error event that ends their stream; logged as 503', async () => {
    // An upstream that never finishes: a stream gets its headers and one event, anything else nothing.
    const sockets = new Set<import('node:net').Socket>();
    let received = 0;
    const stalled = createServer((req, res) => {
      let body = '';
      req.on('data', (c) => {
        body += c;
      });
      req.on('end', () => {
        received++;
        if (JSON.parse(body).stream !== true) return;
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write(
          `data: ${JSON.stringify({ id: 'chatcmpl-stalled', object: 'chat.completion.chunk', created: 0, model: 'loop', choices: [{ index: 0, delta: { role: 'assistant', content: 'Hel' }, finish_reason: null }] })}\n\n`,
        );
      });
    });
    stalled.on('connection', (s) => {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
    });
    await new Promise<void>((resolve) => stalled.listen(0, '127.0.0.1', resolve));
    try {
      const logs: string[] = [];
      const g = await gateway(['--shutdown-timeout', '100', '--progress-interval', '10'], {
        url: `http://127.0.0.1:${(stalled.address() as AddressInfo).port}/v1`,
        logs,
      });
      const post = (body: Record<string, unknown>) =>
        fetch(`${g.url}/v1/chat/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ messages: [{ role: 'user', content: PROMPT }], ...body }),
        });
      const ecr = { k: 2, horizon: 1, fixedK: true };
      const plain = post({ model: 'ecr/loop', ecr });
      const passed = post({ model: 'loop' });
      // Streams: their headers (after the first progress tick, or the upstream's) are out before the cut.
      const ecrStream = await post({ model: 'ecr/loop', stream: true, ecr });
      const passedStream = await post({ model: 'loop', stream: true });
      expect([ecrStream.status, passedStream.status]).toEqual([200, 200]);
      await vi.waitFor(() => expect(received).toBe(4)); // one generation call per ECR request, one per pass-through
      await shutdown(g.app, g.gateway, 'test');

      for (const res of [await plain, await passed]) {
        expect(res.status).toBe(503);
        expect(res.headers.get('retry-after')).toBe('1');
        expect(await errorOf(res)).toMatchObject({ type: 'service_unavailable', code: 'shutting_down' });
      }
      for (const res of [ecrStream, passedStream]) {
        const events = sseEvents(await res.text());
        const data = events.filter((e): e is { data: string } => 'data' in e).map((e) => e.data);
        expect(data).not.toContain('[DONE]');
        expect(JSON.parse(data.at(-1)!).error).toMatchObject({ type: 'service_unavailable', code: 'shutting_down' });
      }
      const statuses = logs
        .map((l) => JSON.parse(l))
        .filter((l) => l.msg === 'request')
        .map((l) => [l.model, l.stream ?? false, l.status]);
      expect(statuses).toHaveLength(4);
      expect(statuses.every(([, , status]) => status === 503)).toBe(true);
    } finally {
      for (const s of sockets) s.destroy();
      stalled.close();
    }
  });
});

describe('ecr serve: a request that arrives while the server drains', () => {
  it("gets a 503 OpenAI error with Retry-After (not Fastify's own body); readiness says shutting_down", async () => {
    const logs: string[] = [];
    const g = await gateway([], { logs });
    const port = Number(new URL(g.url).port);
    // A connection whose request has begun (so the drain does not close it as idle) but whose
    // headers end only once the drain is under way.
    const socket = connect(port, '127.0.0.1');
    await once(socket, 'connect');
    socket.write('POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n');
    const readiness = connect(port, '127.0.0.1');
    await once(readiness, 'connect');
    readiness.write('GET /health/readiness HTTP/1.1\r\nHost: 127.0.0.1\r\n');
    const closed = shutdown(g.app, g.gateway, 'test');
    await vi.waitFor(() => expect(g.gateway.closing).toBe(true));
    const prompt = 'sent while the gateway drains';
    const body = JSON.stringify({ model: 'loop', messages: [{ role: 'user', content: prompt }] });
    const answer = readAll(socket);
    socket.end(`content-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
    const ready = readAll(readiness);
    readiness.end('connection: close\r\n\r\n');
    const [text, readyText] = await Promise.all([answer, ready]);
    await closed;
    expect(text).toMatch(/^HTTP\/1\.1 503 /);
    expect(text.toLowerCase()).toContain('retry-after: 1');
    const error = JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)).error;
    expect(error).toMatchObject({ type: 'service_unavailable', code: 'shutting_down', param: null });
    expect(error.message).toMatch(/shutting down/);
    expect(readyText).toMatch(/^HTTP\/1\.1 503 /);
    expect(JSON.parse(readyText.slice(readyText.indexOf('\r\n\r\n') + 4))).toEqual({ status: 'shutting_down' });
    expect(chats().filter((e) => JSON.stringify(e).includes(prompt))).toHaveLength(0);
  });
});

function readAll(socket: import('node:net').Socket): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    socket.on('data', (d: Buffer) => {
      text += d.toString();
    });
    socket.on('end', () => resolve(text));
    socket.on('error', reject);
  });
}

describe('drop-in library API', () => {
  it('generateCandidates and selectBest with a plain async function as the LLM', async () => {
    const seen: string[][] = [];
    let i = 0;
    const llm = async (messages: Array<{ role: string; content: string }>) => {
      seen.push(messages.map((m) => m.role));
      return messages.some((m) => m.role === 'assistant') ? `${messages.at(-2)!.content}` : `Candidate ${i++}: the answer is 100 degrees Celsius.`;
    };
    const candidates = await generateCandidates(PROMPT, llm, { k: 3 });
    expect(candidates).toEqual([
      'Candidate 0: the answer is 100 degrees Celsius.',
      'Candidate 1: the answer is 100 degrees Celsius.',
      'Candidate 2: the answer is 100 degrees Celsius.',
    ]);
    const best = await selectBest(candidates, PROMPT, llm, { horizon: 1 });
    expect(candidates).toContain(best.response);
    expect(best.candidates).toHaveLength(3);
    expect(seen.filter((r) => r.includes('assistant'))).toHaveLength(3);
    const failing = async () => {
      throw new Error('model offline');
    };
    await expect(selectBest(candidates, PROMPT, failing, { horizon: 1 })).rejects.toThrow(/model offline/);
  });
});
