import { EcrError } from '../core/errors.js';

/** Every candidate failed (generation, unroll or evaluation) after retries; nothing to select. */
export class NoSurvivingCandidatesError extends EcrError {
  constructor(
    /** One entry per candidate: where and why it failed. */
    readonly failures: ReadonlyArray<{ index: number; stage: string; step?: number; message: string }>,
    /** The underlying errors, in the order of `failures` (typed LlmErrors carry status and Retry-After). */
    readonly errors: readonly unknown[] = [],
  ) {
    super('ECR_NO_SURVIVORS', `all ${failures.length} candidate(s) failed; first failure (${failures[0]?.stage ?? '?'}): ${failures[0]?.message ?? 'unknown'}`);
  }
}

/** The caller's signal aborted the request. */
export class RequestCancelledError extends EcrError {
  constructor(options?: { cause?: unknown }) {
    super('ECR_CANCELLED', 'the request was cancelled', options);
  }
}

/** The request's deadline (RunOptions.deadlineMs) passed before it finished; its calls were cancelled. */
export class DeadlineExceededError extends EcrError {
  constructor(
    readonly deadlineMs: number,
    options?: { cause?: unknown },
  ) {
    super('ECR_DEADLINE', `the request did not finish within its deadline of ${formatMs(deadlineMs)}`, options);
  }
}

function formatMs(ms: number): string {
  return ms >= 1000 ? `${+(ms / 1000).toFixed(3)} s` : `${ms} ms`;
}
