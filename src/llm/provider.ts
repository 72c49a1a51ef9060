/**
 * The provider contract. A provider turns one chat request into choices and (optionally) texts
 * into embeddings; everything else (fan-out of K samples, caching, retries' bookkeeping) is built
 * on these two calls, so a new backend is one file implementing `Provider`.
 */
import type { CallKind, LlmNoContentError } from './errors.js';

export type { CallKind } from './errors.js';

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

/** Sampling parameters that change the result (all of them enter cache keys). */
export interface SamplingParams {
  temperature?: number;
  topP?: number;
  maxTokens?: number;
  /** With a seed (or temperature 0) sampling is treated as deterministic and may be cached. */
  seed?: number;
  /** Stop sequences (OpenAI's `stop`). */
  stop?: string[];
}

export interface ChatRequest {
  kind: Exclude<CallKind, 'embed'>;
  messages: ChatMessage[];
  /** Choices asked for; a server may return fewer (see sampleChoices). Default 1. */
  n?: number;
  sampling?: SamplingParams;
  /** Ask for token logprobs with this many alternatives per token (0: do not ask). */
  topLogprobs?: number;
}

export interface TopLogprob {
  token: string;
  logprob: number;
}

export interface TokenLogprob {
  token: string;
  logprob: number;
  /** The most likely alternatives at this position, most likely first (may be empty). */
  top: TopLogprob[];
}

export interface ChatChoice {
  text: string;
  /** Per-token logprobs when the server returned them, else null. */
  logprobs: TokenLogprob[] | null;
  finishReason?: string;
  /** The response's system_fingerprint, when the server sent one. */
  systemFingerprint?: string;
}

/**
 * A choice the server sent without text (a refusal, tool calls only). It stays in its place so
 * the other choices keep their indices, and fails only its own sample with `error`.
 */
export interface ContentlessChoice {
  text: null;
  logprobs: null;
  finishReason?: string;
  error: LlmNoContentError;
}

export interface Usage {
  promptTokens?: number;
  completionTokens?: number;
}

export interface ChatResult {
  /** In index order, one per choice the server sent, contentless ones included. */
  choices: Array<ChatChoice | ContentlessChoice>;
  usage?: Usage;
}

/** One HTTP attempt, reported to the observer whether it succeeded or not. */
export interface CallRecord {
  kind: CallKind;
  ok: boolean;
  /** 0 for the first attempt of a call, 1.. for retries. */
  attempt: number;
  startedAt: number;
  latencyMs: number;
  status?: number;
  error?: string;
  choices?: number;
  usage?: Usage;
}

export interface CallObserver {
  onCall(record: CallRecord): void;
}

export interface CallOptions {
  signal?: AbortSignal;
  observer?: CallObserver;
}

export interface Provider {
  /** Identity of everything that changes outputs besides the request (type, base URL, model). */
  readonly id: string;
  /** Base URL, the key under which `n` support is remembered. */
  readonly baseUrl: string;
  readonly model: string;
  /** Largest `n` worth asking for in one request; 1 for providers without native batching. */
  readonly maxN: number;
  chat(request: ChatRequest, options?: CallOptions): Promise<ChatResult>;
  /** Embeddings for the texts, in order; absent when the provider has no embedding model. */
  embed?(texts: string[], options?: CallOptions): Promise<Float32Array[]>;
}
