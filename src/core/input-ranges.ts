/**
 * The accepted range of every numeric input (ECR-SPEC section 2), shared by the JSONL record
 * check and the packed-batch check so both reject the same values with the same words.
 *
 * Why bounds at all: the WebGPU kernels compute in float32 (largest finite value 3.4e38). They
 * square and sum embedding components (norms, dot products over d), sum policy rows, and square
 * the deviations of realized - expected. Past these bounds a float32 sum overflows to Infinity
 * and the backends disagree (TS 0 on the CPU, 1 on the GPU) or print NaN. Within them every
 * backend computes finite values that agree within the spec's float32 tolerance (1e-5), which
 * test/value-bounds.test.ts checks at the bounds themselves.
 */

/**
 * |embedding component| bound. Cosines do not depend on magnitude, so this bound only keeps
 * float32 norms finite: d * (1e15)^2 stays below 3.4e38 for any d up to 3.4e8.
 */
export const MAX_EMBEDDING_MAGNITUDE = 1e15;

/** Policy entries are normalized per row; the bound keeps a float32 row sum finite for any A. */
export const MAX_POLICY_ENTRY = 1e15;

/**
 * |expected|, |realized| bound. ES compares the variance of realized - expected with vmax
 * (default 0.25). The GPU receives each difference as a float32, rounded by up to 2^-24 of its
 * size, and the variance error that causes is at most 2 * rounding / sqrt(vmax): with
 * differences up to 2 * 16 = 32 that is below 4e-6 at the default vmax (measured: 8e-7),
 * inside 1e-5; at differences near 2000 it measured 5e-5, at 2e6 0.07. Rewards of the ECR
 * pipeline (confidence, consistency) lie in [0, 1].
 */
export const MAX_REWARD_MAGNITUDE = 16;

/**
 * A number used as an id or group key must be an integer that float64 holds exactly, so that it
 * prints back as written and two different keys never become one.
 */
export const MAX_KEY_INTEGER = Number.MAX_SAFE_INTEGER;

/** A value's problem in words ("outside [0, 1]"), or null when it is accepted. */
export type ValueCheck = (x: number) => string | null;

export const stepValue: ValueCheck = (x) => (x < 0 || x > 1 ? 'outside [0, 1]' : null);
export const embeddingValue: ValueCheck = (x) =>
  x < -MAX_EMBEDDING_MAGNITUDE || x > MAX_EMBEDDING_MAGNITUDE ? 'outside [-1e15, 1e15], the accepted embedding range' : null;
export const rewardValue: ValueCheck = (x) => (x < -MAX_REWARD_MAGNITUDE || x > MAX_REWARD_MAGNITUDE ? 'outside [-16, 16], the accepted reward range' : null);
export const policyValue: ValueCheck = (x) => (x < 0 ? 'negative' : x > MAX_POLICY_ENTRY ? 'above 1e15, the largest accepted policy entry' : null);

/** A number as a person would write it: NaN and the infinities by name (JSON.stringify says null). */
export function formatNumber(x: number): string {
  return Number.isFinite(x) ? String(x) : Number.isNaN(x) ? 'NaN' : x > 0 ? 'Infinity' : '-Infinity';
}
