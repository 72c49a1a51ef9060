/**
 * Packs validated records of one shape into a Batch. Records of different shapes in one input go
 * to different packers; the caller keeps each record's input index so output order survives.
 */
import type { Batch } from '../batch.js';
import type { CheckedRecord } from './record.js';

/** Records with equal keys can share a batch. */
export function shapeKey(r: CheckedRecord): string {
  return `${r.t}:${r.m}:${r.d ?? 0}:${r.a ?? 0}:${r.expected ? 1 : 0}`;
}

/** A growable Float64Array: one allocation per doubling, never per record. */
class Floats {
  data: Float64Array;
  length = 0;
  constructor(capacity: number) { this.data = new Float64Array(Math.max(16, capacity)); }
  reserve(extra: number): void {
    if (this.length + extra <= this.data.length) return;
    const next = new Float64Array(Math.max(this.data.length * 2, this.length + extra));
    next.set(this.data.subarray(0, this.length));
    this.data = next;
  }
  pushRows(rows: readonly (readonly number[])[]): void {
    const w = rows[0].length;
    this.reserve(rows.length * w);
    for (const row of rows) { this.data.set(row, this.length); this.length += w; }
  }
  pushRow(row: readonly number[]): void {
    this.reserve(row.length);
    this.data.set(row, this.length);
    this.length += row.length;
  }
  view(): Float64Array { return this.data.subarray(0, this.length); }
}

export class ShapeBucket {
  readonly t: number;
  readonly m: number;
  readonly d?: number;
  readonly a?: number;
  readonly hasRewards: boolean;
  /** Input index of each packed record. */
  readonly indices: number[] = [];
  private steps: Floats;
  private embeddings?: Floats;
  private expected?: Floats;
  private realized?: Floats;
  private policy?: Floats;
  private groups: number[] = [];
  private baseScores: number[] = [];

  constructor(first: CheckedRecord, expectedCount = 64) {
    this.t = first.t; this.m = first.m; this.d = first.d; this.a = first.a; this.hasRewards = first.expected !== undefined;
    this.steps = new Floats(expectedCount * first.t * first.m);
    if (this.d !== undefined) this.embeddings = new Floats(expectedCount * first.t * this.d);
    if (this.hasRewards) { this.expected = new Floats(expectedCount * first.t); this.realized = new Floats(expectedCount * first.t); }
    if (this.a !== undefined) this.policy = new Floats(expectedCount * first.t * this.a);
  }

  get size(): number { return this.indices.length; }

  add(r: CheckedRecord, inputIndex: number, groupIndex: number): void {
    this.indices.push(inputIndex);
    this.groups.push(groupIndex);
    this.baseScores.push(r.baseScore ?? Number.NaN);
    this.steps.pushRows(r.steps);
    if (this.embeddings) this.embeddings.pushRows(r.embeddings!);
    if (this.expected) { this.expected.pushRow(r.expected!); this.realized!.pushRow(r.realized!); }
    if (this.policy) this.policy.pushRows(r.policy!);
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
