/**
 * Provider for OpenAI-compatible HTTP servers (OpenAI, Ollama's /v1, vLLM, the llama.cpp server):
 * POST {base}/chat/completions and {base}/embeddings over keep-alive connections (http-transport.ts). Each call has its own timeout combined with the caller's signal,
 * and is retried on 429, 5xx and network errors per the RetryPolicy.
 */
import {
  LlmCancelledError,
  LlmHttpError,
  LlmMultipleChoicesRejectedError,
  LlmNetworkError,
  LlmNoContentError,
  LlmResponseError,
  LlmTimeoutError,
  isMultipleChoicesRefusal,
  type LlmError,
} from './errors.js';
import { HttpTimeoutError, joinUrlPath, postText } from './http-transport.js';
import { redactUrl } from '../core/redact-url.js';
import { textOf } from '../core/text.js';
import type { CallKind, CallOptions, ChatChoice, ChatRequest, ChatResult, ContentlessChoice, Provider, TokenLogprob, TopLogprob, Usage } from './provider.js';
import { DEFAULT_RETRY_POLICY, backoffDelayMs, isRetryableStatus, parseRetryAfter, sleep, type RetryPolicy } from './retry.js';

export interface OpenAICompatibleOptions {
  baseUrl: string;
  model: string;
  apiKey?: string;
  /** Model for /embeddings; without it the provider offers no `embed`. */
  embeddingModel?: string;
  /** Per-attempt timeout in ms (default 60 s). */
  timeoutMs?: number;
  retry?: Partial<RetryPolicy>;
  /** Largest n per request (default 128). */
  maxN?: number;
  /** Extra headers sent with every call (the gateway's `Via`, a proxy's own header). */
  headers?: Record<string, string>;
}

const BODY_SNIPPET = 300;

/** Provider ids (base URL + model) whose server answered 400 to a logprobs request. */
const rejectsLogprobs = new Set<string>();

export class OpenAICompatibleProvider implements Provider {
  readonly id: string;
  readonly baseUrl: string;
  readonly model: string;
  readonly maxN: number;
  readonly embeddingModel?: string;
  private readonly apiKey?: string;
  private readonly extraHeaders: Record<string, string>;
  private readonly timeoutMs: number;
  private readonly retry: RetryPolicy;

  constructor(options: OpenAICompatibleOptions) {
    this.baseUrl = joinUrlPath(options.baseUrl, '');
    this.model = options.model;
    this.apiKey = options.apiKey;
    this.extraHeaders = options.headers ?? {};
    this.embeddingModel = options.embeddingModel;
    this.timeoutMs = options.timeoutMs ?? 60_000;
    this.retry = { ...DEFAULT_RETRY_POLICY, ...options.retry };
    this.maxN = options.maxN ?? 128;
    // Shown (ecr run's table, --json stats) and a cache-key part: without credentials, which do not change answers.
    this.id = `openai-compatible ${redactUrl(this.baseUrl)} ${this.model}`;
    if (this.embeddingModel) {
      this.embed = (texts, opts) => this.embedTexts(texts, opts);
    }
  }

  embed?: (texts: string[], options?: CallOptions) => Promise<Float32Array[]>;

  async chat(request: ChatRequest, options: CallOptions = {}): Promise<ChatResult> {
    const wantLogprobs = !!request.topLogprobs && request.topLogprobs > 0 && !rejectsLogprobs.has(this.id);
    try {
      return await this.chatOnce(request, wantLogprobs, options);
    } catch (err) {
      // Some servers and models answer 400 to logprobs (e.g. OpenAI reasoning models). Remember
      // that for this base URL and model, and go on without them: the signals fall back to lexical.
      if (wantLogprobs && err instanceof LlmHttpError && err.status === 400 && /logprob/i.test(err.bodySnippet)) {
        rejectsLogprobs.add(this.id);
        return this.chatOnce(request, false, options);
      }
      throw err;
    }
  }

  private async chatOnce(request: ChatRequest, wantLogprobs: boolean, options: CallOptions): Promise<ChatResult> {
    const s = request.sampling ?? {};
    const body: Record<string, unknown> = {
      model: this.model,
      messages: request.messages,
      n: request.n ?? 1,
      stream: false,
    };
    if (s.temperature !== undefined) body.temperature = s.temperature;
    if (s.topP !== undefined) body.top_p = s.topP;
    if (s.maxTokens !== undefined) body.max_tokens = s.maxTokens;
    if (s.seed !== undefined) body.seed = s.seed;
    if (s.stop !== undefined) body.stop = s.stop;
    if (wantLogprobs) {
      body.logprobs = true;
      body.top_logprobs = request.topLogprobs;
    }
    const n = body.n as number;
    // A server that refuses n > 1 (llama.cpp's) says so at once; retrying its 500 would not help.
    const refusal =
      n > 1
        ? (f: LlmHttpError) =>
            isMultipleChoicesRefusal(f.status, f.bodySnippet)
              ? new LlmMultipleChoicesRejectedError(n, f.status, f.bodySnippet, f.kind, f.url, f.attempts)
              : undefined
        : undefined;
    const { json, url, attempts } = await this.post('/chat/completions', body, request.kind, options, countChoices, refusal);
    const choices = parseChoices(json, request.kind, url, attempts);
    if (choices.length === 0) throw new LlmResponseError('no choices', request.kind, url, attempts);
    return { choices, usage: parseUsage(json) };
  }

