/**
 * Packs validated records of one shape into a Batch. Records of different shapes in one input go
 * to different packers; the caller keeps each record's input index so output order survives.
 */
import type { Batch } from '../core/batch.js';
import type { CheckedRecord } from './record.js';
import { GrowableFloats } from './floats.js';

/** Records with equal keys can share a batch. */
export function shapeKey(r: CheckedRecord): string {
  return `${r.t}:${r.m}:${r.d ?? 0}:${r.a ?? 0}:${r.expected ? 1 : 0}`;
}

export class ShapeBucket {
  readonly t: number;
  readonly m: number;
  readonly d?: number;
  readonly a?: number;
  readonly hasRewards: boolean;
  /** Input index of each packed record. */
  readonly indices: number[] = [];
  private steps: GrowableFloats;
  private embeddings?: GrowableFloats;
  private expected?: GrowableFloats;
  private realized?: GrowableFloats;
  private policy?: GrowableFloats;
  private groups: number[] = [];
  private baseScores: number[] = [];

  constructor(first: CheckedRecord, expectedCount = 64) {
    this.t = first.t; this.m = first.m; this.d = first.d; this.a = first.a; this.hasRewards = first.expected !== undefined;
    this.steps = new GrowableFloats(expectedCount * first.t * first.m);
    if (this.d !== undefined) this.embeddings = new GrowableFloats(expectedCount * first.t * this.d);
    if (this.hasRewards) { this.expected = new GrowableFloats(expectedCount * first.t); this.realized = new GrowableFloats(expectedCount * first.t); }
    if (this.a !== undefined) this.policy = new GrowableFloats(expectedCount * first.t * this.a);
  }

  get size(): number { return this.indices.length; }

  add(r: CheckedRecord, inputIndex: number, groupIndex: number): void {
    this.indices.push(inputIndex);
    this.groups.push(groupIndex);
    this.baseScores.push(r.baseScore ?? Number.NaN);
    this.steps.rows(r.steps);
    if (this.embeddings) this.embeddings.rows(r.embeddings!);
    if (this.expected) { this.expected.row(r.expected!); this.realized!.row(r.realized!); }
    if (this.policy) this.policy.rows(r.policy!);
  }

  toBatch(): Batch {
    return {
      n: this.size, t: this.t, m: this.m,
      steps: this.steps.view(),
      ...(this.embeddings ? { d: this.d, embeddings: this.embeddings.view() } : {}),
      ...(this.expected ? { expected: this.expected.view(), realized: this.realized!.view() } : {}),
      ...(this.policy ? { a: this.a, policy: this.policy.view() } : {}),
      groups: Int32Array.from(this.groups),
      baseScore: Float64Array.from(this.baseScores),
    };
  }
}
