/** The OpenAI-compatible provider against the real loopback HTTP server on 127.0.0.1. */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  LlmCancelledError,
  LlmHttpError,
  LlmMultipleChoicesRejectedError,
  LlmNetworkError,
  LlmNoContentError,
  LlmTimeoutError,
  isMultipleChoicesRefusal,
} from '../src/llm/errors.js';
import { OpenAICompatibleProvider } from '../src/llm/openai-compatible.js';
import { nLimitationOf, resetNDetection, sampleChoices, knownToIgnoreN } from '../src/llm/sample-choices.js';
import { parseRetryAfter, type RetryPolicy } from '../src/llm/retry.js';
import { resolveProviderOptions } from '../src/llm/settings.js';
import { type CallRecord } from '../src/llm/provider.js';
import { UsageError } from '../src/core/errors.js';
import { LoopbackServer } from '../src/testing/loopback-server.js';

let server: LoopbackServer;
beforeEach(async () => {
  server = await LoopbackServer.start();
  resetNDetection();
});
afterEach(async () => {
  await server.close();
});

const user = (content: string) => [{ role: 'user' as const, content }];
const provider = (retry: Partial<RetryPolicy> = {}, extra: { timeoutMs?: number; embeddingModel?: string } = {}) =>
  new OpenAICompatibleProvider({ baseUrl: server.url, model: 'test-model', retry: { baseDelayMs: 1, ...retry }, ...extra });
const chats = () => server.log.filter((e) => e.path === '/v1/chat/completions');