  private async embedTexts(texts: string[], options: CallOptions = {}): Promise<Float32Array[]> {
    if (texts.length === 0) return [];
    const { json, url, attempts } = await this.post(
      '/embeddings',
      { model: this.embeddingModel, input: texts },
      'embed',
      options,
      () => texts.length,
      undefined,
    );
    const data = (json as { data?: unknown }).data;
    if (!Array.isArray(data) || data.length !== texts.length) {
      throw new LlmResponseError(`expected ${texts.length} embeddings, got ${Array.isArray(data) ? data.length : 'none'}`, 'embed', url, attempts);
    }
    const out = new Array<Float32Array>(texts.length);
    data.forEach((item: { index?: number; embedding?: unknown }, pos) => {
      const idx = typeof item.index === 'number' ? item.index : pos;
      if (!Array.isArray(item.embedding) || idx < 0 || idx >= texts.length) throw new LlmResponseError(`bad embedding entry ${pos}`, 'embed', url, attempts);
      out[idx] = Float32Array.from(item.embedding as number[]);
    });
    for (let i = 0; i < out.length; i++) if (!out[i]) throw new LlmResponseError(`missing embedding ${i}`, 'embed', url, attempts);
    return out;
  }

  /**
   * For a 404: OpenAI-compatible servers serve under /v1, and a base URL without it is the usual
   * mistake. Not offered when the path already has a version segment (/v1, /v1beta, /v2, ...).
   */
  private versionHint(): string | undefined {
    const segments = new URL(this.baseUrl).pathname.split('/');
    return segments.some((seg) => /^v\d/i.test(seg)) ? undefined : `did you mean ${redactUrl(joinUrlPath(this.baseUrl, '/v1'))}?`;
  }

  /**
   * POSTs JSON with timeout, cancellation and retries; reports every attempt to the observer.
   * `classify` may turn an HTTP failure into a more specific error, which is thrown at once.
   */
  private async post(
    path: string,
    body: unknown,
    kind: CallKind,
    options: CallOptions,
    countChoices: (json: unknown) => number,
    classify: ((failure: LlmHttpError) => LlmHttpError | undefined) | undefined,
  ) {
    const target = joinUrlPath(this.baseUrl, path);
    const url = redactUrl(target);
    const headers: Record<string, string> = { ...this.extraHeaders, 'content-type': 'application/json', accept: 'application/json' };
    if (this.apiKey) headers.authorization = `Bearer ${this.apiKey}`;
    const payload = JSON.stringify(body);
    const caller = options.signal;
    for (let attempt = 0; ; attempt++) {
      if (caller?.aborted) throw new LlmCancelledError(kind, url, attempt, { cause: caller.reason });
      const startedAt = Date.now();
      const t0 = performance.now();
      let failure: LlmError;
      let retryAfterMs: number | undefined;
      try {
        const res = await postText(target, headers, payload, { signal: caller, timeoutMs: this.timeoutMs });
        const text = res.body;
        const latencyMs = performance.now() - t0;
        if (res.ok) {
          let json: unknown;
          try {
            json = JSON.parse(text);
          } catch {
            throw new LlmResponseError(`not JSON: ${text.slice(0, BODY_SNIPPET)}`, kind, url, attempt + 1);
          }
          options.observer?.onCall({ kind, ok: true, attempt, startedAt, latencyMs, status: res.status, choices: countChoices(json), usage: parseUsage(json) });
          return { json, url, attempts: attempt + 1 };
        }
        retryAfterMs = parseRetryAfter(res.header('retry-after'));
        const httpFailure = new LlmHttpError(
          res.status,
          text.slice(0, BODY_SNIPPET),
          kind,
          url,
          attempt + 1,
          retryAfterMs,
          res.status === 404 ? this.versionHint() : undefined,
        );
        failure = httpFailure;
        options.observer?.onCall({ kind, ok: false, attempt, startedAt, latencyMs, status: res.status, error: failure.message });
        const specific = classify?.(httpFailure);
        if (specific) throw specific;
        if (!isRetryableStatus(res.status)) throw failure;
      } catch (err) {
        if (err instanceof LlmHttpError || err instanceof LlmResponseError) throw err;
        const latencyMs = performance.now() - t0;
        if (caller?.aborted) {
          options.observer?.onCall({ kind, ok: false, attempt, startedAt, latencyMs, error: 'cancelled' });
          throw new LlmCancelledError(kind, url, attempt + 1, { cause: caller.reason });
        }
        failure =
          err instanceof HttpTimeoutError
            ? new LlmTimeoutError(this.timeoutMs, kind, url, attempt + 1)
            : new LlmNetworkError(describeNetworkError(err), kind, url, attempt + 1, { cause: err });
        options.observer?.onCall({ kind, ok: false, attempt, startedAt, latencyMs, error: failure.message });
      }
      if (attempt >= this.retry.retries) throw failure;
      let waitMs = backoffDelayMs(this.retry, attempt);
      if (retryAfterMs !== undefined) {
        // The server said when to come back; a wait beyond the cap is reported instead of slept.
        if (retryAfterMs > this.retry.maxRetryAfterMs) throw failure;
        waitMs = retryAfterMs;
      }
      try {
        await sleep(waitMs, caller);
      } catch (reason) {
        throw new LlmCancelledError(kind, url, attempt + 1, { cause: reason });
      }
    }
  }
}

