/**
 * A decoder of the LZ4 frame format (lz4.org, lz4_Frame_format.md, version 1.6.x), as Arrow IPC
 * compresses its body buffers with it (pyarrow's write_feather default; Polars' compression="lz4").
 *
 * Written here because npm has no sound pure-JS or wasm frame decoder: lz4js, the one pure-JS
 * frame implementation, reads a block checksum as if it came before the block (so it decodes
 * Polars' frames, which carry block checksums, into garbage) and allocates 5 MB when imported;
 * lz4-wasm and @foxglove/wasm-lz4 decode single blocks only (no frame, no linked blocks); lz4
 * builds a native addon at install and lz4-napi ships one per platform. The block format is
 * small and fixed, and every read here is bounds-checked, so a damaged buffer is an error, never
 * a wrong result; checksums (xxHash32) are verified when the frame has them.
 */

export class Lz4FrameError extends Error {}

const MAGIC = 0x184d2204;
const BLOCK_MAX = [0, 0, 0, 0, 64 << 10, 256 << 10, 1 << 20, 4 << 20];

/** Decodes every frame of `src` (frames may be concatenated; skippable frames are skipped). */
export function decodeLz4Frames(src: Uint8Array): Uint8Array {
  const dv = new DataView(src.buffer, src.byteOffset, src.byteLength);
  const need = (at: number, n: number) => {
    if (at + n > src.length) throw new Lz4FrameError('the LZ4 frame is truncated');
  };
  const parts: Uint8Array[] = [];
  let at = 0;
  do {
    need(at, 4);
    const magic = dv.getUint32(at, true);
    if ((magic & 0xfffffff0) === 0x184d2a50) {
      // a skippable frame
      need(at, 8);
      at += 8 + dv.getUint32(at + 4, true);
      continue;
    }
    if (magic !== MAGIC) throw new Lz4FrameError('not an LZ4 frame (wrong magic number)');
    const { output, end } = decodeFrame(src, dv, at + 4, need);
    parts.push(output);
    at = end;
  } while (at < src.length);
  if (parts.length === 1) return parts[0];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function decodeFrame(src: Uint8Array, dv: DataView, at: number, need: (at: number, n: number) => void): { output: Uint8Array; end: number } {
  need(at, 3);
  const flg = src[at],
    bd = src[at + 1];
  if (flg >> 6 !== 1) throw new Lz4FrameError(`unsupported LZ4 frame version ${flg >> 6}`);
  const blockChecksums = (flg & 0x10) !== 0,
    hasContentSize = (flg & 0x08) !== 0,
    contentChecksum = (flg & 0x04) !== 0,
    hasDict = (flg & 0x01) !== 0;
  const blockMax = BLOCK_MAX[(bd >> 4) & 7];
  if (blockMax === 0) throw new Lz4FrameError('invalid LZ4 block size');
  const descriptorStart = at;
  at += 2;
  let contentSize = -1;
  if (hasContentSize) {
    need(at, 8);
    const size = dv.getBigUint64(at, true);
    if (size > BigInt(0x7fffffff)) throw new Lz4FrameError(`an LZ4 frame of ${size} bytes is larger than a buffer can be`);
    contentSize = Number(size);
    at += 8;
  }
  if (hasDict) throw new Lz4FrameError('the LZ4 frame needs a dictionary, which Arrow IPC never uses');
  need(at, 1);
  if (((xxh32(src, descriptorStart, at - descriptorStart, 0) >>> 8) & 0xff) !== src[at])
    throw new Lz4FrameError('the LZ4 frame header checksum does not match');
  at += 1;

  // The output's size: the declared content size, else at most a full block per compressed block.
  let bound = contentSize;
  if (bound < 0) {
    bound = 0;
    for (let p = at; ;) {
      need(p, 4);
      const size = dv.getUint32(p, true);
      if (size === 0) break;
      const raw = (size & 0x80000000) !== 0,
        len = size & 0x7fffffff;
      bound += raw ? len : blockMax;
      p += 4 + len + (blockChecksums ? 4 : 0);
    }
  }
  const out = new Uint8Array(bound);
  let o = 0;
  for (;;) {
    need(at, 4);
    const size = dv.getUint32(at, true);
    at += 4;
    if (size === 0) break;
    const raw = (size & 0x80000000) !== 0,
      len = size & 0x7fffffff;
    if (len > blockMax) throw new Lz4FrameError(`an LZ4 block of ${len} bytes is larger than the frame's ${blockMax}-byte blocks`);
    need(at, len + (blockChecksums ? 4 : 0));
    if (blockChecksums && xxh32(src, at, len, 0) !== dv.getUint32(at + len, true)) throw new Lz4FrameError('an LZ4 block checksum does not match');
    if (raw) {
      if (o + len > out.length) throw new Lz4FrameError('an LZ4 frame holds more than its declared size');
      out.set(src.subarray(at, at + len), o);
      o += len;
    } else {
      o = decodeBlock(src, at, at + len, out, o, Math.min(out.length, o + blockMax));
    }
    at += len + (blockChecksums ? 4 : 0);
  }
  if (contentSize >= 0 && o !== contentSize) throw new Lz4FrameError(`an LZ4 frame decodes to ${o} bytes, not the ${contentSize} it declares`);
  if (contentChecksum) {
    need(at, 4);
    if (xxh32(out, 0, o, 0) !== dv.getUint32(at, true)) throw new Lz4FrameError('the LZ4 content checksum does not match');
    at += 4;
  }
  return { output: o === out.length ? out : out.slice(0, o), end: at };
}

/**
 * One LZ4 block, src[s, end), appended to out at o (no further than limit). Matches may reach
 * back into earlier blocks of the frame, which precede it in `out` (linked blocks).
 */
function decodeBlock(src: Uint8Array, s: number, end: number, out: Uint8Array, o: number, limit: number): number {
  const bad = (why: string): never => {
    throw new Lz4FrameError(`an LZ4 block is damaged (${why})`);
  };
  while (s < end) {
    const token = src[s++];
    let literals = token >> 4;
    if (literals === 15) {
      for (let b = 255; b === 255;) {
        if (s >= end) bad('a literal length runs past the block');
        b = src[s++];
        literals += b;
      }
    }
    if (s + literals > end) bad('literals run past the block');
    if (o + literals > limit) bad('output beyond the block size');
    out.set(src.subarray(s, s + literals), o);
    s += literals;
    o += literals;
    if (s === end) break; // the last sequence has literals only
    if (s + 2 > end) bad('a match offset runs past the block');
    const offset = src[s] | (src[s + 1] << 8);
    s += 2;
    if (offset === 0 || offset > o) bad('a match reaches before the start of the data');
    let length = token & 15;
    if (length === 15) {
      for (let b = 255; b === 255;) {
        if (s >= end) bad('a match length runs past the block');
        b = src[s++];
        length += b;
      }
    }
    length += 4;
    if (o + length > limit) bad('output beyond the block size');
    // Byte by byte: a match may overlap the bytes it produces (offset < length repeats them).
    for (let from = o - offset, stop = o + length; o < stop;) out[o++] = out[from++];
  }
  return o;
}

const P1 = 0x9e3779b1,
  P2 = 0x85ebca77,
  P3 = 0xc2b2ae3d,
  P4 = 0x27d4eb2f,
  P5 = 0x165667b1;
const rotl = (x: number, r: number) => (x << r) | (x >>> (32 - r));
const u32 = (b: Uint8Array, i: number) => (b[i] | (b[i + 1] << 8) | (b[i + 2] << 16) | (b[i + 3] << 24)) >>> 0;

/** xxHash32 of b[at, at + len) (the checksum of the LZ4 frame format). */
export function xxh32(b: Uint8Array, at: number, len: number, seed: number): number {
  const end = at + len;
  let h: number;
  let i = at;
  if (len >= 16) {
    let v1 = (seed + P1 + P2) | 0,
      v2 = (seed + P2) | 0,
      v3 = seed | 0,
      v4 = (seed - P1) | 0;
    for (; i + 16 <= end; i += 16) {
      v1 = Math.imul(rotl((v1 + Math.imul(u32(b, i), P2)) | 0, 13), P1);
      v2 = Math.imul(rotl((v2 + Math.imul(u32(b, i + 4), P2)) | 0, 13), P1);
      v3 = Math.imul(rotl((v3 + Math.imul(u32(b, i + 8), P2)) | 0, 13), P1);
      v4 = Math.imul(rotl((v4 + Math.imul(u32(b, i + 12), P2)) | 0, 13), P1);
    }
    h = (rotl(v1, 1) + rotl(v2, 7) + rotl(v3, 12) + rotl(v4, 18)) | 0;
  } else {
    h = (seed + P5) | 0;
  }
  h = (h + len) | 0;
  for (; i + 4 <= end; i += 4) h = Math.imul(rotl((h + Math.imul(u32(b, i), P3)) | 0, 17), P4);
  for (; i < end; i++) h = Math.imul(rotl((h + Math.imul(b[i], P5)) | 0, 11), P1);
  h = Math.imul(h ^ (h >>> 15), P2);
  h = Math.imul(h ^ (h >>> 13), P3);
  return (h ^ (h >>> 16)) >>> 0;
}
