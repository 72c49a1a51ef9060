/**
 * The state one gateway shares across requests: settings, the root pipeline (whose caches and
 * upstream-call limit every request's derived pipeline shares), one provider per upstream model,
 * the concurrency gate and the in-flight requests that shutdown may have to cancel.
 */
import { LRUCache } from 'lru-cache';
import { RedisStore } from '../cache/redis-store.js';
import { OpenAICompatibleProvider } from '../llm/openai-compatible.js';
import { EcrPipeline } from '../pipeline/pipeline.js';
import { AuditLog } from './audit-log.js';
import { ConcurrencyGate } from './concurrency.js';
import type { ServeConfig } from './config.js';
import { newGatewayId } from './loop.js';
import { ShuttingDownError } from './errors.js';

/**
 * A running gateway's state. Callers of buildGateway/startGateway read `id`, `closing`,
 * `inFlightCount` and `config`, and pass it to shutdown/closeOnSignal; the rest is the server's
 * own (marked internal: left out of the published declarations).
 */
export class Gateway {
  /** This gateway's name in the Via header of its upstream calls (loop.ts). */
  readonly id = newGatewayId();
  /** @internal */
  readonly gate: ConcurrencyGate;
  /** Requests that call the upstream (ECR and pass-through), each until its response is over. */
  private readonly inFlight = new Map<AbortController, Promise<void>>();
  /** @internal */
  readonly root: EcrPipeline;
  /** The shared cache tier, when --redis is given. @internal */
  readonly redis: RedisStore | null;
  /** Where the Redis tier's rate-limited warnings go (the server's log, once it exists). @internal */
  warn: (message: string) => void = (m) => process.stderr.write(`ecr serve: ${m}\n`);
  private readonly providers = new LRUCache<string, OpenAICompatibleProvider>({ max: 256 });
  private readonly modelLabels = new Set<string>();
  /** The --audit-log file, when one is configured. @internal */
  readonly auditLog: AuditLog | null;
  /** True once shutdown has begun: no new requests are taken. */
  closing = false;

  /** @internal */
  constructor(
    readonly config: ServeConfig,
    onAuditLogError: (err: Error) => void = () => {},
  ) {
    this.auditLog = config.auditLog ? new AuditLog(config.auditLog, config.scoring, onAuditLogError) : null;
    this.gate = new ConcurrencyGate(config.maxConcurrent);
    this.redis = config.redis
      ? new RedisStore({
          url: config.redis,
          ttlSeconds: config.redisTtl,
          timeoutMs: config.redisTimeout,
          lockMs: config.redisLock,
          onWarn: (m) => this.warn(m),
        })
      : null;
    this.root = new EcrPipeline({
      provider: this.providerFor('default'),
      maxParallel: config.maxParallel,
      k: config.defaults.k ?? 4,
      horizon: config.defaults.horizon ?? 2,
      config: config.scoring,
      backendOptions: config.backendOptions,
      // Every request's pipeline shares these caches (derive), so their bound is the gateway's memory for them.
      cache: { maxBytes: config.cacheMaxBytes, ...(config.cacheTtl > 0 ? { ttlMs: config.cacheTtl } : {}), ...(this.redis ? { redis: this.redis } : {}) },
    });
  }

  /**
   * The provider for an upstream model, whose calls carry `via` (the request's Via chain, loop.ts).
   * Requests that came with no Via of their own (nearly all) share one cached provider per model.
   * @internal
   */
  providerFor(model: string, via = `1.1 ${this.id}`): OpenAICompatibleProvider {
    const make = () =>
      new OpenAICompatibleProvider({
        baseUrl: this.config.upstream,
        model,
        apiKey: this.config.upstreamApiKey,
        headers: { via },
        embeddingModel: this.config.embeddingModel,
        timeoutMs: this.config.upstreamTimeout,
        retry: { retries: this.config.retries },
      });
    if (via !== `1.1 ${this.id}`) return make();
    let p = this.providers.get(model);
    if (!p) {
      p = make();
      this.providers.set(model, p);
    }
    return p;
  }

  /**
   * An AbortController for one request's upstream work, tracked until the response's socket work
   * is over (`close`), so that shutdown can cut it and then wait for its error response to go out.
   * It aborts by itself when the client goes away first.
   * @internal
   */
  track(response: NodeJS.EventEmitter & { writableFinished: boolean }): AbortController {
    const abort = new AbortController();
    this.inFlight.set(
      abort,
      new Promise<void>((resolve) =>
        response.once('close', () => {
          if (!response.writableFinished) abort.abort(new Error('the client disconnected'));
          this.inFlight.delete(abort);
          resolve();
        }),
      ),
    );
    return abort;
  }

  /** Requests in progress that call the upstream. */
  get inFlightCount(): number {
    return this.inFlight.size;
  }

  /** Aborts every tracked request with ShuttingDownError; resolves once all their responses are over. @internal */
  cutInFlight(): Promise<void> {
    const reason = new ShuttingDownError();
    for (const a of this.inFlight.keys()) a.abort(reason);
    return Promise.all(this.inFlight.values()).then(() => undefined);
  }

  /** Headers for a call to the upstream: its key, else (a gateway without keys of its own) the client's. @internal */
  upstreamAuth(clientAuthorization: string | undefined): Record<string, string> {
    if (this.config.upstreamApiKey) return { authorization: `Bearer ${this.config.upstreamApiKey}` };
    if (this.config.apiKeys.length === 0 && clientAuthorization) return { authorization: clientAuthorization };
    return {};
  }

  /** A bounded label for metrics: the first 64 model names seen, then "other". @internal */
  modelLabel(model: string | undefined): string {
    if (!model) return 'none';
    if (this.modelLabels.has(model)) return model;
    if (this.modelLabels.size < 64) {
      this.modelLabels.add(model);
      return model;
    }
    return 'other';
  }
}
