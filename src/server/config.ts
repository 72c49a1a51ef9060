/**
 * `ecr serve` settings. One table defines every setting once: its flag, its environment variable,
 * its key in the config file, its type, default and help line. Precedence: flag, then environment,
 * then config file, then default. The config file is JSON: `{"upstream": ..., "port": ...,
 * "defaults": {per-request ECR settings}, "scoring": {ECR-SPEC section 4 configuration}}`.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from '../core/parse-args.js';
import { CONFIG_KEYS, resolveConfig, type EcrConfig } from '../core/config.js';
import type { BackendOptions } from '../backends/options.js';
import { ConfigError, UsageError } from '../core/errors.js';
import { REDIS_DEFAULTS } from '../cache/redis-store.js';
import { defaultCacheBytes } from '../core/machine.js';
import { checkRedisUrlOption } from '../cache/redis-url.js';
import { ApiError } from './errors.js';
import { joinUrlPath } from '../llm/http-transport.js';
import { redactUrl } from '../core/redact-url.js';
import { parseEcrSettings, type EcrSettings } from './request-settings.js';

type Kind = 'string' | 'int' | 'number' | 'boolean' | 'list';

interface Setting {
  key: keyof ServeSettings;
  flag: string;
  env: string;
  kind: Kind;
  help: string;
  arg?: string;
  min?: number;
  max?: number;
}

export interface ServeSettings {
  upstream: string;
  port: number;
  host: string;
  config?: string;
  apiKeys: string[];
  upstreamApiKey?: string;
  embeddingModel?: string;
  ecrAll: boolean;
  metricsAuth: boolean;
  bodyLimit: number;
  maxK: number;
  maxHorizon: number;
  maxConcurrent: number;
  maxParallel: number;
  upstreamTimeout: number;
  retries: number;
  shutdownTimeout: number;
  progressInterval: number;
  /** Approximate byte bound of each of the pipeline's four caches (candidates, steps, embeddings, vectors). */
  cacheMaxBytes: number;
  /** Time to live of a cache entry in ms; 0 = none (entries leave only by the size bound). */
  cacheTtl: number;
  /** The shared Redis cache tier's URL (none: in-process caches only). */
  redis?: string;
  /** TTL of a Redis cache entry in seconds, unless a request gives its own. */
  redisTtl: number;
  /** Limit of one Redis operation in ms. */
  redisTimeout: number;
  /** Life of a single-flight lock in Redis, and the longest another instance waits for its value, in ms. */
  redisLock: number;
  temperature: number;
  logPrompts: boolean;
  logLevel: string;
  /** Append one line per scored candidate here (ECR-SPEC 8.1), for ecr calibrate and ecr maturity. */
  auditLog?: string;
}

