/**
 * A real OpenAI-compatible HTTP server on 127.0.0.1 for tests and benchmarks (node:http, random
 * port). It speaks POST /v1/chat/completions (n, logprobs/top_logprobs, usage) and /v1/embeddings,
 * with configurable latency, injected failures (HTTP statuses, 429 with Retry-After, dropped
 * connections, for N requests then success), a mode that ignores `n`, a mode that refuses `n > 1`
 * as llama.cpp's server does, choices without content (refusals, tool calls only), and a mode
 * without logprobs. Any other path (e.g. /chat/completions without the /v1) answers 404.
 * It also lists models (GET /v1/models), answers `stream: true` with SSE chunks (for the gateway's
 * pass-through), and records requests whose client went away before the answer (`aborted`), which
 * is how tests see that a cancelled request really cancelled its upstream calls.
 *
 * Text is deterministic: a generated answer starts with "[c:TAG s:0]", where TAG is a hash of
 * (model, prompt, seed or a per-server counter, choice index); a review step answers "[c:TAG s:h]"
 * for the TAG and step it reads from the assistant turn it is given. Tests group the request log
 * by TAG to check a candidate's steps ran in order.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { HashingEmbedder } from '../llm/embedder.js';
import { textOf } from '../core/text.js';

export type FailureAction = { status: number; retryAfter?: string; body?: string } | { drop: true };

export interface FailureRule {
  /** Path the rule applies to ('/v1/chat/completions', '/v1/embeddings'); default any. */
  path?: string;
  /** Applies only when some message content (or embedding input) contains this text. */
  contains?: string;
  /** Matching requests that fail before the rule is spent (default 1; Infinity for all). */
  times?: number;
  action: FailureAction;
}

/** What a choice carries instead of text (message.content is null). */
export type ContentlessAnswer = { refusal: string } | { toolCall: string } | { empty: true };

export interface LoopbackOptions {
  /** Delay before every answer, in ms (default 0). */
  latencyMs?: number;
  /** Answer one choice whatever `n` asks (as Ollama's /v1 does). */
  ignoreN?: boolean;
  /**
   * Refuse `n > 1` as llama.cpp's server does: this status (400; 500 in older builds) and its
   * error body {"error":{"code","message":"Only one completion choice is allowed","type"}}.
   */
  rejectN?: 400 | 500;
  /** Makes choice `choice` of a chat answer contentless (undefined: a normal text answer). */
  contentless?: (info: { seq: number; kind: 'generate' | 'unroll'; choice: number }) => ContentlessAnswer | undefined;
  /** Return logprobs when asked (default true). */
  logprobs?: boolean;
  /** Report usage (default true). */
  usage?: boolean;
  /** Extra delay for one request, by its kind and arrival number (to make one candidate slow). */
  extraLatency?: (info: { seq: number; kind: 'generate' | 'unroll' | 'embed' | 'other'; body: Record<string, unknown> }) => number;
  /** Text put before every generated answer (e.g. to give all candidates a long shared prefix). */
  textPrefix?: string;
  /** Width of /v1/embeddings vectors (default 64). */
  embeddingDim?: number;
  /** Models listed by GET /v1/models (default ['loop']). */
  models?: string[];
  /** system_fingerprint sent in chat responses (default none). */
  systemFingerprint?: string;
  port?: number;
}

export interface LogEntry {
  seq: number;
  /** The request path, without the query (routes match on it). */
  path: string;
  /** The query string after `?`, when the request had one. */
  query?: string;
  /** performance.now() when the request body had been read, and when the answer was sent. */
  start: number;
  end: number;
  status: number | 'dropped';
  n?: number;
  seed?: number;
  /** 'generate' (no assistant turn) or 'unroll' (review of an assistant turn). */
  kind?: 'generate' | 'unroll' | 'embed';
  /** Candidate tag and step of the answer(s) (first choice for a batched request). */
  tag?: string;
  step?: number;
  /** The answers' texts in choice order; null for a contentless choice. */
  texts?: Array<string | null>;
  /** Texts in an /embeddings request. */
  inputs?: number;
  logprobsRequested?: boolean;
  /** The chat messages as received. */
  messages?: Array<{ role: string; content: string }>;
  /** The Authorization header as received. */
  authorization?: string;
  /** The client closed the connection before the answer was sent. */
  aborted?: boolean;
  /** The request asked for `stream: true` and got SSE. */
  streamed?: boolean;
  /** The raw request body as received (bytes, for pass-through checks; a Buffer at run time). */
  rawBody?: Uint8Array;
}

interface ChatJson {
  id: string;
  created: number;
  model: string;
  choices: Array<{ index: number; message: { content: string | null; refusal?: string }; finish_reason: string }>;
  usage?: unknown;
}

