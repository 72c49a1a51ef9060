/**
 * What one chat-completions request asks of ECR: the per-request `ecr` settings (from the body's
 * `ecr` object, which the OpenAI SDKs send through `extra_body`, or the `x-ecr-config` header) and
 * the OpenAI request fields ECR honours. Every rejection names the field (OpenAI's `param`).
 */
import { PRESETS, resolveConfig, type EcrConfig, type PresetName } from '../core/config.js';
import { ConfigError } from '../core/errors.js';
import { checkCacheNamespace } from '../cache/namespace.js';
import type { CacheControl } from '../cache/tiered-cache.js';
import type { ChatMessage, SamplingParams } from '../llm/provider.js';
import { invalidRequest } from './errors.js';

export type AuditLevel = 'none' | 'summary' | 'full';

export interface EcrSettings {
  k?: number;
  horizon?: number;
  tau?: number;
  preset?: PresetName;
  weights?: number[] | Record<string, number>;
  adaptiveK?: boolean;
  fixedK?: boolean;
  topLogprobs?: number;
  audit?: AuditLevel;
  /** LiteLLM's per-request cache control: `{ttl, namespace, "no-cache", "no-store"}`. */
  cache?: CacheControl;
}

export interface Limits {
  maxK: number;
  maxHorizon: number;
}

const ECR_KEYS = ['k', 'horizon', 'tau', 'preset', 'weights', 'adaptiveK', 'fixedK', 'topLogprobs', 'audit', 'cache'] as const;
const CACHE_KEYS = ['ttl', 'namespace', 'no-cache', 'no-store'] as const;
/** Longest per-request TTL, in seconds (a year). */
export const MAX_CACHE_TTL_S = 365 * 24 * 3600;

function isObject(x: unknown): x is Record<string, unknown> {
  return x !== null && typeof x === 'object' && !Array.isArray(x);
}

function int(param: string, v: unknown, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max)
    throw invalidRequest(param, `must be an integer in ${min}..${max}, got ${JSON.stringify(v)}`);
  return v;
}

function num(param: string, v: unknown, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max)
    throw invalidRequest(param, `must be a number in [${min}, ${max}], got ${JSON.stringify(v)}`);
  return v;
}

function bool(param: string, v: unknown): boolean {
  if (typeof v !== 'boolean') throw invalidRequest(param, `must be true or false, got ${JSON.stringify(v)}`);
  return v;
}