describe('chat and batching', () => {
  it('gets K choices with logprobs and usage from one request with n = K', async () => {
    const calls: CallRecord[] = [];
    const r = await provider().chat(
      { kind: 'generate', messages: user('What is 2+2?'), n: 4, topLogprobs: 3, sampling: { seed: 7 } },
      { observer: { onCall: (c) => calls.push(c) } },
    );
    expect(chats()).toHaveLength(1);
    expect(chats()[0].n).toBe(4);
    expect(r.choices).toHaveLength(4);
    expect(new Set(r.choices.map((c) => c.text)).size).toBe(4);
    for (const c of r.choices) {
      expect(c.logprobs!.length).toBeGreaterThan(3);
      expect(c.logprobs![0].top).toHaveLength(3);
      expect(c.logprobs![0].top[0].logprob).toBeCloseTo(c.logprobs![0].logprob, 12);
    }
    expect(r.usage!.completionTokens).toBeGreaterThan(0);
    expect(calls).toHaveLength(1);
    expect(calls[0]).toMatchObject({ kind: 'generate', ok: true, attempt: 0, status: 200, choices: 4 });
  });

  it('does not request logprobs when topLogprobs is 0, and returns null logprobs when the server has none', async () => {
    await provider().chat({ kind: 'generate', messages: user('x'), topLogprobs: 0 });
    expect(chats()[0].logprobsRequested).toBe(false);
    server.logprobs = false;
    const r = await provider().chat({ kind: 'generate', messages: user('x'), topLogprobs: 5 });
    expect(chats()[1].logprobsRequested).toBe(true);
    expect(r.choices[0].logprobs).toBeNull();
  });

  it('retries without logprobs when the server answers 400 to them, and remembers that', async () => {
    server.fail({ times: 1, action: { status: 400, body: 'logprobs are not supported for this model' } });
    const p = provider({ retries: 0 });
    const r = await p.chat({ kind: 'generate', messages: user('x'), topLogprobs: 5 });
    expect(r.choices[0].logprobs).toBeNull();
    await p.chat({ kind: 'generate', messages: user('y'), topLogprobs: 5 });
    expect(chats().map((e) => [e.status, e.logprobsRequested])).toEqual([
      [400, true],
      [200, false],
      [200, false],
    ]);
  });

  it('sampleChoices uses one batched request when the server honours n', async () => {
    const out = await sampleChoices(provider(), { messages: user('q'), k: 4, sampling: { seed: 1 } });
    expect(out.every((o) => o.ok && o.via === 'batched')).toBe(true);
    expect(chats().map((e) => e.n)).toEqual([4]);
    expect(knownToIgnoreN(server.url)).toBe(false);
  });

  it('detects a server that ignores n, fills in with parallel single calls, and remembers it per base URL', async () => {
    server.ignoreN = true;
    const p = provider();
    const first = await sampleChoices(p, { messages: user('q'), k: 4, sampling: { seed: 10 } });
    expect(first).toHaveLength(4);
    expect(first.map((o) => o.ok && o.via)).toEqual(['batched', 'single', 'single', 'single']);
    expect(chats().map((e) => e.n)).toEqual([4, 1, 1, 1]);
    // Seeded single calls use seed + i, so the K samples are distinct.
    expect(chats().map((e) => e.seed)).toEqual([10, 11, 12, 13]);
    expect(new Set(first.map((o) => o.ok && o.choice.text)).size).toBe(4);
    expect(knownToIgnoreN(server.url)).toBe(true);

    server.clearLog();
    const second = await sampleChoices(p, { messages: user('q'), k: 4, sampling: { seed: 10 } });
    expect(second.every((o) => o.ok && o.via === 'single')).toBe(true);
    expect(chats().map((e) => e.n)).toEqual([1, 1, 1, 1]);
    // The same samples as before: the fallback is deterministic under a seed.
    expect(second.map((o) => o.ok && o.choice.text)).toEqual(first.map((o) => o.ok && o.choice.text));
  });

  for (const status of [400, 500] as const) {
    it(`detects llama.cpp's refusal of n > 1 (HTTP ${status}), serves K by single calls, and goes straight to them next time`, async () => {
      server.rejectN = status;
      const p = provider(); // retries on: the refusal must still not be retried, even as a 500
      const first = await sampleChoices(p, { messages: user('q'), k: 4, sampling: { seed: 10 } });
      expect(first.map((o) => o.ok && o.via)).toEqual(['single', 'single', 'single', 'single']);
      expect(chats().map((e) => [e.n, e.status])).toEqual([
        [4, status],
        [1, 200],
        [1, 200],
        [1, 200],
        [1, 200],
      ]);
      expect(
        chats()
          .slice(1)
          .map((e) => e.seed),
      ).toEqual([10, 11, 12, 13]);
      expect(new Set(first.map((o) => o.ok && o.choice.text)).size).toBe(4);
      expect(nLimitationOf(server.url)).toBe('rejects n > 1');
      expect(knownToIgnoreN(server.url)).toBe(true);

      server.clearLog();
      const second = await sampleChoices(p, { messages: user('q'), k: 4, sampling: { seed: 10 } });
      expect(second.every((o) => o.ok && o.via === 'single')).toBe(true);
      // No batched attempt this time: exactly K requests, all with n = 1.
      expect(server.counts()).toEqual({ '/v1/chat/completions': 4 });
      expect(chats().map((e) => e.n)).toEqual([1, 1, 1, 1]);
      expect(second.map((o) => o.ok && o.choice.text)).toEqual(first.map((o) => o.ok && o.choice.text));
    });
  }

  it('the provider reports the refusal of n > 1 as its own typed error, and any other 400 as a plain one', async () => {
    server.rejectN = 400;
    const err = await provider()
      .chat({ kind: 'generate', messages: user('x'), n: 3 })
      .catch((e) => e);
    expect(err).toBeInstanceOf(LlmMultipleChoicesRejectedError);
    expect(err).toMatchObject({ status: 400, n: 3 });
    expect(err.bodySnippet).toContain('"type":"invalid_request_error"');
    expect(isMultipleChoicesRefusal(400, 'Illegal param: only one completion choice is allowed')).toBe(true);
    expect(isMultipleChoicesRefusal(404, 'Only one completion choice is allowed')).toBe(false);
    expect(isMultipleChoicesRefusal(400, 'n must be at most 8')).toBe(false);
  });

  it('another 400 on the batched request fails every sample and teaches nothing about n', async () => {
    server.fail({ times: 1, action: { status: 400, body: 'max_tokens is too large' } });
    const out = await sampleChoices(provider(), { messages: user('q'), k: 3 });
    expect(out.every((o) => !o.ok && o.via === 'batched')).toBe(true);
    expect((out[0] as { error: unknown }).error).not.toBeInstanceOf(LlmMultipleChoicesRejectedError);
    expect(chats()).toHaveLength(1);
    expect(knownToIgnoreN(server.url)).toBe(false);
  });

  it('a choice with null content (refusal, tool calls only) fails its own sample in its place; n is still trusted', async () => {
    server.contentless = ({ kind, choice }) =>
      kind !== 'generate' ? undefined : choice === 1 ? { refusal: 'I cannot help with that.' } : choice === 2 ? { toolCall: 'lookup' } : undefined;
    const out = await sampleChoices(provider(), { messages: user('q'), k: 4, sampling: { seed: 3 } });
    expect(chats()).toHaveLength(1);
    const sent = chats()[0].texts!;
    expect(sent[1]).toBeNull();
    expect(out.map((o) => o.ok)).toEqual([true, false, false, true]);
    // The others keep their indices: sample 3 is the server's choice 3, not renumbered to 1 or 2.
    expect(out.map((o) => (o.ok ? o.choice.text : null))).toEqual(sent);
    const refused = (out[1] as { error: LlmNoContentError }).error;
    expect(refused).toBeInstanceOf(LlmNoContentError);
    expect(refused).toMatchObject({ code: 'ECR_LLM_NO_CONTENT', choiceIndex: 1, refusal: 'I cannot help with that.' });
    expect(refused.message).toContain('refusal: "I cannot help with that."');
    const toolOnly = (out[2] as { error: LlmNoContentError }).error;
    expect(toolOnly).toMatchObject({ choiceIndex: 2, toolCalls: 1, finishReason: 'tool_calls' });
    expect(toolOnly.message).toContain('1 tool call(s) and no text');
    expect(knownToIgnoreN(server.url)).toBe(false);
  });

  it('a failed single call fails only its own sample', async () => {
    server.ignoreN = true;
    const p = provider({ retries: 0 });
    await sampleChoices(p, { messages: user('warm'), k: 2 }); // learn that n is ignored
    server.clearLog();
    server.fail({ path: '/v1/chat/completions', times: 1, action: { status: 503 } });
    const out = await sampleChoices(p, { messages: user('q'), k: 3 });
    expect(out.filter((o) => !o.ok)).toHaveLength(1);
    expect(out.filter((o) => o.ok)).toHaveLength(2);
  });
});

