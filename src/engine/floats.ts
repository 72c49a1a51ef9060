/**
 * A Float64Array that grows by doubling: one allocation per doubling, never per record. The
 * record packer (packer.ts) and the JSONL chunk parser (jsonl-parse.ts) fill their columns with it.
 */
export class GrowableFloats {
  data: Float64Array;
  length = 0;
  constructor(capacity: number) { this.data = new Float64Array(capacity); }

  /** Room for `extra` more values. */
  ensure(extra: number): void {
    if (this.length + extra <= this.data.length) return;
    const next = new Float64Array(Math.max(this.data.length * 2, this.length + extra));
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

  /** The used part, in place. */
  view(): Float64Array { return this.data.subarray(0, this.length); }

  /** A copy of exactly the used part, so its buffer can be transferred without the slack. */
  done(): Float64Array { return this.data.slice(0, this.length); }
}
