/** The `--queue` URL: checked before anything heavy is loaded, and shown without its password. */
import { UsageError } from '../errors.js';

/** A URL without its password, for messages. */
export function redactUrl(url: string): string {
  // A regular expression, not URL: a redis+sentinel:// URL lists several hosts, which URL refuses.
  return url.replace(/^([a-z+]+:\/\/[^:@/]*):[^@/]*@/i, '$1:***@');
}

/** Checks `--queue URL`: redis:// or rediss:// (TLS), host, optional port, database and password. */
export function checkQueueUrl(url: string, flag = '--queue'): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new UsageError(`${flag} must be a redis:// or rediss:// URL, got "${url}"`);
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') throw new UsageError(`${flag} must be a redis:// or rediss:// URL, got "${url}"`);
  if (u.hostname === '') throw new UsageError(`${flag} ${url} names no host`);
  return url;
}