/** Validates an `ecr` settings object; `prefix` is the param path it came from ('ecr', 'x-ecr-config', 'defaults'). */
export function parseEcrSettings(raw: unknown, limits: Limits, prefix = 'ecr'): EcrSettings {
  if (!isObject(raw)) throw invalidRequest(prefix, `must be a JSON object, got ${JSON.stringify(raw)}`);
  const out: EcrSettings = {};
  for (const key of Object.keys(raw)) {
    if (!(ECR_KEYS as readonly string[]).includes(key))
      throw invalidRequest(`${prefix}.${key}`, `unknown key (known: ${ECR_KEYS.join(', ')})`, 'unknown_parameter');
  }
  const p = (k: string) => `${prefix}.${k}`;
  if (raw.k !== undefined) out.k = int(p('k'), raw.k, 1, limits.maxK);
  if (raw.horizon !== undefined) out.horizon = int(p('horizon'), raw.horizon, 1, limits.maxHorizon);
  if (raw.tau !== undefined) out.tau = num(p('tau'), raw.tau, 0, 1);
  if (raw.preset !== undefined) {
    if (typeof raw.preset !== 'string' || !(raw.preset in PRESETS))
      throw invalidRequest(p('preset'), `must be one of ${Object.keys(PRESETS).join(', ')}, got ${JSON.stringify(raw.preset)}`);
    out.preset = raw.preset as PresetName;
  }
  if (raw.weights !== undefined) {
    if (raw.preset !== undefined) throw invalidRequest(p('weights'), 'give either "weights" or "preset", not both');
    try {
      resolveConfig({ weights: raw.weights });
    } catch (e) {
      if (e instanceof ConfigError) throw invalidRequest(p(e.key ?? 'weights'), e.message.replace(/^config "[^"]*": /, ''));
      throw e;
    }
    out.weights = raw.weights as EcrSettings['weights'];
  }
  if (raw.adaptiveK !== undefined) out.adaptiveK = bool(p('adaptiveK'), raw.adaptiveK);
  if (raw.fixedK !== undefined) out.fixedK = bool(p('fixedK'), raw.fixedK);
  if (out.adaptiveK !== undefined && out.fixedK !== undefined && out.adaptiveK === out.fixedK) {
    throw invalidRequest(p('fixedK'), `contradicts adaptiveK (fixedK ${out.fixedK}, adaptiveK ${out.adaptiveK})`);
  }
  if (raw.topLogprobs !== undefined) out.topLogprobs = int(p('topLogprobs'), raw.topLogprobs, 0, 20);
  if (raw.audit !== undefined) {
    if (raw.audit !== 'none' && raw.audit !== 'summary' && raw.audit !== 'full')
      throw invalidRequest(p('audit'), `must be "none", "summary" or "full", got ${JSON.stringify(raw.audit)}`);
    out.audit = raw.audit;
  }
  if (raw.cache !== undefined) out.cache = parseCacheControl(raw.cache, p('cache'));
  return out;
}

function parseCacheControl(raw: unknown, param: string): CacheControl {
  if (!isObject(raw)) throw invalidRequest(param, `must be a JSON object {ttl, namespace, "no-cache", "no-store"}, got ${JSON.stringify(raw)}`);
  for (const key of Object.keys(raw)) {
    if (!(CACHE_KEYS as readonly string[]).includes(key))
      throw invalidRequest(`${param}.${key}`, `unknown key (known: ${CACHE_KEYS.join(', ')})`, 'unknown_parameter');
  }
  const out: CacheControl = {};
  if (raw.ttl !== undefined) out.ttlSeconds = int(`${param}.ttl`, raw.ttl, 1, MAX_CACHE_TTL_S);
  if (raw.namespace !== undefined) out.namespace = checkCacheNamespace(raw.namespace, (problem) => invalidRequest(`${param}.namespace`, problem));
  if (raw['no-cache'] !== undefined) out.noCache = bool(`${param}.no-cache`, raw['no-cache']);
  if (raw['no-store'] !== undefined) out.noStore = bool(`${param}.no-store`, raw['no-store']);
  return out;
}

/** Server defaults, then the header, then the body; weights and preset replace each other. */
export function mergeSettings(...layers: EcrSettings[]): EcrSettings {
  const out: EcrSettings = {};
  for (const l of layers) {
    if (l.weights !== undefined) delete out.preset;
    if (l.preset !== undefined) delete out.weights;
    if (l.fixedK !== undefined) delete out.adaptiveK;
    if (l.adaptiveK !== undefined) delete out.fixedK;
    const cache = l.cache !== undefined ? { ...out.cache, ...l.cache } : out.cache;
    Object.assign(out, l);
    if (cache !== undefined) out.cache = cache;
  }
  return out;
}

/** The scoring config for a request: the server's, with the request's tau, preset or weights. */
export function scoringConfig(base: EcrConfig, s: EcrSettings): EcrConfig {
  const c: EcrConfig = { ...base };
  if (s.weights !== undefined) {
    delete c.preset;
    c.weights = s.weights as EcrConfig['weights'];
  }
  if (s.preset !== undefined) {
    delete c.weights;
    c.preset = s.preset;
  }
  if (s.tau !== undefined) c.tau = s.tau;
  return c;
}

export interface EcrChatRequest {
  model: string;
  messages: ChatMessage[];
  /** The last user turn: what risk, safety and retrieval agreement are judged against. */
  prompt: string;
  sampling: SamplingParams;
  stream: boolean;
  includeUsage: boolean;
}

/** Fields accepted and ignored (they do not change the answer). */
const IGNORED = new Set(['user', 'metadata', 'store', 'service_tier']);
const HANDLED = new Set([
  'model',
  'messages',
  'temperature',
  'top_p',
  'max_tokens',
  'max_completion_tokens',
  'seed',
  'stop',
  'n',
  'stream',
  'stream_options',
  'ecr',
]);
const NOT_WITH_ECR = new Set(['tools', 'tool_choice', 'functions', 'function_call', 'response_format', 'parallel_tool_calls']);

function messageText(param: string, content: unknown): string {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) {
    return content
      .map((part, i) => {
        if (!isObject(part) || part.type !== 'text' || typeof part.text !== 'string')
          throw invalidRequest(`${param}[${i}]`, 'ECR models take text content parts only ({"type": "text", "text": ...})');
        return part.text;
      })
      .join('');
  }
  throw invalidRequest(param, `must be a string or an array of text parts, got ${JSON.stringify(content)}`);
}

