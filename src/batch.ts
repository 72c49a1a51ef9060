/**
 * The packed batch of ECR-SPEC section 2: N trajectories of equal shape in flat, row-major typed
 * arrays, plus its validation. Every backend consumes this one type.
 */
import { InputError, UsageError } from './errors.js';
import type { ComputeOptions } from './backends/backend.js';

export type FloatArray = Float32Array | Float64Array;

export interface Batch {
  /** Number of trajectories. */
  readonly n: number;
  /** Steps per trajectory (H + 1), 2..16 per the spec (larger T is accepted by the CPU paths). */
  readonly t: number;
  /** Components of each evaluative vector. */
  readonly m: number;
  /** Evaluative vectors E, [n][t][m], values in [0, 1]. */
  readonly steps: FloatArray;
  /** Embedding width d, present together with `embeddings`. */
  readonly d?: number;
  /** Step embeddings, [n][t][d]. Without them TS falls back to E. */
  readonly embeddings?: FloatArray;
  /** Expected rewards r^, [n][t]; present only together with `realized`. */
  readonly expected?: FloatArray;
  /** Realized rewards r, [n][t]. */
  readonly realized?: FloatArray;
  /** Policy width A, present together with `policy`. */
  readonly a?: number;
  /** Policy distributions, [n][t][a], non-negative (normalized per row by the metric). */
  readonly policy?: FloatArray;
  /** Group index per trajectory, [n]; absent: all trajectories form one group. */
  readonly groups?: Int32Array | Uint32Array;
  /** Selection score per trajectory, [n]; NaN in an entry means "use its CCI" (the default). */
  readonly baseScore?: Float64Array;
}

/** Per-trajectory metric values, each [n]. `covariance` ([n][m][m], shrunk C) only on request. */
export interface MetricArrays {
  evb: Float64Array;
  cr: Float64Array;
  ts: Float64Array;
  es: Float64Array;
  pd: Float64Array;
  cci: Float64Array;
  covariance?: Float64Array;
}

export function allocMetrics(n: number): MetricArrays {
  return {
    evb: new Float64Array(n), cr: new Float64Array(n), ts: new Float64Array(n),
    es: new Float64Array(n), pd: new Float64Array(n), cci: new Float64Array(n),
  };
}

type AnyArray = FloatArray | Int32Array | Uint32Array;
const FLOAT_ARRAYS = [Float32Array, Float64Array] as const;
const GROUP_ARRAYS = [Int32Array, Uint32Array] as const;
const SCORE_ARRAYS = [Float64Array] as const;

/** How a value that is not the expected typed array reads in a message: "an Array", "null", "a string". */
function describeValue(v: unknown): string {
  if (v === null || v === undefined) return String(v);
  return withArticle(Array.isArray(v) ? 'Array' : typeof v === 'object' ? ((v as object).constructor?.name ?? 'object') : typeof v);
}

function withArticle(kind: string): string {
  return `${/^[aeiou]/i.test(kind) ? 'an' : 'a'} ${kind}`;
}

function kindsOf(kinds: readonly { name: string }[]): string {
  return withArticle(kinds.map((k) => k.name).join(' or '));
}

/**
 * Checks that a field is one of the typed arrays the Batch type declares and has the expected
 * length. The backends index these arrays directly (and hand them to workers and the GPU as
 * raw memory), so a plain Array or a wrong element type must stop here, not inside a kernel.
 */
function checkArray(field: string, arr: unknown, kinds: readonly (new (n: number) => AnyArray)[], expected: number, required = false): void {
  if (arr === undefined) {
    if (required) throw new InputError(`is required (${kindsOf(kinds)} of length ${expected})`, { field });
    return;
  }
  if (!kinds.some((k) => arr instanceof k)) throw new InputError(`must be ${kindsOf(kinds)}, got ${describeValue(arr)}`, { field });
  const len = (arr as AnyArray).length;
  if (len !== expected) throw new InputError(`length ${len}, expected ${expected}`, { field });
}

function checkPositiveInt(field: string, v: unknown, min: number): void {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min) {
    throw new InputError(`must be an integer >= ${min}, got ${typeof v === 'string' ? JSON.stringify(v) : String(v)}`, { field });
  }
}

/**
 * Checks shapes and values of a packed batch; throws an InputError naming the first bad
 * record and field (a UsageError when `b` is not an object at all). O(total size); run once per
 * batch, not per backend call inside a loop.
 */
