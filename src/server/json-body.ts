/**
 * Request bodies: JSON only. JSON.parse reads a number beyond the double range (1e400, or 400
 * digits) as Infinity, which later shows as `null` in messages ("got null") and is no value any
 * OpenAI-compatible server accepts; it is refused here, naming its field, for every route
 * (pass-through included: I-JSON, RFC 7493, rules such numbers out of interoperable JSON).
 */
import { invalidRequest } from './errors.js';

/** The parsed body; throws a 400 naming the field for invalid JSON or an out-of-range number. */
export function parseJsonBody(body: Buffer): unknown {
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch (e) {
    throw invalidRequest(null, `the body is not valid JSON: ${(e as Error).message}`, 'invalid_json');
  }
  const where = nonFinite(value, '');
  if (where !== null) throw invalidRequest(where || 'body', 'the number is out of range (beyond +-1.8e308, the 64-bit float range)', 'number_out_of_range');
  return value;
}

/** Path of the first non-finite number (`messages[0].x`, `ecr.tau`), '' for the root itself, null if none. */
function nonFinite(v: unknown, path: string): string | null {
  if (typeof v === 'number') return Number.isFinite(v) ? null : path;
  if (v === null || typeof v !== 'object') return null;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      const p = nonFinite(v[i], `${path}[${i}]`);
      if (p !== null) return p;
    }
    return null;
  }
  for (const [k, x] of Object.entries(v)) {
    const p = nonFinite(x, path ? `${path}.${k}` : k);
    if (p !== null) return p;
  }
  return null;
}