export const SETTINGS: readonly Setting[] = [
  {
    key: 'upstream',
    flag: 'upstream',
    env: 'ECR_UPSTREAM',
    kind: 'string',
    arg: 'URL',
    help: 'OpenAI-compatible base URL of the LLM server, e.g. http://127.0.0.1:11434/v1 (required)',
  },
  { key: 'port', flag: 'port', env: 'ECR_PORT', kind: 'int', min: 0, max: 65535, help: 'port to listen on (default 8080; 0 = any free port)' },
  { key: 'host', flag: 'host', env: 'ECR_HOST', kind: 'string', arg: 'HOST', help: 'address to listen on (default 127.0.0.1)' },
  {
    key: 'config',
    flag: 'config',
    env: 'ECR_CONFIG',
    kind: 'string',
    arg: 'FILE',
    help: 'JSON config file: these settings by name, plus "defaults" (per-request ECR settings) and "scoring" (ECR-SPEC section 4); a file holding only a scoring configuration (e.g. from ecr calibrate --out) is taken as "scoring"',
  },
  {
    key: 'apiKeys',
    flag: 'api-key',
    env: 'ECR_API_KEYS',
    kind: 'list',
    arg: 'KEY',
    help: 'accepted client key (Authorization: Bearer); repeat for several; env: comma-separated, no empty entries (default: no auth)',
  },
  { key: 'upstreamApiKey', flag: 'upstream-api-key', env: 'ECR_UPSTREAM_API_KEY', kind: 'string', arg: 'KEY', help: 'bearer token sent to the upstream' },
  {
    key: 'embeddingModel',
    flag: 'embedding-model',
    env: 'ECR_EMBEDDING_MODEL',
    kind: 'string',
    arg: 'M',
    help: 'upstream embedding model for the signals (default: built-in hashing embedder, no calls)',
  },
  { key: 'ecrAll', flag: 'ecr-all', env: 'ECR_ALL', kind: 'boolean', help: 'run ECR for every model, not only ecr/<model> (default off)' },
  {
    key: 'metricsAuth',
    flag: 'metrics-auth',
    env: 'ECR_METRICS_AUTH',
    kind: 'boolean',
    help: '/metrics requires an API key too (default: open, like the health endpoints)',
  },
  { key: 'bodyLimit', flag: 'body-limit', env: 'ECR_BODY_LIMIT', kind: 'int', min: 1024, help: 'largest request body in bytes (default 1048576)' },
  { key: 'maxK', flag: 'max-k', env: 'ECR_MAX_K', kind: 'int', min: 1, max: 256, help: 'largest k a request may ask for (default 16)' },
  { key: 'maxHorizon', flag: 'max-horizon', env: 'ECR_MAX_HORIZON', kind: 'int', min: 1, max: 15, help: 'largest horizon a request may ask for (default 4)' },
  {
    key: 'maxConcurrent',
    flag: 'max-concurrent',
    env: 'ECR_MAX_CONCURRENT',
    kind: 'int',
    min: 1,
    help: 'ECR requests in progress at once; more get 429 with Retry-After (default 64)',
  },
  {
    key: 'maxParallel',
    flag: 'max-parallel',
    env: 'ECR_MAX_PARALLEL',
    kind: 'int',
    min: 1,
    help: 'upstream calls in flight for all ECR requests together (default 256)',
  },
  {
    key: 'upstreamTimeout',
    flag: 'upstream-timeout',
    env: 'ECR_UPSTREAM_TIMEOUT',
    kind: 'int',
    min: 1,
    arg: 'MS',
    help: 'per-call upstream timeout in ms (default 60000; for pass-through: until the response headers)',
  },
  {
    key: 'retries',
    flag: 'retries',
    env: 'ECR_RETRIES',
    kind: 'int',
    min: 0,
    max: 20,
    help: 'retries of an ECR upstream call on 429, 5xx and network errors (default 2)',
  },
  {
    key: 'shutdownTimeout',
    flag: 'shutdown-timeout',
    env: 'ECR_SHUTDOWN_TIMEOUT',
    kind: 'int',
    min: 0,
    arg: 'MS',
    help: 'on SIGTERM, how long in-flight requests may finish before they are cut (default 10000)',
  },
  {
    key: 'progressInterval',
    flag: 'progress-interval',
    env: 'ECR_PROGRESS_INTERVAL',
    kind: 'int',
    min: 1,
    arg: 'MS',
    help: 'streaming: an SSE progress comment this often while candidates are scored (default 2000)',
  },
  {
    key: 'cacheMaxBytes',
    flag: 'cache-max-bytes',
    env: 'ECR_CACHE_MAX_BYTES',
    kind: 'int',
    min: 1024,
    arg: 'N',
    help: 'approximate bytes each of the 4 pipeline caches may hold, least recently used out first (default: 1/32 of the memory this process may use, its cgroup limit or the total, between 32 and 512 MiB)',
  },
  {
    key: 'cacheTtl',
    flag: 'cache-ttl',
    env: 'ECR_CACHE_TTL',
    kind: 'int',
    min: 0,
    arg: 'MS',
    help: 'time to live of a cache entry in ms (default 0 = none: entries leave by the size bound only)',
  },
  {
    key: 'redis',
    flag: 'redis',
    env: 'ECR_REDIS_URL',
    kind: 'string',
    arg: 'URL',
    help: 'shared cache tier behind the in-process caches: redis://[user:pass@]host:port[/db], rediss:// (TLS) or redis+sentinel://host:port[,...]/<master>; no Cluster (default: none)',
  },
  {
    key: 'redisTtl',
    flag: 'redis-ttl',
    env: 'ECR_REDIS_TTL',
    kind: 'int',
    min: 1,
    arg: 'SECONDS',
    help: 'time to live of a Redis cache entry in seconds, unless a request sets ecr.cache.ttl (default 86400 = 1 day)',
  },
  {
    key: 'redisTimeout',
    flag: 'redis-timeout',
    env: 'ECR_REDIS_TIMEOUT',
    kind: 'int',
    min: 1,
    arg: 'MS',
    help: 'limit of one Redis operation; past it the request is served without Redis (default 100)',
  },
  {
    key: 'redisLock',
    flag: 'redis-lock',
    env: 'ECR_REDIS_LOCK',
    kind: 'int',
    min: 1,
    arg: 'MS',
    help: 'life of a cross-instance single-flight lock, and the longest another instance waits for its value (default 30000)',
  },
  {
    key: 'temperature',
    flag: 'temperature',
    env: 'ECR_TEMPERATURE',
    kind: 'number',
    min: 0,
    max: 2,
    help: 'candidate temperature when the request gives none (default 0.8)',
  },
  { key: 'logPrompts', flag: 'log-prompts', env: 'ECR_LOG_PROMPTS', kind: 'boolean', help: 'put the request messages in the access log (default: never)' },
  {
    key: 'auditLog',
    flag: 'audit-log',
    env: 'ECR_AUDIT_LOG',
    kind: 'string',
    arg: 'FILE',
    help: 'append one JSONL line per scored candidate (metrics, CCI, selection; no prompt text unless --log-prompts) for ecr calibrate / ecr maturity; SIGHUP reopens it',
  },
  {
    key: 'logLevel',
    flag: 'log-level',
    env: 'ECR_LOG_LEVEL',
    kind: 'string',
    arg: 'LEVEL',
    help: 'fatal | error | warn | info | debug | silent (default info)',
  },
];