describe('retries', () => {
  it('retries 5xx until success and reports every attempt', async () => {
    server.fail({ times: 2, action: { status: 500 } });
    const calls: CallRecord[] = [];
    const r = await provider({ retries: 3 }).chat({ kind: 'unroll', messages: user('x') }, { observer: { onCall: (c) => calls.push(c) } });
    expect(r.choices).toHaveLength(1);
    expect(chats().map((e) => e.status)).toEqual([500, 500, 200]);
    expect(calls.map((c) => [c.ok, c.attempt, c.status])).toEqual([
      [false, 0, 500],
      [false, 1, 500],
      [true, 2, 200],
    ]);
  });

  it('gives up after the configured retries with a typed error', async () => {
    server.fail({ times: Infinity, action: { status: 502 } });
    const err = await provider({ retries: 2 })
      .chat({ kind: 'generate', messages: user('x') })
      .catch((e) => e);
    expect(err).toBeInstanceOf(LlmHttpError);
    expect(err.status).toBe(502);
    expect(err.attempts).toBe(3);
    expect(chats()).toHaveLength(3);
  });

  it('a 404 from a base URL without /v1 asks "did you mean BASE/v1?"; one with /v1 does not', async () => {
    const wrong = new OpenAICompatibleProvider({ baseUrl: server.rootUrl + '/', model: 'm', embeddingModel: 'e' });
    const err = await wrong.chat({ kind: 'generate', messages: user('x') }).catch((e) => e);
    expect(err).toBeInstanceOf(LlmHttpError);
    expect(err.status).toBe(404);
    expect(server.log[0].path).toBe('/chat/completions');
    expect(err.hint).toBe(`did you mean ${server.rootUrl}/v1?`);
    expect(err.message).toContain(`failed with HTTP 404 after 1 attempt(s) (did you mean ${server.rootUrl}/v1?)`);
    const embedErr = await wrong.embed!(['x']).catch((e) => e);
    expect(embedErr.message).toContain(`did you mean ${server.rootUrl}/v1?`);
    // Under /v1 (or another version segment) a 404 means something else: no hint.
    for (const base of [`${server.url}/extra`, `${server.rootUrl}/v1beta/openai`]) {
      const e = await new OpenAICompatibleProvider({ baseUrl: base, model: 'm' }).chat({ kind: 'generate', messages: user('x') }).catch((x) => x);
      expect(e.status).toBe(404);
      expect(e.hint).toBeUndefined();
      expect(e.message).not.toContain('did you mean');
    }
  });

  it('does not retry other 4xx', async () => {
    server.fail({ times: Infinity, action: { status: 400, body: 'bad request body' } });
    const err = await provider({ retries: 3 })
      .chat({ kind: 'generate', messages: user('x') })
      .catch((e) => e);
    expect(err).toBeInstanceOf(LlmHttpError);
    expect(err.status).toBe(400);
    expect(err.message).toContain('bad request body');
    expect(chats()).toHaveLength(1);
  });

  it('honours Retry-After in seconds on 429 (the server sees the wait)', async () => {
    server.fail({ times: 1, action: { status: 429, retryAfter: '1' } });
    // Jitter pinned to 0: without Retry-After the retry would be immediate.
    await provider({ retries: 2, random: () => 0 }).chat({ kind: 'generate', messages: user('x') });
    const [a, b] = chats();
    expect(a.status).toBe(429);
    expect(b.status).toBe(200);
    expect(b.start - a.end).toBeGreaterThanOrEqual(990);
  });

  it('waits with exponential backoff (full jitter pinned at its ceiling)', async () => {
    server.fail({ times: 3, action: { status: 503 } });
    await provider({ retries: 3, baseDelayMs: 40, maxDelayMs: 1000, random: () => 0.999999 }).chat({ kind: 'generate', messages: user('x') });
    const log = chats();
    expect(log).toHaveLength(4);
    const gaps = [1, 2, 3].map((i) => log[i].start - log[i - 1].end);
    expect(gaps[0]).toBeGreaterThanOrEqual(38);
    expect(gaps[1]).toBeGreaterThanOrEqual(78);
    expect(gaps[2]).toBeGreaterThanOrEqual(158);
  });

  it('fails without waiting when Retry-After exceeds the cap', async () => {
    server.fail({ times: 1, action: { status: 429, retryAfter: '3600' } });
    const err = await provider({ retries: 3, maxRetryAfterMs: 5000 })
      .chat({ kind: 'generate', messages: user('x') })
      .catch((e) => e);
    expect(err).toBeInstanceOf(LlmHttpError);
    expect(err.status).toBe(429);
    expect(err.retryAfterMs).toBe(3_600_000);
    expect(chats()).toHaveLength(1);
  });

  it('retries a dropped connection, and reports a network error when retries run out', async () => {
    server.fail({ times: 1, action: { drop: true } });
    const r = await provider({ retries: 1 }).chat({ kind: 'generate', messages: user('x') });
    expect(r.choices).toHaveLength(1);
    expect(chats().map((e) => e.status)).toEqual(['dropped', 200]);

    server.fail({ times: Infinity, action: { drop: true } });
    const err = await provider({ retries: 1 })
      .chat({ kind: 'generate', messages: user('x') })
      .catch((e) => e);
    expect(err).toBeInstanceOf(LlmNetworkError);
    expect(err.attempts).toBe(2);
  });
});

