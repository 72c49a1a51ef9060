/**
 * The keep-alive agents of every upstream exchange: the LLM calls (http-transport.ts) and the
 * gateway's pass-through and GETs (server/upstream.ts). node:http/https rather than the global
 * fetch (undici): measured on the loopback server, fetch costs roughly twice the CPU per request,
 * which on a 2-core machine with 64 calls in flight adds tens of milliseconds per round of a
 * trajectory, and is most of the pass-through overhead. Connections are pooled per origin and
 * reused across calls; LIFO keeps as few sockets open as the load needs, and picks the one least
 * likely to have been closed by the server for idleness.
 */
import http from 'node:http';
import https from 'node:https';

export const keepAliveAgents = {
  'http:': new http.Agent({ keepAlive: true, maxSockets: Infinity, scheduling: 'lifo' }),
  'https:': new https.Agent({ keepAlive: true, maxSockets: Infinity, scheduling: 'lifo' }),
};