const DEFAULTS: Omit<ServeSettings, 'upstream'> = {
  port: 8080,
  host: '127.0.0.1',
  apiKeys: [],
  ecrAll: false,
  metricsAuth: false,
  bodyLimit: 1024 * 1024,
  maxK: 16,
  maxHorizon: 4,
  maxConcurrent: 64,
  maxParallel: 256,
  upstreamTimeout: 60_000,
  retries: 2,
  shutdownTimeout: 10_000,
  progressInterval: 2000,
  // Sized to the machine when the settings are resolved (defaultCacheBytes).
  cacheMaxBytes: 0,
  cacheTtl: 0,
  redisTtl: REDIS_DEFAULTS.ttlSeconds,
  redisTimeout: REDIS_DEFAULTS.timeoutMs,
  redisLock: REDIS_DEFAULTS.lockMs,
  temperature: 0.8,
  logPrompts: false,
  logLevel: 'info',
};

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

export interface ServeConfig extends ServeSettings {
  /** Per-request ECR settings in force when a request gives none (config file "defaults"). */
  defaults: EcrSettings;
  /** Scoring configuration (config file "scoring"), before per-request tau/preset/weights. */
  scoring: EcrConfig;
  /** Options of the backend instances that score (`ecr serve` fills them from ECR_WEBGPU_* and ECR_DEBUG); default: the defaults. */
  backendOptions?: BackendOptions;
}

export function usage(): string {
  const lines = SETTINGS.map((s) => {
    const left = `  --${s.flag}${s.kind === 'boolean' ? '' : ` ${s.arg ?? 'N'}`}`;
    return `${left.padEnd(28)}${s.help} [${s.env}]`;
  });
  return `usage: ecr serve --upstream URL [options]

An OpenAI-compatible gateway: POST /v1/chat/completions (model "ecr/<upstream-model>" runs ECR,
any other model is proxied unchanged), GET /v1/models, /health/liveliness, /health/readiness, /metrics.

${lines.join('\n')}
  -h, --help                  this text`;
}

function coerce(s: Setting, raw: unknown, where: string): unknown {
  const bad = (what: string) => new UsageError(`${where}: ${what}, got ${JSON.stringify(raw)}`);
  switch (s.kind) {
    case 'string':
      if (typeof raw !== 'string' || raw === '') throw bad('must be a non-empty string');
      return raw;
    case 'list': {
      // The only list is the API keys: a value never goes into a message. A list with an empty
      // entry ("k1,,k2", "k1,", " , ", "") is a configuration error, not fewer keys: it is what
      // "$KEY1,$KEY2" gives with a variable unset, and an empty list would turn auth off.
      const list = Array.isArray(raw) ? raw : typeof raw === 'string' ? raw.split(',').map((x) => x.trim()) : null;
      if (!list) throw new UsageError(`${where}: must be a list of keys`);
      const empty = list.findIndex((x) => typeof x !== 'string' || x.trim() === '');
      if (list.length === 0 || empty >= 0) {
        throw new UsageError(
          `${where}: ${list.length === 0 ? 'lists no key' : `entry ${empty + 1} of ${list.length} is empty`}: give at least one non-empty key${typeof raw === 'string' ? ' (comma-separated)' : ''}, or leave the setting out to run without auth`,
        );
      }
      return list;
    }
    case 'boolean':
      if (typeof raw === 'boolean') return raw;
      if (raw === 'true' || raw === '1') return true;
      if (raw === 'false' || raw === '0' || raw === '') return false;
      throw bad('must be true or false');
    case 'int':
    case 'number': {
      const x = typeof raw === 'number' ? raw : typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : NaN;
      if (!Number.isFinite(x) || (s.kind === 'int' && !Number.isInteger(x))) throw bad(`must be ${s.kind === 'int' ? 'an integer' : 'a number'}`);
      if ((s.min !== undefined && x < s.min) || (s.max !== undefined && x > s.max)) throw bad(`must be in ${s.min ?? '-inf'}..${s.max ?? 'inf'}`);
      return x;
    }
  }
}