describe('timeout and cancellation', () => {
  it('times a call out per attempt and retries it', async () => {
    server.latencyMs = 400;
    const err = await provider({ retries: 1 }, { timeoutMs: 50 })
      .chat({ kind: 'generate', messages: user('x') })
      .catch((e) => e);
    expect(err).toBeInstanceOf(LlmTimeoutError);
    expect(err.attempts).toBe(2);
    expect(server.log).toHaveLength(2);
  });

  it('stops at once when the caller aborts, without retrying', async () => {
    server.latencyMs = 2000;
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 50);
    const err = await provider({ retries: 5 })
      .chat({ kind: 'generate', messages: user('x') }, { signal: ac.signal })
      .catch((e) => e);
    expect(err).toBeInstanceOf(LlmCancelledError);
    // Only the one request reached the server.
    expect(server.log).toHaveLength(1);
  });

  it('an already-aborted signal makes no request', async () => {
    const err = await provider()
      .chat({ kind: 'generate', messages: user('x') }, { signal: AbortSignal.abort() })
      .catch((e) => e);
    expect(err).toBeInstanceOf(LlmCancelledError);
    expect(server.log).toHaveLength(0);
  });
});

describe('embeddings', () => {
  it('POSTs /embeddings and returns vectors in input order', async () => {
    const p = provider({}, { embeddingModel: 'emb' });
    const [a, b, a2] = await p.embed!(['alpha beta', 'gamma delta', 'alpha beta']);
    expect(server.count('/v1/embeddings')).toBe(1);
    expect(a).toHaveLength(64);
    expect(Array.from(a2)).toEqual(Array.from(a));
    expect(Array.from(b)).not.toEqual(Array.from(a));
    expect(provider().embed).toBeUndefined();
  });
});

