/**
 * Deterministic synthetic batches for benchmarks and large-batch tests. A seed fixes every value.
 * Trajectories come in groups of `groupSize` candidates; about half are stable (small noise
 * around a base vector) and half drift (a per-component trend plus larger noise), so every metric
 * sees both calm and changing inputs. All values are valid per ECR-SPEC section 2: E in [0, 1],
 * policy entries non-negative, everything finite.
 */
import type { Batch, FloatArray } from '../core/batch.js';
import { allocateSharedBatch, sharedFloatArray, type FloatDType, type SharedBatchShape } from '../backends/cpu/shared.js';

/** Shape as for allocateSharedBatch (groups are always generated here). */
export interface SyntheticOptions extends Omit<SharedBatchShape, 'groups'> {
  /** Candidates per group (default 8). */
  groupSize?: number;
  seed?: number;
  /** Element type of the float arrays (default float64). */
  dtype?: FloatDType;
  /** Allocate every array in SharedArrayBuffer memory (lets the cpu backend's workers read it in place). */
  shared?: boolean;
}

/** mulberry32: a small, fast, well-mixed 32-bit generator; plenty for benchmark data. */
function mulberry32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let r = Math.imul(s ^ (s >>> 15), 1 | s);
    r = (r + Math.imul(r ^ (r >>> 7), 61 | r)) ^ r;
    return ((r ^ (r >>> 14)) >>> 0) / 4294967296;
  };
}

function clamp01(x: number): number {
  return x < 0 ? 0 : x > 1 ? 1 : x;
}

function floatArray(dtype: FloatDType, length: number): FloatArray {
  return dtype === 'float32' ? new Float32Array(length) : new Float64Array(length);
}

export function syntheticBatch(opts: SyntheticOptions): Batch {
  const { n, t, m, d, a } = opts;
  const dtype = opts.dtype ?? 'float64';
  const groupSize = Math.max(1, opts.groupSize ?? 8);
  const rand = mulberry32(opts.seed ?? 12345);
  const alloc = opts.shared ? sharedFloatArray : floatArray;
  const b = opts.shared
    ? allocateSharedBatch({ n, t, m, d, a, rewards: opts.rewards, groups: true, dtype })
    : {
        n,
        t,
        m,
        steps: alloc(dtype, n * t * m),
        ...(d !== undefined ? { d, embeddings: alloc(dtype, n * t * d) } : {}),
        ...(opts.rewards ? { expected: alloc(dtype, n * t), realized: alloc(dtype, n * t) } : {}),
        ...(a !== undefined ? { a, policy: alloc(dtype, n * t * a) } : {}),
        groups: new Int32Array(n),
      };
  const { steps, embeddings, expected, realized, policy } = b;
  const groups = b.groups!;
  const trend = new Float64Array(Math.max(m, a ?? 0, d ?? 0));
  const baseVec = new Float64Array(Math.max(m, a ?? 0, d ?? 0));

  for (let i = 0; i < n; i++) {
    groups[i] = Math.floor(i / groupSize);
    const drifting = rand() < 0.5;
    const noise = drifting ? 0.08 : 0.01;
    const drift = drifting ? 0.15 : 0;

    for (let j = 0; j < m; j++) {
      baseVec[j] = 0.15 + 0.7 * rand();
      trend[j] = (rand() - 0.5) * drift;
    }
    for (let k = 0; k < t; k++) {
      const row = (i * t + k) * m;
      for (let j = 0; j < m; j++) steps[row + j] = clamp01(baseVec[j] + k * trend[j] + (rand() - 0.5) * noise);
    }

    if (embeddings && d !== undefined) {
      for (let q = 0; q < d; q++) {
        baseVec[q] = rand() - 0.5;
        trend[q] = (rand() - 0.5) * drift;
      }
      for (let k = 0; k < t; k++) {
        const row = (i * t + k) * d;
        for (let q = 0; q < d; q++) embeddings[row + q] = baseVec[q] + k * trend[q] + (rand() - 0.5) * noise;
      }
    }

    if (expected && realized) {
      const level = rand();
      for (let k = 0; k < t; k++) {
        expected[i * t + k] = level;
        realized[i * t + k] = level + (rand() - 0.5) * (drifting ? 0.6 : 0.05);
      }
    }

    if (policy && a !== undefined) {
      for (let j = 0; j < a; j++) {
        baseVec[j] = 0.05 + rand();
        trend[j] = (rand() - 0.5) * drift * 2;
      }
      for (let k = 0; k < t; k++) {
        const row = (i * t + k) * a;
        for (let j = 0; j < a; j++) policy[row + j] = Math.max(0, baseVec[j] + k * trend[j] + (rand() - 0.5) * noise);
      }
    }
  }
  return b;
}
