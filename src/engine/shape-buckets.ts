/**
 * A window of records goes to a backend as one Batch per shape: records that differ in T, m,
 * the embedding or policy width, or in having rewards, cannot share one. Every scoring path
 * buckets its window's rows here by one shape key, in order of first appearance (the order in
 * which the window scorer checks each shape against the configuration), and keeps for each
 * bucket the window row of each of its rows, so that results go back into window order.
 */
import type { Batch, MetricArrays } from '../core/batch.js';
import { allocateSharedMetrics } from '../backends/cpu/shared.js';
import type { CheckedRecord } from './record.js';
import { GrowableFloats, grown } from './floats.js';

/** Rows with equal keys can share a Batch (d, a: 0 when absent; rewards: 1 when given). */
export function shapeKey(t: number, m: number, d: number, a: number, rewards: number): string {
  return `${t}:${m}:${d}:${a}:${rewards}`;
}

export function recordShapeKey(r: CheckedRecord): string {
  return shapeKey(r.t, r.m, r.d ?? 0, r.a ?? 0, r.expected ? 1 : 0);
}

/** The window rows of one shape, in window order. */
export class ShapeRows {
  size = 0;
  /** Window row of each of the bucket's rows. */
  positions: Int32Array;
  constructor(capacity = 64) {
    this.positions = new Int32Array(Math.max(1, capacity));
  }

  /** Room for `n` more rows. */
  reserve(n: number): void {
    this.positions = grown(this.positions, this.size, this.size + n);
  }

  push(position: number): void {
    if (this.size === this.positions.length) this.reserve(1);
    this.positions[this.size++] = position;
  }

  rows(): Int32Array {
    return this.positions.subarray(0, this.size);
  }

  reset(): void {
    this.size = 0;
  }
}

/** A window's buckets by shape key. Buckets outlive a reset, so a stream reuses their memory. */
export class ShapeBuckets<B extends ShapeRows> {
  private readonly byKey = new Map<string, B>();
  /** Buckets with rows since the last reset, in order of their first row. */
  used: B[] = [];

  /** The bucket of `key` (made by `make` the first time); the caller adds a row to it at once. */
  get(key: string, make: () => B): B {
    let b = this.byKey.get(key);
    if (b === undefined) {
      b = make();
      this.byKey.set(key, b);
    }
    if (b.size === 0) this.used.push(b);
    return b;
  }

  reset(): void {
    for (const b of this.used) b.reset();
    this.used = [];
  }
}

/** The rows of one shape packed into columns, as the Batch a backend takes. */
export class ShapeBucket extends ShapeRows {
  readonly steps: GrowableFloats;
  readonly embeddings: GrowableFloats;
  readonly expected: GrowableFloats;
  readonly realized: GrowableFloats;
  readonly policy: GrowableFloats;
  private out: MetricArrays | null = null;

  /**
   * `capacity`: rows to make room for at once. `shared`: columns in shared memory, read in place
   * by the cpu backend's workers.
   */
  constructor(
    readonly t: number,
    readonly m: number,
    readonly d: number,
    readonly a: number,
    readonly rewards: boolean,
    capacity = 0,
    shared = false,
  ) {
    super(capacity);
    this.steps = new GrowableFloats(capacity * t * m, shared);
    this.embeddings = new GrowableFloats(capacity * t * d, shared);
    this.expected = new GrowableFloats(rewards ? capacity * t : 0, shared);
    this.realized = new GrowableFloats(rewards ? capacity * t : 0, shared);
    this.policy = new GrowableFloats(capacity * t * a, shared);
  }

  static of(r: CheckedRecord, capacity: number): ShapeBucket {
    return new ShapeBucket(r.t, r.m, r.d ?? 0, r.a ?? 0, r.expected !== undefined, capacity);
  }

  /** Appends a record of this shape, which sits at `position` in the window. */
  addRecord(r: CheckedRecord, position: number): void {
    this.push(position);
    this.steps.rows(r.steps);
    if (this.d) this.embeddings.rows(r.embeddings!);
    if (this.rewards) {
      this.expected.row(r.expected!);
      this.realized.row(r.realized!);
    }
    if (this.a) this.policy.rows(r.policy!);
  }

  toBatch(): Batch {
    return {
      n: this.size,
      t: this.t,
      m: this.m,
      steps: this.steps.view(),
      ...(this.d ? { d: this.d, embeddings: this.embeddings.view() } : {}),
      ...(this.rewards ? { expected: this.expected.view(), realized: this.realized.view() } : {}),
      ...(this.a ? { a: this.a, policy: this.policy.view() } : {}),
    };
  }

  /** Output arrays of the bucket's size in shared memory, kept between windows (fresh pages cost more than the kernel). */
  outputs(): MetricArrays {
    const n = this.size;
    if (this.out === null || this.out.evb.length < n) this.out = allocateSharedMetrics(Math.max(n, (this.out?.evb.length ?? 0) * 2));
    const o = this.out;
    return {
      evb: o.evb.subarray(0, n),
      cr: o.cr.subarray(0, n),
      ts: o.ts.subarray(0, n),
      es: o.es.subarray(0, n),
      pd: o.pd.subarray(0, n),
      cci: o.cci.subarray(0, n),
    };
  }

  override reset(): void {
    super.reset();
    this.steps.length = 0;
    this.embeddings.length = 0;
    this.expected.length = 0;
    this.realized.length = 0;
    this.policy.length = 0;
  }
}
