/**
 * The bytes a cache entry has in Redis, per kind. Vectors are their raw element bytes (little
 * endian, as every platform Node runs on stores them): an embedding is Float32 as computed, an
 * evaluative vector Float64 (rounding it to float32 would make an L2 hit score differently from
 * the computation it stands for). Step and candidate texts with their token logprobs are
 * MessagePack (msgpackr) tuples whose logprobs are one Float64 byte run, not JSON objects.
 * A change of any layout here must change KEY_VERSION (redis-keys.ts), so old entries are never
 * read as new ones.
 */
import { Packr } from 'msgpackr';
import type { ChatChoice, TokenLogprob } from '../llm/provider.js';

/** What a step or a candidate choice holds (the pipeline's StepData is this shape). */
export interface CachedText {
  text: string;
  logprobs: TokenLogprob[] | null;
  finishReason?: string;
  systemFingerprint?: string;
}

export interface Codec<V> {
  encode(value: V): Uint8Array;
  /** Throws CacheDecodeError on bytes that are not an entry of this kind. */
  decode(bytes: Uint8Array): V;
}

export class CacheDecodeError extends Error {
  constructor(kind: string, why: string) {
    super(`cache entry of kind "${kind}" cannot be decoded: ${why}`);
    this.name = 'CacheDecodeError';
  }
}

// useRecords false: plain arrays, no record-structure extension state shared between processes.
const packr = new Packr({ useRecords: false, moreTypes: false });

function copyAligned(bytes: Uint8Array, width: number, kind: string): ArrayBuffer {
  if (bytes.byteLength % width !== 0) throw new CacheDecodeError(kind, `${bytes.byteLength} bytes is not a whole number of ${width}-byte elements`);
  // Redis replies arrive at arbitrary offsets of a shared buffer; typed arrays need alignment.
  const out = new ArrayBuffer(bytes.byteLength);
  new Uint8Array(out).set(bytes);
  return out;
}

const viewBytes = (v: ArrayBufferView) => Buffer.from(v.buffer, v.byteOffset, v.byteLength);

export const float32Codec: Codec<Float32Array> = {
  encode: (v) => viewBytes(v),
  decode: (b) => new Float32Array(copyAligned(b, 4, 'embeddings')),
};

export const float64Codec: Codec<Float64Array> = {
  encode: (v) => viewBytes(v),
  decode: (b) => new Float64Array(copyAligned(b, 8, 'vectors')),
};

type LogprobTuple = [tokens: string[], topCounts: Uint8Array, values: Uint8Array];
type TextTuple = [text: string, finishReason: string | null, systemFingerprint: string | null, logprobs: LogprobTuple | null];

function logprobTuple(lp: TokenLogprob[]): LogprobTuple {
  const tokens: string[] = [];
  const counts = new Uint8Array(lp.length);
  let n = 0;
  for (const t of lp) n += 1 + t.top.length;
  const values = new Float64Array(n);
  let k = 0;
  lp.forEach((t, i) => {
    if (t.top.length > 255) throw new RangeError(`a token has ${t.top.length} alternatives; at most 255 are cached`);
    counts[i] = t.top.length;
    tokens.push(t.token);
    values[k++] = t.logprob;
    for (const a of t.top) {
      tokens.push(a.token);
      values[k++] = a.logprob;
    }
  });
  return [tokens, counts, new Uint8Array(values.buffer)];
}

function textTuple(v: CachedText): TextTuple {
  return [v.text, v.finishReason ?? null, v.systemFingerprint ?? null, v.logprobs ? logprobTuple(v.logprobs) : null];
}

function fromLogprobTuple(t: unknown, kind: string): TokenLogprob[] {
  if (!Array.isArray(t) || t.length !== 3 || !Array.isArray(t[0]) || !(t[1] instanceof Uint8Array) || !(t[2] instanceof Uint8Array))
    throw new CacheDecodeError(kind, 'malformed logprobs');
  const tokens = t[0] as unknown[];
  const counts = t[1];
  const values = new Float64Array(copyAligned(t[2], 8, kind));
  if (values.length !== tokens.length || tokens.some((x) => typeof x !== 'string'))
    throw new CacheDecodeError(kind, 'logprob tokens and values differ in number');
  const out: TokenLogprob[] = [];
  let k = 0;
  for (let i = 0; i < counts.length; i++) {
    if (k + 1 + counts[i] > values.length) throw new CacheDecodeError(kind, 'logprob counts exceed the values');
    const token = tokens[k] as string,
      logprob = values[k++];
    const top = [];
    for (let j = 0; j < counts[i]; j++) {
      top.push({ token: tokens[k] as string, logprob: values[k] });
      k++;
    }
    out.push({ token, logprob, top });
  }
  if (k !== values.length) throw new CacheDecodeError(kind, 'logprob values left over');
  return out;
}

function fromTextTuple(t: unknown, kind: string): CachedText {
  if (!Array.isArray(t) || t.length !== 4 || typeof t[0] !== 'string') throw new CacheDecodeError(kind, 'not a text tuple');
  const [text, finishReason, systemFingerprint, lp] = t as [string, unknown, unknown, unknown];
  const out: CachedText = { text, logprobs: lp === null ? null : fromLogprobTuple(lp, kind) };
  if (typeof finishReason === 'string') out.finishReason = finishReason;
  if (typeof systemFingerprint === 'string') out.systemFingerprint = systemFingerprint;
  return out;
}

function unpack(b: Uint8Array, kind: string): unknown {
  try {
    return packr.unpack(b);
  } catch (e) {
    throw new CacheDecodeError(kind, (e as Error).message);
  }
}

export const stepCodec: Codec<CachedText> = {
  encode: (v) => packr.pack(textTuple(v)),
  decode: (b) => fromTextTuple(unpack(b, 'steps'), 'steps'),
};

export const choicesCodec: Codec<ChatChoice[]> = {
  encode: (v) => packr.pack(v.map(textTuple)),
  decode: (b) => {
    const list = unpack(b, 'candidates');
    if (!Array.isArray(list) || list.length === 0) throw new CacheDecodeError('candidates', 'not a non-empty list of choices');
    return list.map((t) => fromTextTuple(t, 'candidates'));
  },
};
