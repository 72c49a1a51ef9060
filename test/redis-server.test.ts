/**
 * The Redis the tests run against is real: the shared server answers, and a private one can be
 * stopped and started again on the same port (what the degraded-cache tests rely on).
 */
import { describe, expect, it } from 'vitest';
import { createConnection } from 'node:net';
import { redisGate, sharedRedis, startRedisServer } from './helpers/redis-server.js';

const gate = redisGate();

function ping(url: string): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const sock = createConnection({ host: hostname, port: Number(port) });
    let buf = '';
    sock.once('error', reject);
    sock.on('data', (d) => {
      buf += d.toString();
      if (buf.includes('\r\n')) {
        sock.destroy();
        resolve(buf.trim());
      }
    });
    sock.once('connect', () => sock.write('PING\r\n'));
  });
}

describe.skipIf(!gate.available)("the tests' Redis server", () => {
  it('the shared server answers PING', async () => {
    const redis = await sharedRedis();
    try {
      expect(await ping(redis.url)).toBe('+PONG');
    } finally {
      await redis.stop();
    }
  });

  it('a private server stops (connections refused) and starts again on the same port', async () => {
    const server = await startRedisServer();
    try {
      expect(await ping(server.url)).toBe('+PONG');
      await server.stop();
      await expect(ping(server.url)).rejects.toThrow(/ECONNREFUSED/);
      await server.start();
      expect(await ping(server.url)).toBe('+PONG');
    } finally {
      await server.stop();
    }
  });
});
