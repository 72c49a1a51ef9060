/**
 * The one parser of the Redis URLs that `--redis` (the shared cache tier) and `--queue` (the
 * BullMQ scoring queue) take, and the check of the database index they name.
 *
 * URLs: `redis://[[user]:password@]host[:port][/db]`, `rediss://` (TLS), and Sentinel as
 * `redis+sentinel://[[user]:password@]host:port[,host:port...]/<master name>[/db]` (ioredis asks
 * the sentinels for the primary and follows failovers; `?sentinelPassword=` if they need one).
 * Cluster is not supported (the cache's lookup script and BullMQ's keys need one hash slot).
 *
 * ioredis sends `SELECT db` while connecting and, when the server refuses it, only emits an
 * 'error' and carries on in database 0: a mistyped index would silently share (and, for the queue,
 * mix jobs in) database 0. So the index is checked here (a decimal number, within Redis's range),
 * against the server when connected (`CONFIG GET databases`, else the SELECT's own answer), and a
 * refused SELECT is recognised wherever an ioredis client reports errors.
 *
 * No imports from cli/ or server/: the cache and the queue both sit above this module.
 */
import { UsageError } from '../core/errors.js';
import { redactUrl } from '../core/redact-url.js';

/** Where a Redis URL points: a server, or the sentinels of a primary (ioredis' option names). */
export interface RedisTarget {
  host?: string;
  port?: number;
  username?: string;
  password?: string;
  db?: number;
  tls?: Record<string, never>;
  sentinels?: Array<{ host: string; port: number }>;
  /** The primary's name, as the sentinels know it. */
  name?: string;
  sentinelPassword?: string;
}

/** What a server has unless configured otherwise (redis.conf `databases 16`). */
export const DEFAULT_DATABASES = 16;
/** Redis reads `SELECT` and `databases` as a C int. */
const MAX_DB_INDEX = 2 ** 31 - 1;

const SUPPORTED = 'redis://host:port[/db], rediss://host:port (TLS) or redis+sentinel://host:port[,host:port...]/<master name>[/db]; Cluster is not supported';

/** A bad Redis URL, or a database the server does not have: a configuration error (exit 2). */
export class RedisUrlError extends UsageError {}

function bad(url: string, what: string): RedisUrlError {
  return new RedisUrlError(`redis URL ${JSON.stringify(redactUrl(url))}${what.startsWith(':') ? '' : ' '}${what}`);
}

/** The path's database index: a decimal number 0..2^31-1 (the server's count is checked on connection). */
function dbIndex(url: string, text: string): number | undefined {
  if (text === '') return undefined;
  if (!/^\d{1,10}$/.test(text) || Number(text) > MAX_DB_INDEX) {
    throw bad(url, `: the path is the database index, a number from 0 to ${DEFAULT_DATABASES - 1} on a default server; got ${JSON.stringify(text)}`);
  }
  return Number(text);
}

function sentinelTarget(url: string): RedisTarget {
  const m = /^redis\+sentinel:\/\/(?:([^:@/]*)(?::([^@/]*))?@)?([^/?@]+)\/([^/?]+)(?:\/([^/?]*))?\/?(?:\?(.*))?$/.exec(url);
  if (!m) throw bad(url, ': a Sentinel URL is redis+sentinel://[[user]:password@]host:port[,host:port...]/<master name>[/db]');
  const [, user, password, hosts, name, db, query] = m;
  const sentinels = hosts.split(',').map((h) => {
    const hp = /^([^:]+|\[[^\]]+\]):(\d{1,5})$/.exec(h);
    if (!hp) throw bad(url, `: sentinel ${JSON.stringify(h)} is not host:port`);
    return { host: hp[1].replace(/^\[|\]$/g, ''), port: Number(hp[2]) };
  });
  const params = new URLSearchParams(query ?? '');
  for (const k of params.keys()) if (k !== 'sentinelPassword') throw bad(url, `: unknown parameter ${JSON.stringify(k)} (known: sentinelPassword)`);
  const index = dbIndex(url, db ?? '');
  const dec = (x: string | undefined) => (x ? decodeURIComponent(x) : undefined);
  return {
    sentinels,
    name: decodeURIComponent(name),
    ...(user ? { username: dec(user) } : {}),
    ...(password ? { password: dec(password) } : {}),
    ...(index !== undefined ? { db: index } : {}),
    ...(params.get('sentinelPassword') ? { sentinelPassword: params.get('sentinelPassword')! } : {}),
  };
}

