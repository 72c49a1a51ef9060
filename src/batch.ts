/**
 * The packed batch of ECR-SPEC section 2: N trajectories of equal shape in flat, row-major typed
 * arrays, plus its validation. Every backend consumes this one type.
 */
import { InputError } from './errors.js';
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
    evb: new Float64Array(n), cr: new Float64Array(n), ts: new Float64Array(n),
    es: new Float64Array(n), pd: new Float64Array(n), cci: new Float64Array(n),
  };
}

function checkLength(field: string, arr: FloatArray | Int32Array | Uint32Array | undefined, expected: number): void {
  if (arr && arr.length !== expected) throw new InputError(`length ${arr.length}, expected ${expected}`, { field });
}

function checkPositiveInt(field: string, v: number | undefined, min: number): void {
  if (v === undefined || !Number.isInteger(v) || v < min) throw new InputError(`must be an integer >= ${min}, got ${v}`, { field });
}

/**
 * Checks shapes and values of a packed batch; throws an InputError naming the first bad
 * record and field. O(total size); run once per batch, not per backend call inside a loop.
 */
export function validateBatch(b: Batch): void {
  checkPositiveInt('n', b.n, 0);
  checkPositiveInt('t', b.t, 2);
  checkPositiveInt('m', b.m, 1);
  checkLength('steps', b.steps, b.n * b.t * b.m);
  if ((b.embeddings === undefined) !== (b.d === undefined)) throw new InputError('embeddings and d must be given together', { field: 'embeddings' });
  if (b.embeddings) { checkPositiveInt('d', b.d, 1); checkLength('embeddings', b.embeddings, b.n * b.t * b.d!); }
  if (b.expected && !b.realized) throw new InputError('"expected" given without "realized"', { field: 'expected' });
  if (b.realized && !b.expected) throw new InputError('"realized" given without "expected"', { field: 'realized' });
  checkLength('expected', b.expected, b.n * b.t);
  checkLength('realized', b.realized, b.n * b.t);
  if ((b.policy === undefined) !== (b.a === undefined)) throw new InputError('policy and a must be given together', { field: 'policy' });
  if (b.policy) { checkPositiveInt('a', b.a, 1); checkLength('policy', b.policy, b.n * b.t * b.a!); }
  checkLength('groups', b.groups, b.n);
  checkLength('baseScore', b.baseScore, b.n);

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
