/**
 * Raw HTTP exchanges with the upstream outside the pipeline: pass-through (the body streamed back
 * as it arrives, never buffered or re-encoded) and small GETs (model list, readiness), on the
 * keep-alive agents the LLM calls use (src/llm/keep-alive.ts).
 */
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import { redactUrl } from '../core/redact-url.js';
import { textOf } from '../core/text.js';
import { keepAliveAgents } from '../llm/keep-alive.js';

export class UpstreamUnreachableError extends Error {
  /** The URL called, as it may be shown: without credentials. */
  readonly url: string;
  constructor(
    url: string,
    readonly detail: string,
    readonly timedOut: boolean,
  ) {
    const shown = redactUrl(url);
    super(timedOut ? `upstream ${shown} did not answer within the timeout` : `upstream ${shown} unreachable: ${detail}`);
    this.url = shown;
  }
}

export interface UpstreamRequest {
  method: 'GET' | 'POST';
  url: string;
  headers: Record<string, string>;
  body?: Buffer;
  /** Until the response headers arrive; the body may then take as long as it takes (streaming). */
  timeoutMs: number;
  signal?: AbortSignal;
}

/** Resolves with the upstream's response (body not yet read) once its headers arrive. */
export function requestUpstream(r: UpstreamRequest): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const target = new URL(r.url);
    const mod = target.protocol === 'https:' ? https : http;
    const headers: Record<string, string> = { ...r.headers };
    if (r.body) headers['content-length'] = String(r.body.length);
    const req = mod.request(target, { method: r.method, agent: keepAliveAgents[target.protocol as 'http:' | 'https:'], headers });
    let settled = false;
    const timer = setTimeout(() => {
      req.destroy(new UpstreamUnreachableError(r.url, 'timeout', true));
    }, r.timeoutMs);
    const onAbort = () => req.destroy(new Error('client went away'));
    r.signal?.addEventListener('abort', onAbort, { once: true });
    req.on('response', (res) => {
      settled = true;
      clearTimeout(timer);
      // The caller now owns the response; a later abort still tears the exchange down.
      res.on('close', () => r.signal?.removeEventListener('abort', onAbort));
      resolve(res);
    });
    req.on('error', (err) => {
      clearTimeout(timer);
      r.signal?.removeEventListener('abort', onAbort);
      if (settled) return;
      reject(err instanceof UpstreamUnreachableError ? err : new UpstreamUnreachableError(r.url, describe(err), false));
    });
    req.end(r.body);
  });
}

/** GET returning status and parsed JSON (null when the body is not JSON). */
export async function getJson(url: string, headers: Record<string, string>, timeoutMs: number): Promise<{ status: number; json: unknown }> {
  const res = await requestUpstream({ method: 'GET', url, headers: { accept: 'application/json', ...headers }, timeoutMs });
  const chunks: Buffer[] = [];
  for await (const c of res) chunks.push(c as Buffer);
  let json: unknown;
  try {
    json = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    json = null;
  }
  return { status: res.statusCode ?? 0, json };
}

function describe(err: unknown): string {
  const raw: unknown = (err as { code?: unknown })?.code;
  const code = raw ? textOf(raw) : '';
  const msg = err instanceof Error ? err.message : String(err);
  return code && !msg.includes(code) ? `${code}: ${msg}` : msg;
}
