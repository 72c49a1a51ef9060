/**
 * SharedArrayBuffer-backed batches. The `cpu` backend's worker threads read a batch in place only
 * when its arrays live in shared memory; callers who want every core on large batches allocate
 * (or fill) their batch here. Arrays in ordinary memory still work: the backend copies the
 * workers' share when that pays (see CpuBackend).
 */
import type { Batch, FloatArray, MetricArrays } from '../../core/batch.js';

export type FloatDType = 'float32' | 'float64';

export interface SharedBatchShape {
  n: number;
  t: number;
  m: number;
  /** Embedding width; allocates `embeddings` when given. */
  d?: number;
  /** Policy width; allocates `policy` when given. */
  a?: number;
  /** Allocate `expected` and `realized`. */
  rewards?: boolean;
  /** Allocate `groups` ([n], Int32Array). */
  groups?: boolean;
  /** Element type of the float inputs (default float64). */
  dtype?: FloatDType;
}

/** A batch whose arrays are writable, so the caller can fill them. */
export interface WritableBatch extends Batch {
  readonly steps: FloatArray;
  readonly embeddings?: FloatArray;
  readonly expected?: FloatArray;
  readonly realized?: FloatArray;
  readonly policy?: FloatArray;
  readonly groups?: Int32Array;
}

export function isSharedArray(a: ArrayBufferView): boolean {
  return typeof SharedArrayBuffer !== 'undefined' && a.buffer instanceof SharedArrayBuffer;
}

/** A zero-filled float array of `length` elements in shared memory. */
export function sharedFloatArray(dtype: FloatDType, length: number): FloatArray {
  if (dtype === 'float32') return new Float32Array(new SharedArrayBuffer(length * 4));
  return new Float64Array(new SharedArrayBuffer(length * 8));
}

export function sharedFloat64(length: number): Float64Array {
  return new Float64Array(new SharedArrayBuffer(length * 8));
}

/** Allocates a zero-filled batch of the given shape with every array in shared memory. */
export function allocateSharedBatch(shape: SharedBatchShape): WritableBatch {
  const { n, t, m, d, a } = shape;
  const dtype = shape.dtype ?? 'float64';
  return {
    n,
    t,
    m,
    steps: sharedFloatArray(dtype, n * t * m),
    ...(d !== undefined ? { d, embeddings: sharedFloatArray(dtype, n * t * d) } : {}),
    ...(shape.rewards ? { expected: sharedFloatArray(dtype, n * t), realized: sharedFloatArray(dtype, n * t) } : {}),
    ...(a !== undefined ? { a, policy: sharedFloatArray(dtype, n * t * a) } : {}),
    ...(shape.groups ? { groups: new Int32Array(new SharedArrayBuffer(n * 4)) } : {}),
  };
}

/** Metric output arrays in shared memory, for ComputeOptions.out: the cpu workers write into them in place. */
export function allocateSharedMetrics(n: number, covarianceM?: number): MetricArrays {
  const out: MetricArrays = {
    evb: sharedFloat64(n),
    cr: sharedFloat64(n),
    ts: sharedFloat64(n),
    es: sharedFloat64(n),
    pd: sharedFloat64(n),
    cci: sharedFloat64(n),
  };
  if (covarianceM !== undefined) out.covariance = sharedFloat64(n * covarianceM * covarianceM);
  return out;
}
