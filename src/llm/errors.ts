/** Typed failures of LLM calls. All extend EcrError so the CLI maps them to exit code 1. */
import { EcrError } from '../core/errors.js';
import { redactUrl, redactUrlsIn } from '../core/redact-url.js';

/** What an LLM call is for; used for stats, metrics and failure reports. */
export type CallKind = 'generate' | 'unroll' | 'embed';

export class LlmError extends EcrError {
  /** The URL called, without credentials (userinfo, secret query parameters): it is shown. */
  readonly url: string;
  constructor(
    code: string,
    message: string,
    readonly kind: CallKind,
    url: string,
    /** Attempts made, retries included. */
    readonly attempts: number,
    options?: { cause?: unknown },
  ) {
    // Every LLM error ends up in a message, a log line or --json output: none may show a credential.
    super(code, redactUrlsIn(message), options);
    this.url = redactUrl(url);
  }
}

/** The server answered with a non-2xx status. */
export class LlmHttpError extends LlmError {
  constructor(
    readonly status: number,
    readonly bodySnippet: string,
    kind: CallKind,
    url: string,
    attempts: number,
    readonly retryAfterMs?: number,
    /** A likely fix, e.g. "did you mean http://host/v1?" on a 404 (part of the message). */
    readonly hint?: string,
  ) {
    super(
      'ECR_LLM_HTTP',
      `${kind} call to ${url} failed with HTTP ${status} after ${attempts} attempt(s)${hint ? ` (${hint})` : ''}${bodySnippet ? `: ${bodySnippet}` : ''}`,
      kind,
      url,
      attempts,
    );
  }
}

/**
 * The server refused `n > 1` outright. llama.cpp's server does: HTTP 400 (500 in older builds)
 * with the message "Only one completion choice is allowed". Never retried; sampleChoices falls
 * back to single calls.
 */
export class LlmMultipleChoicesRejectedError extends LlmHttpError {
  constructor(
    readonly n: number,
    status: number,
    bodySnippet: string,
    kind: CallKind,
    url: string,
    attempts: number,
  ) {
    super(status, bodySnippet, kind, url, attempts);
  }
}

/** The message by which llama.cpp's server (and forks that say "Illegal param: only one ...") refuse n > 1. */
const MULTIPLE_CHOICES_REFUSAL = /only one completion choice is allowed/i;

/** True for exactly that refusal: status 400 or 500 and the message; any other 400 is not it. */
export function isMultipleChoicesRefusal(status: number, body: string): boolean {
  return (status === 400 || status === 500) && MULTIPLE_CHOICES_REFUSAL.test(body);
}

/**
 * A choice whose message has no text content: a refusal (the `refusal` field carries the
 * model's reason), or an answer made only of tool calls. It fails its own sample, in its place.
 */
export class LlmNoContentError extends LlmError {
  constructor(
    /** Position of the choice in the response (its `index`). */
    readonly choiceIndex: number,
    readonly refusal: string | undefined,
    /** Tool calls the choice carried instead of text (0 if none). */
    readonly toolCalls: number,
    readonly finishReason: string | undefined,
    kind: CallKind,
    url: string,
    attempts: number,
  ) {
    const why =
      refusal !== undefined
        ? `refusal: ${JSON.stringify(refusal)}`
        : toolCalls > 0
          ? `${toolCalls} tool call(s) and no text`
          : `no text content${finishReason ? ` (finish_reason ${JSON.stringify(finishReason)})` : ''}`;
    super('ECR_LLM_NO_CONTENT', `${kind} call to ${url}: choice ${choiceIndex} has no answer text: ${why}`, kind, url, attempts);
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
  constructor(
    readonly timeoutMs: number,
    kind: CallKind,
    url: string,
    attempts: number,
  ) {
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
