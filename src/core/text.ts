/**
 * A JSON value from a peer as text, the way String() writes it ('' for null or absent). For the
 * fields a well-behaved peer sends as strings (a model name, a token, an error code): anything
 * else is kept as String() makes it rather than refused.
 */
export function textOf(v: unknown): string {
  // eslint-disable-next-line @typescript-eslint/no-base-to-string -- String() of any JSON value is the intended text, "[object Object]" included
  return v === undefined || v === null ? '' : String(v);
}
