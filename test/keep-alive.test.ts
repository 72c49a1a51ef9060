/**
 * One pool of keep-alive connections (src/llm/keep-alive.ts) for the LLM calls (postText) and the
 * gateway's own upstream exchanges (requestUpstream, getJson): a connection one opened is reused
 * by the other.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keepAliveAgents } from '../src/llm/keep-alive.js';
import { postText } from '../src/llm/http-transport.js';
import { getJson } from '../src/server/upstream.js';

let server: http.Server;
let url = '';
let connections = 0;
beforeAll(async () => {
  server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"ok":true}');
    });
  });
  server.on('connection', () => {
    connections++;
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

// The agent takes a socket back once the response is consumed, just after the caller sees its end.
const settled = () => new Promise((r) => setImmediate(r));

describe('the keep-alive agents', () => {
  it('keep a connection open after an LLM call, and the gateway upstream exchanges reuse it', async () => {
    const before = connections;
    const r = await postText(`${url}/v1/chat/completions`, { 'content-type': 'application/json' }, '{}');
    expect(r.status).toBe(200);
    await settled();
    expect(Object.keys(keepAliveAgents['http:'].freeSockets)).toHaveLength(1);
    expect(await getJson(`${url}/v1/models`, {}, 5000)).toEqual({ status: 200, json: { ok: true } });
    await settled();
    await postText(`${url}/v1/chat/completions`, {}, '{}');
    expect(connections - before).toBe(1);
  });
});