describe('Retry-After parsing and settings', () => {
  it('parses delta-seconds and HTTP dates', () => {
    const now = Date.parse('Wed, 21 Oct 2015 07:28:00 GMT');
    expect(parseRetryAfter('120', now)).toBe(120_000);
    expect(parseRetryAfter('0.5', now)).toBe(500);
    expect(parseRetryAfter('Wed, 21 Oct 2015 07:28:30 GMT', now)).toBe(30_000);
    expect(parseRetryAfter('Wed, 21 Oct 2015 07:27:00 GMT', now)).toBe(0);
    expect(parseRetryAfter('soon', now)).toBeUndefined();
    expect(parseRetryAfter(null, now)).toBeUndefined();
  });

  it('takes flags first, then ECR_*, then OPENAI_* variables', () => {
    const env = { ECR_BASE_URL: 'http://a/v1', OPENAI_BASE_URL: 'http://b/v1', OPENAI_API_KEY: 'sk-o', ECR_MODEL: 'm1', ECR_EMBEDDING_MODEL: 'e1' };
    expect(resolveProviderOptions({}, env)).toMatchObject({ baseUrl: 'http://a/v1', apiKey: 'sk-o', model: 'm1', embeddingModel: 'e1' });
    expect(resolveProviderOptions({ baseUrl: 'http://c/v1', model: 'm2', apiKey: 'k' }, env)).toMatchObject({
      baseUrl: 'http://c/v1',
      model: 'm2',
      apiKey: 'k',
    });
    expect(resolveProviderOptions({}, { OPENAI_BASE_URL: 'http://b/v1', ECR_MODEL: 'm' }).baseUrl).toBe('http://b/v1');
    expect(() => resolveProviderOptions({}, { ECR_MODEL: 'm' })).toThrow(UsageError);
    expect(() => resolveProviderOptions({ baseUrl: 'http://a/v1' }, {})).toThrow(/model/);
    expect(() => resolveProviderOptions({ baseUrl: 'ftp://a', model: 'm' }, {})).toThrow(UsageError);
  });

  it('sends the API key as a bearer token', async () => {
    await new OpenAICompatibleProvider({ baseUrl: server.url, model: 'm', apiKey: 'sk-test' }).chat({ kind: 'generate', messages: user('x') });
    await provider().chat({ kind: 'generate', messages: user('x') });
    expect(server.log.map((e) => e.authorization)).toEqual(['Bearer sk-test', undefined]);
  });
});
