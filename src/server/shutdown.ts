/**
 * Graceful shutdown: on SIGTERM (or SIGINT) stop accepting (Fastify answers 503 to requests that
 * arrive on open connections, and closes idle ones), let in-flight requests finish, and past the
 * deadline cancel what is left (its upstream calls are aborted) and close every connection.
 */
import type { FastifyInstance } from 'fastify';
import type { Gateway } from './gateway.js';

/** Resolves once the server is closed after a signal; `signals` are unhooked afterwards. */
export function closeOnSignal(app: FastifyInstance, gw: Gateway, signals: NodeJS.Signals[] = ['SIGTERM', 'SIGINT']): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => {
      for (const s of signals) process.removeListener(s, onSignal);
      void shutdown(app, gw, signal).then(() => resolve(signal));
    };
    for (const s of signals) process.on(s, onSignal);
  });
}

export async function shutdown(app: FastifyInstance, gw: Gateway, reason: string): Promise<void> {
  gw.closing = true;
  app.log.info({ reason, in_flight: gw.inFlight.size, deadline_ms: gw.config.shutdownTimeout }, 'shutting down: no new requests, finishing in-flight ones');
  const deadline = setTimeout(() => {
    app.log.warn({ cancelled: gw.inFlight.size }, 'shutdown deadline passed: cancelling in-flight requests');
    for (const a of gw.inFlight) a.abort(new Error('the server is shutting down'));
    app.server.closeAllConnections();
  }, gw.config.shutdownTimeout);
  try {
    await app.close();
  } finally {
    clearTimeout(deadline);
  }
  app.log.info('shut down');
}