/**
 * Choices counted for the observer; contentless ones too, since the server did send them. Cheaper
 * than parsing them, which the caller does once the attempt has succeeded.
 */
function countChoices(json: unknown): number {
  const raw = (json as { choices?: unknown } | null)?.choices;
  return Array.isArray(raw) ? raw.length : 0;
}

function describeNetworkError(err: unknown): string {
  if (err instanceof Error) {
    const cause = (err as { cause?: unknown }).cause;
    const code = cause && typeof cause === 'object' && 'code' in cause ? String(cause.code) : '';
    const detail = cause instanceof Error ? cause.message : '';
    return [err.message, code, detail].filter(Boolean).join(': ');
  }
  return String(err);
}

function parseUsage(json: unknown): Usage | undefined {
  const u = (json as { usage?: Record<string, unknown> } | null)?.usage;
  if (!u || typeof u !== 'object') return undefined;
  const usage: Usage = {};
  if (typeof u.prompt_tokens === 'number') usage.promptTokens = u.prompt_tokens;
  if (typeof u.completion_tokens === 'number') usage.completionTokens = u.completion_tokens;
  return usage;
}

/**
 * Choices in index order; logprobs in the chat format (`logprobs.content[]`) when present. A
 * choice without text (content null: a refusal, tool calls only) is kept in its place as a
 * ContentlessChoice, so it neither shifts the others nor looks like a server that ignores `n`.
 */
function parseChoices(json: unknown, kind: CallKind, url: string, attempts: number): Array<ChatChoice | ContentlessChoice> {
  const raw = (json as { choices?: unknown } | null)?.choices;
  if (!Array.isArray(raw)) return [];
  const withIndex = raw.map((c: Record<string, unknown>, pos) => ({ c: c ?? {}, idx: typeof c?.index === 'number' ? c.index : pos }));
  withIndex.sort((a, b) => a.idx - b.idx);
  const fp = (json as { system_fingerprint?: unknown }).system_fingerprint;
  const systemFingerprint = typeof fp === 'string' ? fp : undefined;
  const out: Array<ChatChoice | ContentlessChoice> = [];
  for (const { c, idx } of withIndex) {
    const message = c.message as { content?: unknown; refusal?: unknown; tool_calls?: unknown } | undefined;
    const text = typeof message?.content === 'string' ? message.content : typeof c.text === 'string' ? c.text : null;
    const finishReason = typeof c.finish_reason === 'string' ? c.finish_reason : undefined;
    if (text === null) {
      const refusal = typeof message?.refusal === 'string' ? message.refusal : undefined;
      const toolCalls = Array.isArray(message?.tool_calls) ? message.tool_calls.length : 0;
      out.push({ text: null, logprobs: null, finishReason, error: new LlmNoContentError(idx, refusal, toolCalls, finishReason, kind, url, attempts) });
      continue;
    }
    out.push({ text, logprobs: parseLogprobs(c.logprobs), finishReason, systemFingerprint });
  }
  return out;
}

/**
 * Logprobs in the chat format. The parsed JSON's own `top_logprobs` arrays are reused when every
 * entry is well-formed (the common case), which saves an object per alternative per token.
 */
function parseLogprobs(lp: unknown): TokenLogprob[] | null {
  const content = (lp as { content?: unknown } | null)?.content;
  if (!Array.isArray(content) || content.length === 0) return null;
  const out: TokenLogprob[] = [];
  for (const t of content as Record<string, unknown>[]) {
    if (typeof t?.logprob !== 'number' || !Number.isFinite(t.logprob)) continue;
    let top: TopLogprob[] = [];
    if (Array.isArray(t.top_logprobs)) {
      const raw = t.top_logprobs as Record<string, unknown>[];
      let clean = true;
      for (const x of raw)
        if (typeof x?.logprob !== 'number' || !Number.isFinite(x.logprob) || typeof x.token !== 'string') {
          clean = false;
          break;
        }
      top = clean
        ? (raw as unknown as TopLogprob[])
        : raw
            .filter((x) => typeof x?.logprob === 'number' && Number.isFinite(x.logprob))
            .map((x) => ({ token: textOf(x.token), logprob: x.logprob as number }));
    }
    out.push({ token: typeof t.token === 'string' ? t.token : textOf(t.token), logprob: t.logprob, top });
  }
  return out.length ? out : null;
}
