/**
 * Arrow list columns built from DuckDB's list vectors (duckdb-lists.ts): offsets from DuckDB's
 * entries, values copied once into shared memory with their bounds, the nulls of every level.
 */
import { Float32, Float64, makeData, type Data, type List } from 'apache-arrow';
import { rememberLeafBounds } from './value-bounds.js';

/** The parts of a DuckDB list, array or float vector read here (node-api keeps them private). */
export interface RawVector {
  /** LIST: [offset, length] per row, as pairs of uint64. */
  entryData?: BigUint64Array;
  /** LIST and ARRAY: the element vector. */
  childData?: RawVector;
  /** ARRAY: elements per row. */
  arrayType?: { length: number };
  /** DOUBLE, FLOAT: the values. */
  items?: Float64Array | Float32Array;
  validity: { data: BigUint64Array | null; offset: number };
}

/** Rows [0, n) of a list-like DuckDB vector: where each row's elements start and how many there are. */
interface Spans {
  start(i: number): number;
  length(i: number): number;
  valid(i: number): boolean;
}

/** Row i's validity bit (DuckDB's uint64 words, little-endian: the bit order of Arrow's bitmaps). */
function validOf(v: RawVector): (i: number) => boolean {
  const bits = v.validity.data ? new Uint8Array(v.validity.data.buffer, v.validity.data.byteOffset, v.validity.data.byteLength) : null;
  const off = v.validity.offset;
  return bits ? (i: number) => ((bits[(off + i) >> 3] >> ((off + i) & 7)) & 1) === 1 : () => true;
}

function spansOf(v: RawVector): Spans {
  const valid = validOf(v);
  if (v.entryData) {
    // uint64 pairs read as their low 32-bit words: offsets inside one chunk's child vector are small.
    const words = new Uint32Array(v.entryData.buffer, v.entryData.byteOffset, v.entryData.length * 2);
    return { start: (i) => words[4 * i], length: (i) => words[4 * i + 2], valid };
  }
  const size = v.arrayType!.length;
  return { start: (i) => i * size, length: () => size, valid };
}

/** Growable typed arrays for one output column. */
export class ListBuilder {
  private outer: Int32Array;
  private inner: Int32Array;
  private values: Float64Array | Float32Array;
  private outerValid: Uint8Array | null = null;
  private innerValid: Uint8Array | null = null;
  private valueValid: Uint8Array | null = null;
  private rows = 0;
  private entries = 0;
  private count = 0;
  private min = Infinity;
  private max = -Infinity;
  private nan = false;

  constructor(
    private readonly depth: 1 | 2,
    private readonly float32: boolean,
    capacityRows: number,
    /** A buffer to fill (from the ring of an earlier batch), or null to allocate one. */
    values: Float64Array | Float32Array | null,
  ) {
    this.outer = new Int32Array(capacityRows + 1);
    this.inner = new Int32Array(depth === 2 ? capacityRows * 8 + 1 : 1);
    // Grown by doubling past these first guesses (T = 8 steps of 8 values).
    this.values = values ?? ListBuilder.sharedValues(float32, capacityRows * 64);
  }

  private static grow<T extends Int32Array | Float64Array | Float32Array>(a: T, need: number): T {
    if (need <= a.length) return a;
    const b = new (a.constructor as new (n: number) => T)(Math.max(need, a.length * 2));
    b.set(a);
    return b;
  }

  /** Values live in shared memory: the cpu backend's workers then read a block in place, with no copy. */
  private static sharedValues(float32: boolean, length: number): Float64Array | Float32Array {
    const bytes = length * (float32 ? 4 : 8);
    return float32 ? new Float32Array(new SharedArrayBuffer(bytes)) : new Float64Array(new SharedArrayBuffer(bytes));
  }

  private growValues(need: number): void {
    if (need <= this.values.length) return;
    const b = ListBuilder.sharedValues(this.float32, Math.max(need, this.values.length * 2));
    b.set(this.values.subarray(0, this.count));
    this.values = b;
  }