function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new UsageError(`--config: cannot read ${path}: ${(e as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new UsageError(`--config: ${path} is not JSON: ${(e as Error).message}`);
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new UsageError(`--config: ${path} must hold a JSON object`);
  return json as Record<string, unknown>;
}

/** Resolves the settings from argv, the environment and the config file; throws UsageError naming the source and key. */
export function resolveServeConfig(argv: string[], env: NodeJS.ProcessEnv = process.env): ServeConfig | 'help' {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        ...Object.fromEntries(
          SETTINGS.map((s) => [
            s.flag,
            s.kind === 'boolean' ? { type: 'boolean' as const } : s.kind === 'list' ? { type: 'string' as const, multiple: true } : { type: 'string' as const },
          ]),
        ),
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (e) {
    throw new UsageError(`${(e as Error).message}\n${usage()}`);
  }
  const flags = parsed.values as Record<string, unknown>;
  if (flags.help) return 'help';
  const configPath = (flags.config as string | undefined) ?? env.ECR_CONFIG;
  let file = configPath ? readConfigFile(configPath) : {};
  // A scoring configuration on its own (what ecr calibrate --out writes, or what ecr score reads)
  // is the server's "scoring": the same file serves ecr score, ecr run and ecr serve.
  const keys = Object.keys(file);
  if (keys.length > 0 && keys.every((k) => CONFIG_KEYS.has(k))) file = { scoring: file };
  const known = new Set<string>([...SETTINGS.map((s) => s.key as string), 'defaults', 'scoring']);
  for (const k of Object.keys(file)) {
    if (!known.has(k)) throw new UsageError(`--config ${configPath}: unknown key "${k}" (known: ${[...known].join(', ')})`);
  }
  const out: Record<string, unknown> = { ...DEFAULTS, cacheMaxBytes: defaultCacheBytes() };
  for (const s of SETTINGS) {
    if (flags[s.flag] !== undefined) out[s.key] = coerce(s, flags[s.flag], `--${s.flag}`);
    else if (env[s.env] !== undefined) out[s.key] = coerce(s, env[s.env], s.env);
    else if (file[s.key] !== undefined) out[s.key] = coerce(s, file[s.key], `--config ${configPath}: "${s.key}"`);
  }
  if (out.upstream === undefined) throw new UsageError(`no upstream: pass --upstream URL or set ECR_UPSTREAM\n${usage()}`);
  let url: URL;
  try {
    url = new URL(out.upstream as string);
  } catch {
    throw new UsageError(`--upstream: not a URL: ${JSON.stringify(redactUrl(out.upstream as string))}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError(`--upstream: must be http(s), got ${url.protocol}`);
  out.upstream = joinUrlPath(out.upstream as string, '');
  if (out.redis !== undefined) checkRedisUrlOption(out.redis as string, '--redis');
  if (!LOG_LEVELS.includes(out.logLevel as string))
    throw new UsageError(`--log-level: must be one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(out.logLevel)}`);
  const settings = out as unknown as ServeSettings;

  let scoring: EcrConfig = {};
  if (file.scoring !== undefined) {
    try {
      resolveConfig(file.scoring);
    } catch (e) {
      if (e instanceof ConfigError) throw new UsageError(`--config ${configPath}: "scoring": ${e.message}`);
      throw e;
    }
    scoring = file.scoring as EcrConfig;
  }
  let defaults: EcrSettings = {};
  if (file.defaults !== undefined) {
    try {
      defaults = parseEcrSettings(file.defaults, { maxK: settings.maxK, maxHorizon: settings.maxHorizon }, 'defaults');
    } catch (e) {
      if (e instanceof ApiError) throw new UsageError(`--config ${configPath}: ${e.message}`);
      throw e;
    }
  }
  return { ...settings, defaults, scoring };
}