/** Checks a Redis URL and gives its ioredis options; a RedisUrlError names what is supported. */
export function parseRedisUrl(url: string): RedisTarget {
  if (url.startsWith('redis+sentinel://')) return sentinelTarget(url);
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw bad(url, `is not a URL (expected ${SUPPORTED})`);
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') throw bad(url, `: expected ${SUPPORTED}`);
  if (u.hostname === '') throw bad(url, 'names no host');
  // ioredis would read query parameters as options; the cache used to drop them silently. Neither is wanted.
  if (u.search !== '') throw bad(url, ': query parameters are not supported on redis:// URLs');
  const db = dbIndex(url, u.pathname.replace(/^\//, ''));
  return {
    host: u.hostname.replace(/^\[|\]$/g, ''),
    port: u.port ? Number(u.port) : 6379,
    ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
    ...(db !== undefined ? { db } : {}),
    ...(u.protocol === 'rediss:' ? { tls: {} } : {}),
  };
}

/**
 * Checks the Redis URL an option gave (`--redis`, `--queue`): a UsageError `<flag>: <why>`, the
 * same for the cache and the queue.
 */
export function checkRedisUrlOption(url: string, flag: string): RedisTarget {
  try {
    return parseRedisUrl(url);
  } catch (err) {
    throw new UsageError(`${flag}: ${(err as Error).message}`);
  }
}

/** The server refused the database index: a configuration error, never retried. */
export class RedisDatabaseError extends RedisUrlError {
  constructor(
    url: string,
    readonly db: number,
    detail: string,
  ) {
    super(`redis URL ${JSON.stringify(redactUrl(url))}: the server has no database ${db} (${detail}); fix the URL's /db (none means 0)`);
  }
}

/** True for the error ioredis emits when the server refuses its connection-time `SELECT`. */
export function isSelectRefused(err: unknown): boolean {
  const command = (err as { command?: { name?: unknown } } | null)?.command;
  return typeof command?.name === 'string' && command.name.toLowerCase() === 'select';
}

/** What a client needs to answer the checks below (an ioredis Redis does). */
export interface CommandClient {
  call(command: string, ...args: (string | number)[]): Promise<unknown>;
}

/**
 * The number of databases the server has (`CONFIG GET databases`), or null where the command is
 * refused (hosted Redis often renames or forbids CONFIG).
 */
export async function serverDatabases(client: CommandClient): Promise<number | null> {
  try {
    const reply = await client.call('CONFIG', 'GET', 'databases');
    const n = Array.isArray(reply) ? Number(reply[1]) : NaN;
    return Number.isSafeInteger(n) && n > 0 ? n : null;
  } catch {
    return null;
  }
}

const range = (n: number) => `${n} database${n === 1 ? '' : 's'}, 0${n > 1 ? ` to ${n - 1}` : ''}`;

/**
 * Checks `db` on a connected client that has not selected it: against `CONFIG GET databases`,
 * then by selecting it (the authority where CONFIG is refused: a server with more databases than
 * the default is not refused by a guess). Throws a RedisDatabaseError.
 */
export async function checkDatabase(client: CommandClient, url: string, db: number | undefined): Promise<void> {
  if (db === undefined || db === 0) return;
  const databases = await serverDatabases(client);
  if (databases !== null && db >= databases) throw new RedisDatabaseError(url, db, `it has ${range(databases)}`);
  try {
    await client.call('SELECT', db);
  } catch (err) {
    throw new RedisDatabaseError(
      url,
      db,
      `SELECT ${db}: ${(err as Error).message}${databases === null ? `; a default server has ${range(DEFAULT_DATABASES)}` : ''}`,
    );
  }
}

/** The RedisDatabaseError for a SELECT that ioredis reported refused (see isSelectRefused). */
export async function describeRefusedSelect(client: CommandClient, url: string, db: number, err: unknown): Promise<RedisDatabaseError> {
  const databases = await serverDatabases(client);
  const why = databases !== null ? `it has ${range(databases)}` : `SELECT ${db}: ${(err as Error).message}; a default server has ${range(DEFAULT_DATABASES)}`;
  return new RedisDatabaseError(url, db, why);
}
