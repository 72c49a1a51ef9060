/**
 * Errors in OpenAI's format, `{"error": {"message", "type", "param", "code"}}`, which is what the
 * official SDKs turn into their per-status classes (BadRequestError, AuthenticationError,
 * RateLimitError, InternalServerError, ...), and the mapping from pipeline and upstream failures.
 */
import { ConfigError, EcrError } from '../core/errors.js';
import { LlmHttpError, LlmTimeoutError } from '../llm/errors.js';
import { NoSurvivingCandidatesError, RequestCancelledError } from '../pipeline/errors.js';
import { redactUrlsIn } from '../core/redact-url.js';

export type ApiErrorType =
  'invalid_request_error' | 'authentication_error' | 'rate_limit_error' | 'upstream_error' | 'timeout_error' | 'server_error' | 'service_unavailable';

/** The abort reason of requests cut when --shutdown-timeout expires: they answer 503 (toApiError). */
export class ShuttingDownError extends Error {
  constructor() {
    super('the server is shutting down and could not finish this request in time; retry it');
  }
}

/** A failure the gateway answers with `status` and an OpenAI error body. */
export class ApiError extends EcrError {
  constructor(
    readonly status: number,
    readonly type: ApiErrorType,
    message: string,
    readonly param: string | null = null,
    code: string | null = null,
    /** Extra response headers (Retry-After). */
    readonly headers: Record<string, string> = {},
  ) {
    // Every message goes to a client and often to the log: an upstream URL in it is shown without credentials.
    super(code ?? type, redactUrlsIn(message));
    this.apiCode = code;
  }
  readonly apiCode: string | null;

  body(): { error: { message: string; type: string; param: string | null; code: string | null } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.apiCode } };
  }
}

export function invalidRequest(param: string | null, message: string, code: string | null = null): ApiError {
  return new ApiError(400, 'invalid_request_error', param ? `${param}: ${message}` : message, param, code);
}

/** Maps what the pipeline threw to the status and body the client gets; never invents an answer. */
export function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  if (err instanceof ConfigError) return invalidRequest(err.key ? `ecr.${err.key.split('.')[0]}` : 'ecr', err.message.replace(/^config "[^"]*": /, ''));
  if (err instanceof ShuttingDownError || (err instanceof RequestCancelledError && err.cause instanceof ShuttingDownError)) {
    return new ApiError(503, 'service_unavailable', err instanceof ShuttingDownError ? err.message : (err.cause as Error).message, null, 'shutting_down', {
      'retry-after': '1',
    });
  }
  if (err instanceof RequestCancelledError) return new ApiError(499, 'invalid_request_error', 'the client closed the request', null, 'client_closed_request');
  if (err instanceof NoSurvivingCandidatesError) return fromNoSurvivors(err);
  if (err instanceof LlmTimeoutError) return new ApiError(504, 'timeout_error', `upstream timed out: ${err.message}`, null, 'upstream_timeout');
  if (err instanceof LlmHttpError) return fromUpstreamStatus([err], err.message);
  if (err instanceof EcrError && err.code === 'ECR_PIPELINE_OPTION') return invalidRequest('ecr', err.message);
  return new ApiError(500, 'server_error', `internal error: ${err instanceof Error ? err.message : String(err)}`, null, 'internal_error');
}

function fromNoSurvivors(err: NoSurvivingCandidatesError): ApiError {
  const errors = err.errors;
  const message = `every candidate failed at the upstream: ${err.message}`;
  if (errors.length > 0 && errors.every((e) => e instanceof LlmTimeoutError)) return new ApiError(504, 'timeout_error', message, null, 'upstream_timeout');
  if (errors.length > 0 && errors.every((e) => e instanceof LlmHttpError)) return fromUpstreamStatus(errors as LlmHttpError[], message);
  return new ApiError(502, 'upstream_error', message, null, 'ecr_no_surviving_candidates');
}

/**
 * Every candidate got an HTTP error. A 429 that survived the retries is passed on with the longest
 * Retry-After; the same 4xx everywhere (a wrong model name, a bad parameter) is the client's, so it
 * is passed on too; anything else is a bad gateway.
 */
function fromUpstreamStatus(errors: LlmHttpError[], message: string): ApiError {
  const status = errors[0].status;
  const same = errors.every((e) => e.status === status);
  if (same && status === 429) {
    const waits = errors.map((e) => e.retryAfterMs).filter((x): x is number => x !== undefined);
    const seconds = waits.length ? Math.max(1, Math.ceil(Math.max(...waits) / 1000)) : 1;
    return new ApiError(429, 'rate_limit_error', message, null, 'upstream_rate_limited', { 'retry-after': String(seconds) });
  }
  if (same && status >= 400 && status < 500) return new ApiError(status, 'invalid_request_error', message, null, 'upstream_rejected');
  if (errors.some((e) => e.status === 508)) return new ApiError(508, 'upstream_error', message, null, 'loop_detected');
  return new ApiError(502, 'upstream_error', message, null, 'upstream_error');
}