  /** `bits` with bit i cleared, first grown (new bits set) when it is too short or absent. */
  private static clearBit(bits: Uint8Array | null, i: number): Uint8Array {
    const b = ListBuilder.withBits(bits, Math.max(64, (i + 1) * 2));
    b[i >> 3] &= ~(1 << (i & 7));
    return b;
  }

  /** A validity bitmap of at least `bitCount` bits: `old`'s, then every further bit set. */
  private static withBits(old: Uint8Array | null, bitCount: number): Uint8Array {
    const bytes = (bitCount + 7) >> 3;
    if (old && old.length >= bytes) return old;
    const b = new Uint8Array(bytes).fill(0xff);
    if (old) b.set(old);
    return b;
  }

  /** Appends rows [from, to) of one chunk's vector. */
  append(v: RawVector, from: number, to: number): void {
    const child = v.childData!;
    const leaf = this.depth === 2 ? child.childData! : child;
    if (v.validity.data || (this.depth === 2 && child.validity.data) || leaf.validity.data) {
      this.appendWithNulls(v, from, to);
      return;
    }
    // No nulls at any level (the usual file): offsets from the entries, values copied in one go
    // when the rows' values lie back to back in the chunk (as DuckDB's Parquet scan leaves them).
    const outerWords = v.entryData ? new Uint32Array(v.entryData.buffer, v.entryData.byteOffset, v.entryData.length * 2) : null;
    const outerSize = outerWords ? 0 : v.arrayType!.length;
    const innerWords =
      this.depth === 2 && child.entryData ? new Uint32Array(child.entryData.buffer, child.entryData.byteOffset, child.entryData.length * 2) : null;
    const innerSize = this.depth === 2 && !innerWords ? child.arrayType!.length : 0;
    const n = to - from;
    this.outer = ListBuilder.grow(this.outer, this.rows + n + 1);
    const outerStart = (i: number) => (outerWords ? outerWords[4 * i] : i * outerSize);
    const outerEnd = (i: number) => (outerWords ? outerWords[4 * i] + outerWords[4 * i + 2] : (i + 1) * outerSize);
    if (this.depth === 1) {
      const a = outerStart(from);
      let contiguous = true;
      for (let i = from, at = a; i < to; i++) {
        if (outerStart(i) !== at) contiguous = false;
        at = outerEnd(i);
        this.outer[++this.rows] = this.count + at - a;
      }
      if (contiguous) this.copyRange(leaf.items!, a, outerEnd(to - 1));
      else {
        this.rows -= n;
        this.appendWithNulls(v, from, to);
      }
      return;
    }
    const e0 = outerStart(from),
      e1 = outerEnd(to - 1);
    this.inner = ListBuilder.grow(this.inner, this.entries + (e1 - e0) + 1);
    let contiguous = true;
    for (let i = from, at = e0; i < to; i++) {
      if (outerStart(i) !== at) contiguous = false;
      at = outerEnd(i);
      this.outer[++this.rows] = this.entries + at - e0;
    }
    const valueStart = innerWords ? innerWords[4 * e0] : e0 * innerSize;
    for (let e = e0, at = valueStart; e < e1; e++) {
      const s = innerWords ? innerWords[4 * e] : e * innerSize;
      const len = innerWords ? innerWords[4 * e + 2] : innerSize;
      if (s !== at) contiguous = false;
      at = s + len;
      this.inner[++this.entries] = this.count + at - valueStart;
    }
    if (contiguous && e1 > e0) {
      const last = e1 - 1;
      this.copyRange(leaf.items!, valueStart, innerWords ? innerWords[4 * last] + innerWords[4 * last + 2] : e1 * innerSize);
    } else if (!contiguous) {
      this.rows -= n;
      this.entries -= e1 - e0;
      this.appendWithNulls(v, from, to);
    }
  }

