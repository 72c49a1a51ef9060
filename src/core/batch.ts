/**
 * The packed batch of ECR-SPEC section 2: N trajectories of equal shape in flat, row-major typed
 * arrays, plus its validation. Every backend consumes this one type.
 */
import { InputError, UsageError } from './errors.js';
import { embeddingValue, formatNumber, policyValue, rewardValue, stepValue, type ValueCheck } from './input-ranges.js';

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
    evb: new Float64Array(n),
    cr: new Float64Array(n),
    ts: new Float64Array(n),
    es: new Float64Array(n),
    pd: new Float64Array(n),
    cci: new Float64Array(n),
  };
}

type AnyArray = FloatArray | Int32Array | Uint32Array;
const FLOAT_ARRAYS = [Float32Array, Float64Array] as const;
const GROUP_ARRAYS = [Int32Array, Uint32Array] as const;
const SCORE_ARRAYS = [Float64Array] as const;

/** How a value that is not the expected typed array reads in a message: "an Array", "null", "a string". */
export function describeValue(v: unknown): string {
  if (v === null || v === undefined) return String(v);
  return withArticle(Array.isArray(v) ? 'Array' : typeof v === 'object' ? (v.constructor?.name ?? 'object') : typeof v);
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
  if (b.embeddings !== undefined) {
    checkPositiveInt('d', b.d, 1);
    checkArray('embeddings', b.embeddings, FLOAT_ARRAYS, b.n * b.t * b.d!);
  }
  if (b.expected !== undefined && b.realized === undefined) throw new InputError('"expected" given without "realized"', { field: 'expected' });
  if (b.realized !== undefined && b.expected === undefined) throw new InputError('"realized" given without "expected"', { field: 'realized' });
  checkArray('expected', b.expected, FLOAT_ARRAYS, b.n * b.t);
  checkArray('realized', b.realized, FLOAT_ARRAYS, b.n * b.t);
  if ((b.policy === undefined) !== (b.a === undefined)) throw new InputError('policy and a must be given together', { field: 'policy' });
  if (b.policy !== undefined) {
    checkPositiveInt('a', b.a, 1);
    checkArray('policy', b.policy, FLOAT_ARRAYS, b.n * b.t * b.a!);
  }
  checkArray('groups', b.groups, GROUP_ARRAYS, b.n);
  checkArray('baseScore', b.baseScore, SCORE_ARRAYS, b.n);

  // The same checks as for JSONL records (input-ranges.ts): a packed batch reaches the float32
  // GPU path just the same, so it gets the same bounds.
  const perRecord = (field: string, arr: FloatArray | undefined, width: number, check: ValueCheck) => {
    if (!arr) return;
    for (let i = 0; i < arr.length; i++) {
      const x = arr[i];
      const problem = Number.isFinite(x) ? check(x) : 'not a finite number';
      if (problem) throw new InputError(`${problem} (value ${formatNumber(x)} at offset ${i % width})`, { record: Math.floor(i / width), field });
    }
  };
  perRecord('steps', b.steps, b.t * b.m, stepValue);
  perRecord('embeddings', b.embeddings, b.t * (b.d ?? 1), embeddingValue);
  perRecord('expected', b.expected, b.t, rewardValue);
  perRecord('realized', b.realized, b.t, rewardValue);
  perRecord('policy', b.policy, b.t * (b.a ?? 1), policyValue);
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

/** The five metrics and CCI of one trajectory, named as in the JSONL output. */
export interface MetricValues {
  EVB: number;
  CR: number;
  TS: number;
  ES: number;
  PD: number;
  CCI: number;
}

export function metricValuesAt(m: MetricArrays, i: number): MetricValues {
  return { EVB: m.evb[i], CR: m.cr[i], TS: m.ts[i], ES: m.es[i], PD: m.pd[i], CCI: m.cci[i] };
}
