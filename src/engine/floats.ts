/**
 * Typed arrays that grow by doubling: one allocation per doubling, never per record. The record
 * packer (shape-buckets.ts), the JSONL chunk parser (jsonl-parse.ts) and the JSONL window
 * (packed-window.ts) fill their columns with them.
 */
import { sharedFloat64 } from '../backends/cpu/shared.js';

type Growable = Float64Array | Int32Array | Uint32Array;

/**
 * `a` when it holds `need` entries, else a copy of its first `keep` entries in an array of the
 * same type with room for `need` (at least double the old length).
 */
export function grown<T extends Growable>(a: T, keep: number, need: number): T {
  if (need <= a.length) return a;
  const next = new (a.constructor as new (n: number) => T)(Math.max(need, a.length * 2));
  next.set(a.subarray(0, keep));
  return next;
}

export class GrowableFloats {
  data: Float64Array;
  length = 0;
  /**
   * `shared`: the values live in shared memory, so that the cpu backend's workers read a batch
   * made of them in place (a window's columns are reused from window to window).
   */
  constructor(
    capacity: number,
    private readonly shared = false,
  ) {
    this.data = this.allocate(capacity);
  }

  private allocate(n: number): Float64Array {
    return this.shared ? sharedFloat64(n) : new Float64Array(n);
  }

  /** Room for `extra` more values. */
  ensure(extra: number): void {
    if (this.length + extra <= this.data.length) return;
    const next = this.allocate(Math.max(this.data.length * 2, this.length + extra));
    next.set(this.data.subarray(0, this.length));
    this.data = next;
  }

  /** Appends rows of equal width. */
  rows(rows: readonly (readonly number[])[]): void {
    const w = rows[0].length;
    this.ensure(rows.length * w);
    const d = this.data;
    let at = this.length;
    for (const row of rows) for (let j = 0; j < w; j++) d[at++] = row[j];
    this.length = at;
  }

  row(row: readonly number[]): void {
    this.ensure(row.length);
    this.data.set(row, this.length);
    this.length += row.length;
  }

  /** Appends src[from, to). */
  append(src: Float64Array, from: number, to: number): void {
    this.ensure(to - from);
    this.data.set(src.subarray(from, to), this.length);
    this.length += to - from;
  }

  /** The used part, in place. */
  view(): Float64Array {
    return this.data.subarray(0, this.length);
  }

  /** A copy of exactly the used part, so its buffer can be transferred without the slack. */
  done(): Float64Array {
    return this.data.slice(0, this.length);
  }
}
