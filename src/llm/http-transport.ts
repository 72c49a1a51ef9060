/** POST with node:http/https on the shared keep-alive agents (keep-alive.ts says why not fetch). */
import http from 'node:http';
import https from 'node:https';
import { keepAliveAgents } from './keep-alive.js';

export interface HttpResponse {
  status: number;
  ok: boolean;
  body: string;
  header(name: string): string | null;
}

/**
 * `base` + `path`, the path going before the base's query: a base URL may carry one (Azure's
 * `?api-version=...`, a key some proxies take as a parameter), and `/chat/completions` belongs
 * to the path, not to that query's last value.
 */
export function joinUrlPath(base: string, path: string): string {
  const q = base.search(/[?#]/);
  const head = q < 0 ? base : base.slice(0, q);
  return head.replace(/\/+$/, '') + path + (q < 0 ? '' : base.slice(q));
}

/** The whole exchange took longer than the caller's `timeoutMs`. */
export class HttpTimeoutError extends Error {
  constructor(readonly timeoutMs: number) {
    super(`no complete response within ${timeoutMs} ms`);
    this.name = 'HttpTimeoutError';
  }
}

export interface PostOptions {
  /** Cancels the request; the promise rejects with the signal's reason. */
  signal?: AbortSignal;
  /** Limit for the whole exchange (a plain timer: cheaper per call than AbortSignal.timeout + any). */
  timeoutMs?: number;
}

/** Sends `body` and resolves with the whole response; rejects on network errors, abort and timeout. */
export function postText(url: string, headers: Record<string, string>, body: string, options: PostOptions = {}): Promise<HttpResponse> {
  const { signal, timeoutMs } = options;
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const target = new URL(url);
    const mod = target.protocol === 'https:' ? https : target.protocol === 'http:' ? http : null;
    if (!mod) {
      reject(new TypeError(`unsupported protocol ${target.protocol} in ${url}`));
      return;
    }
    const payload = Buffer.from(body, 'utf8');
    const req = mod.request(
      target,
      {
        method: 'POST',
        agent: keepAliveAgents[target.protocol as 'http:' | 'https:'],
        headers: { ...headers, 'content-length': String(payload.length) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', fail);
        res.on('end', () => {
          cleanup();
          const status = res.statusCode ?? 0;
          resolve({
            status,
            ok: status >= 200 && status < 300,
            body: Buffer.concat(chunks).toString('utf8'),
            header: (name) => {
              const v = res.headers[name.toLowerCase()];
              return v === undefined ? null : Array.isArray(v) ? v.join(', ') : v;
            },
          });
        });
      },
    );
    const onAbort = () => req.destroy(signal!.reason instanceof Error ? signal!.reason : new Error('aborted'));
    let timedOut: HttpTimeoutError | null = null;
    const timer =
      timeoutMs !== undefined
        ? setTimeout(() => {
            timedOut = new HttpTimeoutError(timeoutMs);
            req.destroy(timedOut);
          }, timeoutMs)
        : null;
    function cleanup() {
      if (timer) clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    }
    function fail(err: Error) {
      cleanup();
      reject(signal?.aborted ? signal.reason : (timedOut ?? err));
    }
    signal?.addEventListener('abort', onAbort, { once: true });
    req.on('error', fail);
    req.end(payload);
  });
}
