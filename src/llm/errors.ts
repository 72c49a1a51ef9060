/** Typed failures of LLM calls. All extend EcrError so the CLI maps them to exit code 1. */
import { EcrError } from '../errors.js';
import type { CallKind } from './provider.js';

export class LlmError extends EcrError {
  constructor(
    code: string,
    message: string,
    readonly kind: CallKind,
    readonly url: string,
    /** Attempts made, retries included. */
    readonly attempts: number,
    options?: { cause?: unknown },
  ) {
    super(code, message, options);
  }
}

/** The server answered with a non-2xx status. */
export class LlmHttpError extends LlmError {
  constructor(readonly status: number, readonly bodySnippet: string, kind: CallKind, url: string, attempts: number, readonly retryAfterMs?: number) {
    super('ECR_LLM_HTTP', `${kind} call to ${url} failed with HTTP ${status} after ${attempts} attempt(s)${bodySnippet ? `: ${bodySnippet}` : ''}`, kind, url, attempts);
  }
}

/** No HTTP answer at all: connection refused or reset, DNS failure, dropped socket. */
export class LlmNetworkError extends LlmError {
  constructor(detail: string, kind: CallKind, url: string, attempts: number, options?: { cause?: unknown }) {
    super('ECR_LLM_NETWORK', `${kind} call to ${url} failed after ${attempts} attempt(s): ${detail}`, kind, url, attempts, options);
  }
}

/** The per-call timeout expired. */
export class LlmTimeoutError extends LlmError {
  constructor(readonly timeoutMs: number, kind: CallKind, url: string, attempts: number) {
    super('ECR_LLM_TIMEOUT', `${kind} call to ${url} timed out after ${timeoutMs} ms (${attempts} attempt(s))`, kind, url, attempts);
  }
}

/** The caller's signal aborted the call; never retried. */
export class LlmCancelledError extends LlmError {
  constructor(kind: CallKind, url: string, attempts: number, options?: { cause?: unknown }) {
    super('ECR_LLM_CANCELLED', `${kind} call to ${url} was cancelled`, kind, url, attempts, options);
  }
}

/** A 2xx answer that is not the expected JSON shape. */
export class LlmResponseError extends LlmError {
  constructor(detail: string, kind: CallKind, url: string, attempts: number) {
    super('ECR_LLM_RESPONSE', `${kind} call to ${url}: malformed response: ${detail}`, kind, url, attempts);
  }
}
