/**
 * Graceful shutdown: on SIGTERM (or SIGINT) stop accepting (Fastify answers 503 to requests that
 * arrive on open connections, and closes idle ones), let in-flight requests finish, and past the
 * deadline cut what is left: its upstream calls are aborted and it answers 503 with an OpenAI
 * error (a stream already under way ends with an `error` event), and once those answers are out
 * (or CUT_GRACE_MS later, for a client that does not read) every connection is closed.
 */
import type { FastifyInstance } from 'fastify';
import type { Gateway } from './gateway.js';

/** How long cut requests may take to send their 503 before their connections are closed regardless. */
const CUT_GRACE_MS = 1000;

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
  app.log.info({ reason, in_flight: gw.inFlightCount, deadline_ms: gw.config.shutdownTimeout }, 'shutting down: no new requests, finishing in-flight ones');
  let grace: NodeJS.Timeout | undefined;
  const deadline = setTimeout(() => {
    app.log.warn({ cancelled: gw.inFlightCount }, 'shutdown deadline passed: cancelling in-flight requests (they answer 503)');
    const closeAll = () => {
      clearTimeout(grace);
      app.server.closeAllConnections();
    };
    grace = setTimeout(closeAll, CUT_GRACE_MS);
    void gw.cutInFlight().then(closeAll);
  }, gw.config.shutdownTimeout);
  try {
    await app.close();
  } finally {
    clearTimeout(deadline);
    clearTimeout(grace);
  }
  app.log.info('shut down');
}