  /** Values [a, b) of a chunk appended, with their bounds found while they are in cache. */
  private copyRange(items: Float64Array | Float32Array, a: number, b: number): void {
    this.growValues(this.count + (b - a));
    const out = this.values;
    out.set(items.subarray(a, b), this.count);
    let min = this.min,
      max = this.max,
      nan = false;
    for (let k = this.count, end = this.count + (b - a); k < end; k++) {
      const x = out[k];
      if (x < min) min = x;
      if (x > max) max = x;
      if (x !== x) nan = true;
    }
    this.count += b - a;
    this.min = min;
    this.max = max;
    if (nan) this.nan = true;
  }

  /** The general case: nulls at any level, or rows whose values are not back to back. */
  private appendWithNulls(v: RawVector, from: number, to: number): void {
    const outer = spansOf(v);
    const child = v.childData!;
    const innerSpans = this.depth === 2 ? spansOf(child) : null;
    const leaf = this.depth === 2 ? child.childData! : child;
    const items = leaf.items!;
    const leafValid = leaf.validity.data ? validOf(leaf) : null;
    this.outer = ListBuilder.grow(this.outer, this.rows + (to - from) + 1);
    for (let i = from; i < to; i++) {
      const row = this.rows++;
      if (!outer.valid(i)) {
        this.outerValid = ListBuilder.clearBit(this.outerValid, row);
        this.outer[row + 1] = this.depth === 2 ? this.entries : this.count;
        continue;
      }
      const s = outer.start(i),
        n = outer.length(i);
      if (innerSpans) {
        this.inner = ListBuilder.grow(this.inner, this.entries + n + 1);
        for (let e = s; e < s + n; e++) {
          const entry = this.entries++;
          if (innerSpans.valid(e)) this.copyValues(items, leafValid, innerSpans.start(e), innerSpans.length(e));
          else this.innerValid = ListBuilder.clearBit(this.innerValid, entry);
          this.inner[entry + 1] = this.count;
        }
        this.outer[row + 1] = this.entries;
      } else {
        this.copyValues(items, leafValid, s, n);
        this.outer[row + 1] = this.count;
      }
    }
  }

  private copyValues(items: Float64Array | Float32Array, leafValid: ((i: number) => boolean) | null, s: number, n: number): void {
    const first = this.count;
    this.copyRange(items, s, s + n);
    if (leafValid) for (let j = s; j < s + n; j++) if (!leafValid(j)) this.valueValid = ListBuilder.clearBit(this.valueValid, first + j - s);
  }

  /** The values buffer, to be filled again by a later batch. */
  get buffer(): Float64Array | Float32Array {
    return this.values;
  }

  /** The rows appended so far as Arrow Data of `type`. */
  finish(type: List): Data {
    const valueType = this.float32 ? new Float32() : new Float64();
    const nulls = (bits: Uint8Array | null, n: number) => {
      if (!bits) return 0;
      let c = 0;
      for (let i = 0; i < Math.min(n, bits.length * 8); i++) if (((bits[i >> 3] >> (i & 7)) & 1) === 0) c++;
      return c;
    };
    const leafNulls = nulls(this.valueValid, this.count);
    const leaf = makeData({
      type: valueType,
      length: this.count,
      data: this.values.subarray(0, this.count),
      nullCount: leafNulls,
      nullBitmap: leafNulls ? ListBuilder.withBits(this.valueValid, this.count) : null,
    } as never) as Data;
    if (leafNulls === 0 && !this.nan && this.count > 0) rememberLeafBounds(leaf, { min: this.min, max: this.max });
    let child = leaf;
    if (this.depth === 2) {
      const innerNulls = nulls(this.innerValid, this.entries);
      child = makeData({
        type: type.children[0].type as List,
        length: this.entries,
        valueOffsets: this.inner.subarray(0, this.entries + 1),
        child: leaf,
        nullCount: innerNulls,
        nullBitmap: innerNulls ? ListBuilder.withBits(this.innerValid, this.entries) : null,
      } as never) as Data;
    }
    const outerNulls = nulls(this.outerValid, this.rows);
    return makeData({
      type,
      length: this.rows,
      valueOffsets: this.outer.subarray(0, this.rows + 1),
      child,
      nullCount: outerNulls,
      nullBitmap: outerNulls ? ListBuilder.withBits(this.outerValid, this.rows) : null,
    } as never) as Data;
  }
}
