/**
 * Interning of group keys (string, number or none) to dense indices 0, 1, 2, ... in order of
 * first appearance; "1" and 1 stay distinct. Streams may hold millions of distinct groups, so the
 * keys live off the JavaScript heap: each key's UTF-8 bytes (after a one-byte type tag) are
 * appended to one byte arena, and an open-addressing hash table of key numbers finds them again.
 * About 20 bytes a group for short keys (bytes + 4 offset + 8 to 16 table), where a Map holds a
 * heap string and an entry per key (about 55 bytes) and makes every major GC walk them.
 */

export const TAG_STRING = 0x73; // 's'
export const TAG_NUMBER = 0x6e; // 'n'
const EMPTY = -1;

function fnv1a(bytes: Uint8Array, start: number, end: number): number {
  let h = 0x811c9dc5;
  for (let i = start; i < end; i++) h = Math.imul(h ^ bytes[i], 0x01000193);
  return h >>> 0;
}

export class GroupKeys {
  private readonly encoder = new TextEncoder();
  private readonly decoder = new TextDecoder();
  private arena = new Uint8Array(1024);
  private arenaUsed = 0;
  /** Key i occupies arena[offsets[i], offsets[i + 1]). */
  private offsets = new Uint32Array(257);
  private table = new Int32Array(512).fill(EMPTY);
  private count = 0;
  private none = -1;
  private scratch = new Uint8Array(256);
  // Consecutive records usually share a group (the candidates of one prompt).
  private lastKey: string | number | undefined = undefined;
  private lastIndex = -1;
  /** The key last found by its bytes (indexOfEncoded). */
  private lastBytesIndex = -1;

  get size(): number {
    return this.count;
  }

  indexOf(key: string | number | null): number {
    if (key === null) {
      if (this.none < 0) this.none = this.add(0, 0); // an empty entry, never in the hash table
      return this.none;
    }
    // 0 === -0 here, as String(-0) is "0": one group, as JSON prints both as 0.
    if (key === this.lastKey) return this.lastIndex;
    const index = this.intern(typeof key === 'string' ? TAG_STRING : TAG_NUMBER, typeof key === 'string' ? key : String(key));
    this.lastKey = key;
    this.lastIndex = index;
    return index;
  }

  /**
   * indexOf for a key already encoded as it is stored (a type tag, then the key's UTF-8 text, as
   * String() writes a number): bytes[start, end), empty for "no group". Parse workers encode
   * the keys, so the main thread never makes a string per record.
   */
  indexOfEncoded(bytes: Uint8Array, start: number, end: number): number {
    if (end === start) return this.indexOf(null);
    const len = end - start;
    const last = this.lastBytesIndex;
    if (last >= 0 && this.offsets[last + 1] - this.offsets[last] === len) {
      // Consecutive records usually share a group: compare with its stored bytes before hashing.
      const a = this.arena,
        o = this.offsets[last];
      let k = 0;
      while (k < len && a[o + k] === bytes[start + k]) k++;
      if (k === len) return last;
    }
    if (this.scratch.length < len) this.scratch = new Uint8Array(Math.max(len, this.scratch.length * 2));
    // A loop, not set(subarray()): keys are short, and a view object per record costs more than the copy.
    const scratch = this.scratch;
    for (let k = 0; k < len; k++) scratch[k] = bytes[start + k];
    return (this.lastBytesIndex = this.find(len));
  }

  /** The key of index i. */
  keyOf(i: number): string | number | null {
    if (i === this.none) return null;
    const start = this.offsets[i];
    const text = this.decoder.decode(this.arena.subarray(start + 1, this.offsets[i + 1]));
    return this.arena[start] === TAG_STRING ? text : Number(text);
  }

  /** Every key by index (decoded; for small inputs and audits, not the streaming path). */
  get keys(): (string | number | null)[] {
    return Array.from({ length: this.count }, (_, i) => this.keyOf(i));
  }

  private intern(tag: number, text: string): number {
    // Encode tag + text into the scratch buffer (UTF-8 needs at most 3 bytes per UTF-16 unit).
    const need = 1 + text.length * 3;
    if (this.scratch.length < need) this.scratch = new Uint8Array(Math.max(need, this.scratch.length * 2));
    this.scratch[0] = tag;
    return this.find(1 + this.encoder.encodeInto(text, this.scratch.subarray(1)).written);
  }

  /**
   * The index of the string key whose UTF-8 bytes are bytes[start, end) (a row of an Arrow
   * string column): interned from the bytes, with no string decoded. Equal to indexOf(decoded).
   */
  indexOfUtf8(bytes: Uint8Array, start: number, end: number): number {
    const len = 1 + end - start;
    if (this.scratch.length < len) this.scratch = new Uint8Array(Math.max(len, this.scratch.length * 2));
    const scratch = this.scratch;
    scratch[0] = TAG_STRING;
    // A loop, not set(subarray()): keys are short, and a view object per row costs more than the copy.
    for (let k = start; k < end; k++) scratch[1 + k - start] = bytes[k];
    return this.find(len);
  }

  /** The index of the key in scratch[0, len), added if new. */
  private find(len: number): number {
    const hash = fnv1a(this.scratch, 0, len);
    const mask = this.table.length - 1;
    for (let slot = hash & mask; ; slot = (slot + 1) & mask) {
      const i = this.table[slot];
      if (i === EMPTY) break;
      if (this.equals(i, len)) return i;
    }
    return this.add(len, hash);
  }

  private equals(i: number, len: number): boolean {
    const start = this.offsets[i];
    if (this.offsets[i + 1] - start !== len) return false;
    for (let k = 0; k < len; k++) if (this.arena[start + k] !== this.scratch[k]) return false;
    return true;
  }

  private add(len: number, hash: number): number {
    const i = this.count++;
    if (this.arenaUsed + len > this.arena.length) {
      const size = Math.max(this.arenaUsed + len, Math.ceil(this.arena.length * 1.5));
      if (size > 0xffffffff) throw new RangeError(`group keys need more than 4 GiB (${this.count} distinct groups)`);
      const next = new Uint8Array(size);
      next.set(this.arena.subarray(0, this.arenaUsed));
      this.arena = next;
    }
    this.arena.set(this.scratch.subarray(0, len), this.arenaUsed);
    this.arenaUsed += len;
    if (i + 2 > this.offsets.length) {
      const next = new Uint32Array(Math.ceil(this.offsets.length * 1.5));
      next.set(this.offsets);
      this.offsets = next;
    }
    this.offsets[i + 1] = this.arenaUsed;
    if (len === 0) return i;
    // Keep the table at most half full so probe runs stay short.
    if (this.count * 2 > this.table.length) this.rehash(this.table.length * 2);
    else this.place(i, hash);
    return i;
  }

  private place(i: number, hash: number): void {
    const mask = this.table.length - 1;
    let slot = hash & mask;
    while (this.table[slot] !== EMPTY) slot = (slot + 1) & mask;
    this.table[slot] = i;
  }

  private rehash(size: number): void {
    this.table = new Int32Array(size).fill(EMPTY);
    for (let i = 0; i < this.count; i++) {
      if (i !== this.none) this.place(i, fnv1a(this.arena, this.offsets[i], this.offsets[i + 1]));
    }
  }
}