/** Validates a chat-completions body for an ECR model. `upstreamModel` is the model after the ecr/ prefix. */
export function parseEcrChatRequest(body: Record<string, unknown>, upstreamModel: string): EcrChatRequest {
  for (const key of Object.keys(body)) {
    if (NOT_WITH_ECR.has(key)) {
      throw invalidRequest(
        key,
        `ECR models answer with text only and do not support ${key}; call the upstream model "${upstreamModel}" directly for this request`,
        'unsupported_parameter',
      );
    }
    if (!HANDLED.has(key) && !IGNORED.has(key)) throw invalidRequest(key, 'is not supported for ECR models', 'unsupported_parameter');
  }
  if (!Array.isArray(body.messages) || body.messages.length === 0) throw invalidRequest('messages', 'must be a non-empty array');
  const messages: ChatMessage[] = body.messages.map((m: unknown, i: number) => {
    const param = `messages[${i}]`;
    if (!isObject(m)) throw invalidRequest(param, 'must be an object');
    const role = m.role === 'developer' ? 'system' : m.role;
    if (role !== 'system' && role !== 'user' && role !== 'assistant')
      throw invalidRequest(`${param}.role`, `must be system, developer, user or assistant for ECR models, got ${JSON.stringify(m.role)}`);
    return { role, content: messageText(`${param}.content`, m.content) };
  });
  const lastUser = [...messages].reverse().find((m) => m.role === 'user');
  if (!lastUser || lastUser.content.trim() === '') throw invalidRequest('messages', 'needs a user turn with text');
  if (body.n !== undefined && body.n !== null && body.n !== 1)
    throw invalidRequest('n', `ECR returns one selected answer; n must be 1, got ${JSON.stringify(body.n)}`);
  const sampling: SamplingParams = {};
  if (body.temperature !== undefined && body.temperature !== null) sampling.temperature = num('temperature', body.temperature, 0, 2);
  if (body.top_p !== undefined && body.top_p !== null) sampling.topP = num('top_p', body.top_p, 0, 1);
  const maxTokens = body.max_completion_tokens ?? body.max_tokens;
  if (maxTokens !== undefined && maxTokens !== null)
    sampling.maxTokens = int(body.max_completion_tokens !== undefined ? 'max_completion_tokens' : 'max_tokens', maxTokens, 1, 1_000_000);
  if (body.seed !== undefined && body.seed !== null) sampling.seed = int('seed', body.seed, Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);
  if (body.stop !== undefined && body.stop !== null) {
    const stop = typeof body.stop === 'string' ? [body.stop] : body.stop;
    if (!Array.isArray(stop) || stop.length > 4 || stop.some((x) => typeof x !== 'string'))
      throw invalidRequest('stop', 'must be a string or an array of at most 4 strings');
    sampling.stop = stop as string[];
  }
  const stream = body.stream === undefined || body.stream === null ? false : bool('stream', body.stream);
  let includeUsage = false;
  if (body.stream_options !== undefined && body.stream_options !== null) {
    if (!isObject(body.stream_options)) throw invalidRequest('stream_options', 'must be an object');
    if (body.stream_options.include_usage !== undefined) includeUsage = bool('stream_options.include_usage', body.stream_options.include_usage);
  }
  return { model: body.model as string, messages, prompt: lastUser.content, sampling, stream, includeUsage };
}
