/**
 * Redis key names of the shared cache tier: `ecr:v1:<kind>:<sha256>`, or with a per-request
 * namespace `ecr:v1:<namespace>:<kind>:<sha256>`; the same 64-hex-digit content keys the
 * in-process tier uses. The version is that of the value layouts (redis-codec.ts), so a layout
 * change never reads old entries as new. A key's lock and its fill channel are the key with a
 * suffix, which no data key can have (data keys end in the hash).
 */
import { checkCacheNamespace } from './namespace.js';

export const KEY_VERSION = 'v1';
export const CACHE_KINDS = ['candidates', 'steps', 'embeddings', 'vectors'] as const;
export type CacheKind = (typeof CACHE_KINDS)[number];

export function redisKey(kind: CacheKind, hash: string, namespace?: string): string {
  if (!/^[0-9a-f]{64}$/.test(hash)) throw new TypeError(`redisKey: not a SHA-256 hex digest: ${JSON.stringify(hash)}`);
  if (namespace !== undefined) checkCacheNamespace(namespace, () => new TypeError(`redisKey: bad namespace ${JSON.stringify(namespace)}`));
  return namespace === undefined ? `ecr:${KEY_VERSION}:${kind}:${hash}` : `ecr:${KEY_VERSION}:${namespace}:${kind}:${hash}`;
}

export const lockKey = (key: string) => `${key}:lock`;
export const fillChannel = (key: string) => `${key}:filled`;