const TAG_RE = /\[c:([0-9a-f]+) s:(\d+)\]/;

const SUBJECTS = ['42', 'Paris', 'the second option', 'a binary search', 'photosynthesis', 'seven', 'the null hypothesis', 'blue'];
const TEMPLATES = [
  (x: string) => `Certainly, the answer is ${x}.`,
  (x: string) => `I think the answer is probably ${x}, but it may depend on the context.`,
  (x: string) => `The answer is ${x}. This is clearly established and well documented.`,
  (x: string) => `Perhaps ${x}; it seems likely, although I am not sure.`,
];

function fnv(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

function words(s: string): number {
  return s.split(/\s+/).filter(Boolean).length;
}

export class LoopbackServer {
  readonly log: LogEntry[] = [];
  latencyMs: number;
  ignoreN: boolean;
  rejectN?: 400 | 500;
  contentless?: LoopbackOptions['contentless'];
  logprobs: boolean;
  usage: boolean;
  extraLatency?: LoopbackOptions['extraLatency'];
  textPrefix: string;
  models: string[];
  systemFingerprint?: string;
  private rules: Array<FailureRule & { left: number }> = [];
  private counter = 0;
  private seq = 0;
  private readonly embedder: HashingEmbedder;

  private constructor(
    private readonly server: Server,
    options: LoopbackOptions,
  ) {
    this.latencyMs = options.latencyMs ?? 0;
    this.ignoreN = options.ignoreN ?? false;
    this.rejectN = options.rejectN;
    this.contentless = options.contentless;
    this.logprobs = options.logprobs ?? true;
    this.usage = options.usage ?? true;
    this.extraLatency = options.extraLatency;
    this.textPrefix = options.textPrefix ?? '';
    this.models = options.models ?? ['loop'];
    this.systemFingerprint = options.systemFingerprint;
    this.embedder = new HashingEmbedder(options.embeddingDim ?? 64);
  }

  static async start(options: LoopbackOptions = {}): Promise<LoopbackServer> {
    const server = createServer((req, res) => {
      void self.handle(req, res);
    });
    server.keepAliveTimeout = 30_000;
    const self = new LoopbackServer(server, options);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
    });
    return self;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }
  /** Base URL including /v1, as clients expect. */
  get url(): string {
    return `http://127.0.0.1:${this.port}/v1`;
  }
  /** The server's root, without /v1: a wrong base URL (every endpoint answers 404 under it). */
  get rootUrl(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Adds a failure rule; rules are tried in the order added. */
  fail(rule: FailureRule): void {
    this.rules.push({ ...rule, left: rule.times ?? 1 });
  }

  clearFailures(): void {
    this.rules = [];
  }
  clearLog(): void {
    this.log.length = 0;
  }

  /** Requests on a path whose client disconnected before the answer (cancelled upstream calls). */
  aborted(path = '/v1/chat/completions'): number {
    return this.log.filter((e) => e.path === path && e.aborted).length;
  }

  /** Requests on a path still waiting for their answer. */
  pending(path = '/v1/chat/completions'): number {
    return this.log.filter((e) => e.path === path && e.status === 0).length;
  }

  /** Requests received on a path (default: chat completions). */
  count(path = '/v1/chat/completions'): number {
    return this.log.filter((e) => e.path === path).length;
  }

  /** Requests received, by path. */
  counts(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const e of this.log) out[e.path] = (out[e.path] ?? 0) + 1;
    return out;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const start = performance.now();
    const raw = Buffer.concat(chunks);
    const [path, query] = (req.url ?? '').split(/\?(.*)/s, 2);
    const entry: LogEntry = {
      seq: this.seq++,
      path,
      ...(query !== undefined ? { query } : {}),
      start,
      end: start,
      status: 0,
      authorization: req.headers.authorization,
      rawBody: raw,
    };
    this.log.push(entry);
    res.on('close', () => {
      if (!res.writableFinished) entry.aborted = true;
    });
    if (req.method === 'GET' && entry.path === '/v1/models') {
      return this.send(res, entry, 200, { object: 'list', data: this.models.map((id) => ({ id, object: 'model', created: 0, owned_by: 'loopback' })) });
    }
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(raw.toString('utf8')) as Record<string, unknown>;
    } catch {
      return this.send(res, entry, 400, { error: { message: 'invalid JSON' } });
    }
    if (req.method !== 'POST') return this.send(res, entry, 405, { error: { message: 'POST only' } });
    if (Array.isArray(body.messages)) {
      entry.messages = body.messages as Array<{ role: string; content: string }>;
      entry.n = Math.max(1, Number(body.n ?? 1) | 0);
      entry.seed = typeof body.seed === 'number' ? body.seed : undefined;
      entry.logprobsRequested = body.logprobs === true;
    }
    const haystack = entry.path.endsWith('/embeddings') ? JSON.stringify(body.input ?? '') : JSON.stringify(body.messages ?? '');
    const rule = this.rules.find(
      (r) => r.left > 0 && (r.path === undefined || r.path === entry.path) && (r.contains === undefined || haystack.includes(r.contains)),
    );
    if (rule) rule.left--;
    const kind = entry.path.endsWith('/embeddings')
      ? ('embed' as const)
      : entry.path.endsWith('/chat/completions')
        ? Array.isArray(body.messages) && (body.messages as Array<{ role: string }>).some((m) => m.role === 'assistant')
          ? ('unroll' as const)
          : ('generate' as const)
        : ('other' as const);
    if (kind !== 'other') entry.kind = kind; // also for requests that are refused
    const delay = this.latencyMs + (this.extraLatency?.({ seq: entry.seq, kind, body }) ?? 0);
    if (delay > 0) await new Promise((r) => setTimeout(r, delay));
    if (entry.aborted) {
      // Recorded as what it was (kind set above), though never answered: tests count cancelled calls.
      entry.end = performance.now();
      return;
    }
    if (rule) {
      if ('drop' in rule.action) {
        entry.status = 'dropped';
        entry.end = performance.now();
        req.socket.destroy();
        return;
      }
      const headers: Record<string, string> = rule.action.retryAfter !== undefined ? { 'retry-after': rule.action.retryAfter } : {};
      return this.send(res, entry, rule.action.status, { error: { message: rule.action.body ?? `injected failure ${rule.action.status}` } }, headers);
    }
    if (entry.path === '/v1/chat/completions' && this.rejectN !== undefined && (entry.n ?? 1) !== 1) {
      // The body llama.cpp's server sends (format_error_response): the code repeats the status.
      return this.send(res, entry, this.rejectN, {
        error: { code: this.rejectN, message: 'Only one completion choice is allowed', type: this.rejectN === 400 ? 'invalid_request_error' : 'server_error' },
      });
    }
    if (entry.path === '/v1/chat/completions' && body.stream === true) return this.stream(res, entry, this.chat(body, entry) as ChatJson, body);
    if (entry.path === '/v1/chat/completions') return this.send(res, entry, 200, this.chat(body, entry));
    if (entry.path === '/v1/embeddings') return this.send(res, entry, 200, this.embeddings(body, entry));
    return this.send(res, entry, 404, { error: { message: `no route ${entry.path}` } });
  }

  private send(res: ServerResponse, entry: LogEntry, status: number, json: unknown, headers: Record<string, string> = {}): void {
    entry.status = status;
    const payload = JSON.stringify(json);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload), ...headers });
    res.end(payload);
    entry.end = performance.now();
  }

  /** The completion as SSE: a role chunk, one chunk per word, a finish chunk, usage if asked, [DONE]. */
  private stream(res: ServerResponse, entry: LogEntry, json: ChatJson, body: Record<string, unknown>): void {
    entry.status = 200;
    entry.streamed = true;
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    const base = { id: json.id, object: 'chat.completion.chunk', created: json.created, model: json.model };
    const event = (x: unknown) => res.write(`data: ${JSON.stringify(x)}\n\n`);
    json.choices.forEach((c) => {
      event({ ...base, choices: [{ index: c.index, delta: { role: 'assistant', content: '' }, finish_reason: null }] });
      // A contentless choice streams its refusal (OpenAI's delta.refusal), or nothing, as OpenAI does.
      if (c.message.refusal !== undefined) event({ ...base, choices: [{ index: c.index, delta: { refusal: c.message.refusal }, finish_reason: null }] });
      for (const piece of c.message.content?.match(/\S+\s*/g) ?? [])
        event({ ...base, choices: [{ index: c.index, delta: { content: piece }, finish_reason: null }] });
      event({ ...base, choices: [{ index: c.index, delta: {}, finish_reason: c.finish_reason }] });
    });
    const wantsUsage = (body.stream_options as { include_usage?: unknown } | undefined)?.include_usage === true;
    if (wantsUsage && json.usage) event({ ...base, choices: [], usage: json.usage });
    res.end('data: [DONE]\n\n');
    entry.end = performance.now();
  }

  private chat(body: Record<string, unknown>, entry: LogEntry): unknown {
    const messages = Array.isArray(body.messages) ? (body.messages as Array<{ role: string; content: string }>) : [];
    const model = textOf(body.model);
    const n = Math.max(1, Number(body.n ?? 1) | 0);
    const seed = typeof body.seed === 'number' ? body.seed : undefined;
    const nonce = seed !== undefined ? `seed${seed}` : `draw${this.counter++}`;
    const wantLogprobs = body.logprobs === true && this.logprobs;
    const topK = Math.max(0, Math.min(20, Number(body.top_logprobs ?? 0) | 0));
    const lastAssistant = [...messages].reverse().find((m) => m.role === 'assistant');
    const prompt = messages.find((m) => m.role === 'user')?.content ?? '';
    const choicesWanted = this.ignoreN ? 1 : n;
    const texts: string[] = [];
    for (let j = 0; j < choicesWanted; j++) {
      if (lastAssistant) {
        const m = TAG_RE.exec(lastAssistant.content);
        const tag = m ? m[1] : fnv(lastAssistant.content).toString(16).padStart(8, '0');
        const s = m ? Number(m[2]) + 1 : 1;
        // Most reviews restate the answer; some drift to another subject or tone.
        const h = fnv(`${tag}|${s}|${nonce}|${j}`);
        const prevSubject = SUBJECTS.find((x) => lastAssistant.content.includes(x)) ?? SUBJECTS[h % SUBJECTS.length];
        const subject = h % 4 === 0 ? SUBJECTS[(h >>> 3) % SUBJECTS.length] : prevSubject;
        texts.push(`${this.textPrefix}[c:${tag} s:${s}] ${TEMPLATES[(h >>> 7) % TEMPLATES.length](subject)}`);
      } else {
        const tag = fnv(`${model}|${prompt}|${nonce}|${j}`).toString(16).padStart(8, '0');
        const h = fnv(tag);
        texts.push(`${this.textPrefix}[c:${tag} s:0] ${TEMPLATES[h % TEMPLATES.length](SUBJECTS[(h >>> 5) % SUBJECTS.length])}`);
      }
    }
    const head = TAG_RE.exec(texts[0]);
    entry.kind = lastAssistant ? 'unroll' : 'generate';
    entry.tag = head?.[1];
    entry.step = head ? Number(head[2]) : undefined;
    const answers = texts.map((_, choice) => this.contentless?.({ seq: entry.seq, kind: lastAssistant ? 'unroll' : 'generate', choice }));
    entry.texts = texts.map((t, j) => (answers[j] ? null : t));
    const promptTokens = messages.reduce((s, m) => s + words(String(m.content ?? '')), 0);
    const completionTokens = entry.texts.reduce((s, t) => s + (t === null ? 0 : words(t)), 0);
    return {
      id: `chatcmpl-loopback-${entry.seq}`,
      object: 'chat.completion',
      created: Math.floor(Date.now() / 1000),
      model,
      choices: texts.map((text, index) => {
        const a = answers[index];
        if (a) {
          // OpenAI's shapes: content null with `refusal`, or with `tool_calls` and finish_reason "tool_calls".
          const message =
            'refusal' in a
              ? { role: 'assistant', content: null, refusal: a.refusal }
              : 'toolCall' in a
                ? {
                    role: 'assistant',
                    content: null,
                    tool_calls: [{ id: `call_${entry.seq}_${index}`, type: 'function', function: { name: a.toolCall, arguments: '{}' } }],
                  }
                : { role: 'assistant', content: null };
          return { index, message, finish_reason: 'toolCall' in a ? 'tool_calls' : 'stop', logprobs: null };
        }
        return {
          index,
          message: { role: 'assistant', content: text },
          finish_reason: 'stop',
          logprobs: wantLogprobs ? { content: tokenLogprobs(text, topK) } : null,
        };
      }),
      ...(this.usage ? { usage: { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens } } : {}),
      ...(this.systemFingerprint !== undefined ? { system_fingerprint: this.systemFingerprint } : {}),
    };
  }

  private embeddings(body: Record<string, unknown>, entry: LogEntry): unknown {
    const input = Array.isArray(body.input) ? body.input.map(String) : [textOf(body.input)];
    entry.kind = 'embed';
    entry.inputs = input.length;
    return {
      object: 'list',
      model: textOf(body.model),
      data: input.map((text, index) => ({ object: 'embedding', index, embedding: Array.from(this.embedder.embedOne(text)) })),
      ...(this.usage ? { usage: { prompt_tokens: input.reduce((s, t) => s + words(t), 0), total_tokens: input.reduce((s, t) => s + words(t), 0) } } : {}),
    };
  }
}

/** Deterministic per-token logprobs: the chosen token has p in [0.55, 0.99); alternatives share the rest. */
function tokenLogprobs(text: string, topK: number) {
  const tokens = text.match(/\S+\s*/g) ?? [];
  return tokens.map((token, i) => {
    const p = 0.55 + 0.44 * ((fnv(`${token}|${i}`) % 1000) / 1000);
    const top = [{ token, logprob: Math.log(p), bytes: null }];
    for (let j = 1; j < topK; j++) top.push({ token: `alt${j}`, logprob: Math.log((1 - p) * 0.5 ** j), bytes: null });
    return { token, logprob: Math.log(p), bytes: null, top_logprobs: top };
  });
}
