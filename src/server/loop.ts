/**
 * A gateway must never be its own upstream: each request would call the gateway again, without
 * end (one client request once reached 1,168 requests in flight). Two guards:
 *
 * - At run time, every call to the upstream carries a `Via` header (RFC 9110 7.6.3) naming this
 *   gateway by a random per-instance id, after the entries the request arrived with; a request
 *   whose `Via` already names this gateway has come round a loop and gets 508 Loop Detected.
 *   Gateways chained on purpose (A -> B -> LLM) each add their own entry and pass.
 * - At start, an upstream whose address is the one the gateway listens on is a configuration
 *   error, found before any request (localhost, 127.0.0.1, 0.0.0.0, ::1 and the machine's own
 *   addresses compared as the kernel would route them).
 */
import { randomUUID } from 'node:crypto';
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import type { FastifyInstance } from 'fastify';
import { ApiError } from './errors.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The Via header for this request's upstream calls: the entries it came with, then this gateway's. */
    via: string;
  }
}

/** A gateway's name in Via entries: `ecr-` and 16 hex digits, new for every gateway instance. */
export function newGatewayId(): string {
  return `ecr-${randomUUID().replace(/-/g, '').slice(0, 16)}`;
}

/** The `received-by` names of a Via header (`1.1 proxy-a, HTTP/1.1 ecr-xyz (comment)`). */
export function viaNames(header: string | string[] | undefined): string[] {
  const text = Array.isArray(header) ? header.join(',') : (header ?? '');
  return text
    .split(',')
    .map((entry) => entry.trim().split(/\s+/)[1])
    .filter((name): name is string => !!name);
}

/** Refuses a request that already passed through this gateway; sets `request.via` for the rest. */
export function registerLoopGuard(app: FastifyInstance, gatewayId: string): void {
  const own = `1.1 ${gatewayId}`;
  app.decorateRequest('via', '');
  app.addHook('onRequest', async (request) => {
    const incoming = request.headers.via;
    if (viaNames(incoming).includes(gatewayId)) {
      throw new ApiError(
        508,
        'upstream_error',
        `loop detected: this request already passed through this gateway (${gatewayId}); its upstream leads back to itself`,
        null,
        'loop_detected',
      );
    }
    const chain = Array.isArray(incoming) ? incoming.join(', ') : incoming;
    request.via = chain ? `${chain}, ${own}` : own;
  });
}

export interface BoundAddress {
  address: string;
  port: number;
}

/** How the kernel treats a connect target: 0.0.0.0 and :: reach the loopback; v4-mapped v6 is v4. */
function normalize(address: string): string {
  const a = address
    .toLowerCase()
    .replace(/^\[|\]$/g, '')
    .replace(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/, '$1');
  if (a === '0.0.0.0') return '127.0.0.1';
  if (a === '::') return '::1';
  return a;
}

const isLoopback = (a: string) => a === '::1' || /^127\./.test(a);

/**
 * Whether connecting to one of `targets` (the upstream host's addresses) on `port` reaches one
 * of the gateway's listening sockets. `local` are this machine's interface addresses, which a
 * socket on a wildcard address (0.0.0.0, ::) also answers on.
 */
export function reachesSelf(targets: readonly string[], port: number, bound: readonly BoundAddress[], local: ReadonlySet<string>): boolean {
  const want = targets.map(normalize);
  return bound.some((b) => {
    if (b.port !== port) return false;
    const at = b.address.toLowerCase();
    if (at === '0.0.0.0') return want.some((a) => isIP(a) === 4 && (isLoopback(a) || local.has(a)));
    if (at === '::') return want.some((a) => isLoopback(a) || local.has(a));
    return want.includes(normalize(at));
  });
}

/** The upstream's host and port when they are this gateway's own listening address, else null. */
export async function upstreamIsSelf(upstream: string, bound: readonly BoundAddress[]): Promise<string | null> {
  const url = new URL(upstream);
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const port = url.port !== '' ? Number(url.port) : url.protocol === 'https:' ? 443 : 80;
  if (!bound.some((b) => b.port === port)) return null;
  let targets: string[];
  if (isIP(host)) targets = [host];
  else {
    // A name that does not resolve now cannot be this gateway now; the runtime guard remains.
    try {
      targets = (await lookup(host, { all: true })).map((r) => r.address);
    } catch {
      return null;
    }
  }
  const local = new Set(Object.values(networkInterfaces()).flatMap((list) => (list ?? []).map((i) => normalize(i.address))));
  return reachesSelf(targets, port, bound, local) ? `${url.hostname}:${port}` : null;
}
