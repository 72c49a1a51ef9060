/**
 * Canonical JSON and content keys. Cache keys must cover every input that changes a result (the
 * Python reference keyed on 50-character prefixes and served one candidate's result for
 * another), so a key is the SHA-256 of a canonical serialization of the whole input object.
 */
import * as crypto from 'node:crypto';

// One-shot crypto.hash (Node >= 20.12) skips the Hash object that createHash allocates per key.
const oneShot = (crypto as { hash?: (algorithm: string, data: string, encoding: 'hex') => string }).hash;
const sha256Hex = oneShot ? (data: string) => oneShot('sha256', data, 'hex') : (data: string) => crypto.createHash('sha256').update(data).digest('hex');

/**
 * JSON with object keys sorted at every level, `undefined` members dropped, and typed arrays
 * written as plain arrays, so two equal inputs always give the same string.
 */
export function canonicalJson(value: unknown): string {
  return write(value);
}

function write(v: unknown): string {
  if (v === null) return 'null';
  switch (typeof v) {
    case 'string':
      return JSON.stringify(v);
    case 'boolean':
      return v ? 'true' : 'false';
    case 'number':
      // JSON has no NaN or Infinity; spell them so they stay distinct from null and each other.
      return Number.isFinite(v) ? JSON.stringify(v) : JSON.stringify(`__number:${String(v)}`);
    case 'bigint':
      return JSON.stringify(`__bigint:${v.toString()}`);
    case 'undefined':
      return 'null';
    case 'object':
      break;
    default:
      throw new TypeError(`canonicalJson: cannot serialize a ${typeof v}`);
  }
  if (ArrayBuffer.isView(v) && !(v instanceof DataView)) return write(Array.from(v as unknown as ArrayLike<number>));
  if (Array.isArray(v)) return `[${v.map(write).join(',')}]`;
  const o = v as Record<string, unknown>;
  const keys = Object.keys(o)
    .filter((k) => o[k] !== undefined)
    .sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${write(o[k])}`).join(',')}}`;
}

export type KeyPart = string | number | boolean | null;

/**
 * SHA-256 (hex) of a flat tuple of primitives: the fast path for keys built on every LLM call.
 * JSON.stringify of an array of primitives is already canonical; a structured part is passed in
 * as its canonicalJson string. Non-finite numbers are rejected (JSON would turn them into null).
 */
export function tupleKey(...parts: KeyPart[]): string {
  for (const p of parts) if (typeof p === 'number' && !Number.isFinite(p)) throw new TypeError(`tupleKey: non-finite number ${p}`);
  return sha256Hex(JSON.stringify(parts));
}