export function validateBatch(b: Batch): void {
  if (typeof b !== 'object' || b === null || Array.isArray(b)) {
    throw new UsageError(`a batch must be an object {n, t, m, steps, ...} of typed arrays, got ${describeValue(b)}`);
  }
  checkPositiveInt('n', b.n, 0);
  checkPositiveInt('t', b.t, 2);
  checkPositiveInt('m', b.m, 1);
  checkArray('steps', b.steps, FLOAT_ARRAYS, b.n * b.t * b.m, true);
  if ((b.embeddings === undefined) !== (b.d === undefined)) throw new InputError('embeddings and d must be given together', { field: 'embeddings' });
  if (b.embeddings !== undefined) { checkPositiveInt('d', b.d, 1); checkArray('embeddings', b.embeddings, FLOAT_ARRAYS, b.n * b.t * b.d!); }
  if (b.expected !== undefined && b.realized === undefined) throw new InputError('"expected" given without "realized"', { field: 'expected' });
  if (b.realized !== undefined && b.expected === undefined) throw new InputError('"realized" given without "expected"', { field: 'realized' });
  checkArray('expected', b.expected, FLOAT_ARRAYS, b.n * b.t);
  checkArray('realized', b.realized, FLOAT_ARRAYS, b.n * b.t);
  if ((b.policy === undefined) !== (b.a === undefined)) throw new InputError('policy and a must be given together', { field: 'policy' });
  if (b.policy !== undefined) { checkPositiveInt('a', b.a, 1); checkArray('policy', b.policy, FLOAT_ARRAYS, b.n * b.t * b.a!); }
  checkArray('groups', b.groups, GROUP_ARRAYS, b.n);
  checkArray('baseScore', b.baseScore, SCORE_ARRAYS, b.n);

  const perRecord = (field: string, arr: FloatArray | undefined, width: number, check: (x: number) => string | null) => {
    if (!arr) return;
    for (let i = 0; i < arr.length; i++) {
      const problem = check(arr[i]);
      if (problem) throw new InputError(`${problem} (value ${arr[i]} at offset ${i % width})`, { record: Math.floor(i / width), field });
    }
  };
  const finite = (x: number) => (Number.isFinite(x) ? null : 'not a finite number');
  perRecord('steps', b.steps, b.t * b.m, (x) => (!Number.isFinite(x) ? 'not a finite number' : x < 0 || x > 1 ? 'outside [0, 1]' : null));
  perRecord('embeddings', b.embeddings, b.t * (b.d ?? 1), finite);
  perRecord('expected', b.expected, b.t, finite);
  perRecord('realized', b.realized, b.t, finite);
  perRecord('policy', b.policy, b.t * (b.a ?? 1), (x) => (!Number.isFinite(x) ? 'not a finite number' : x < 0 ? 'negative' : null));
  if (b.baseScore) {
    for (let i = 0; i < b.n; i++) {
      // NaN is the documented "use CCI" marker; infinities are not a score.
      if (b.baseScore[i] === Infinity || b.baseScore[i] === -Infinity) throw new InputError('not a finite number', { record: i, field: 'baseScore' });
    }
  }
  if (b.groups) {
    for (let i = 0; i < b.n; i++) if (b.groups[i] < 0) throw new InputError(`negative group index ${b.groups[i]}`, { record: i, field: 'groups' });
  }
}

const METRIC_KEYS = ['evb', 'cr', 'ts', 'es', 'pd', 'cci'] as const;

/**
 * Checks a backend call's options against its batch: every backend's computeMetrics calls this
 * first, so a wrong-length `out` array is the same UsageError on every backend instead of being
 * written past, reallocated or ignored depending on which one runs.
 */
export function checkComputeOptions(options: ComputeOptions | undefined, n: number, m: number): void {
  if (options === undefined) return;
  if (typeof options !== 'object' || options === null) throw new UsageError(`compute options must be an object, got ${describeValue(options)}`);
  const out = options.out;
  if (out === undefined) return;
  if (typeof out !== 'object' || out === null) throw new UsageError(`ComputeOptions.out must be an object of Float64Arrays {evb, cr, ts, es, pd, cci}, got ${describeValue(out)}`);
  for (const key of METRIC_KEYS) {
    const a: unknown = out[key];
    if (!(a instanceof Float64Array) || a.length !== n) {
      throw new UsageError(`ComputeOptions.out.${key} must be a Float64Array of length n = ${n}, got ${a instanceof Float64Array ? `length ${a.length}` : describeValue(a)}`);
    }
  }
  if (options.covariance === true) {
    const c: unknown = out.covariance;
    if (!(c instanceof Float64Array) || c.length !== n * m * m) {
      throw new UsageError(`ComputeOptions.out.covariance must be a Float64Array of length n*m*m = ${n * m * m} when covariance is requested, got ${c instanceof Float64Array ? `length ${c.length}` : describeValue(c)}`);
    }
  }
}
