/**
 * The one Redis URL parser of the cache (--redis) and the queue (--queue), and the database index
 * checked against real servers: a database the server refuses is a configuration error for the
 * cache tier, `ecr run` and `ecr serve` (the queue's commands: test/score-queue.test.ts), never a
 * silent fall back to database 0.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkDatabase, checkRedisUrlOption, parseRedisUrl, RedisDatabaseError } from '../src/cache/redis-url.js';
import { checkQueueUrl, redactUrl } from '../src/queue/queue-url.js';
import { RedisStore } from '../src/cache/redis-store.js';
import { resolveServeConfig } from '../src/server/config.js';
import { startGateway } from '../src/server/app.js';
import { runCli } from './helpers/cli.js';
import { freePort, redisGate, sharedRedis, startRedisServer, type RedisServer } from './helpers/redis-server.js';

const gate = redisGate();

describe('parseRedisUrl', () => {
  it('takes the database index from the path as a decimal number, and refuses anything else', () => {
    expect(parseRedisUrl('redis://h:1/15')).toEqual({ host: 'h', port: 1, db: 15 });
    expect(parseRedisUrl('redis://h:1/')).toEqual({ host: 'h', port: 1 });
    expect(parseRedisUrl('redis+sentinel://h:1/m/3')).toMatchObject({ name: 'm', db: 3 });
    for (const bad of ['abc', '-1', '1.5', '0x1', '99999999999', '1/2']) {
      expect(() => parseRedisUrl(`redis://h:1/${bad}`), bad).toThrow(/the path is the database index, a number from 0 to 15 on a default server/);
    }
    expect(() => parseRedisUrl('redis+sentinel://h:1/m/x')).toThrow(/database index.*got "x"/);
    expect(() => parseRedisUrl('redis://h:1/0?family=6')).toThrow(/query parameters are not supported/);
  });

  it('never shows a password in its messages', () => {
    for (const url of ['redis://:hunter2@h:1/abc', 'redis+sentinel://u:hunter2@h:1/m/x', 'http://u:hunter2@h:1']) {
      let message = '';
      try {
        parseRedisUrl(url);
      } catch (err) {
        message = (err as Error).message;
      }
      expect(message).toContain(':***@');
      expect(message).not.toContain('hunter2');
    }
  });

  it('the queue takes every URL the cache takes, Sentinel included, and names its flag', () => {
    const sentinel = 'redis+sentinel://:pw@10.0.0.1:26379,10.0.0.2:26379/mymaster/2';
    expect(checkQueueUrl(sentinel)).toEqual(parseRedisUrl(sentinel));
    expect(checkQueueUrl('rediss://u:pw@q.example:6380/1')).toEqual({ host: 'q.example', port: 6380, username: 'u', password: 'pw', db: 1, tls: {} });
    expect(() => checkQueueUrl('redis://h:1/abc')).toThrow(/^--queue: redis URL "redis:\/\/h:1\/abc": the path is the database index/);
    expect(redactUrl('redis+sentinel://:pw@10.0.0.1:26379/m')).toBe('redis+sentinel://:***@10.0.0.1:26379/m');
  });

  it('--redis (ecr run, ecr serve) and --queue go through one check: the same URLs, the same words', () => {
    const sentinel = 'redis+sentinel://:pw@10.0.0.1:26379,10.0.0.2:26379/mymaster/2';
    expect(resolveServeConfig(['--upstream', 'http://127.0.0.1:9', '--redis', sentinel], {})).toMatchObject({ redis: sentinel });
    expect(checkRedisUrlOption(sentinel, '--redis')).toEqual(checkQueueUrl(sentinel));
    for (const bad of ['redis://h:1/abc', 'redis-cluster://h:7000', 'redis+sentinel://h/m', 'redis://:hunter2@h:1/0?x=1']) {
      const words = (f: () => unknown) => {
        try {
          f();
        } catch (err) {
          return (err as Error).message;
        }
        return null;
      };
      const queue = words(() => checkQueueUrl(bad));
      expect(queue).toMatch(/^--queue: redis URL /);
      expect(queue).not.toContain('hunter2');
      expect(words(() => resolveServeConfig(['--upstream', 'http://127.0.0.1:9', '--redis', bad], {}))).toBe(queue!.replace(/^--queue/, '--redis'));
      expect(words(() => checkRedisUrlOption(bad, '--redis'))).toBe(queue!.replace(/^--queue/, '--redis'));
    }
  });
});

describe.skipIf(!gate.available)('the database index against a server', () => {
  let shared: { url: string; stop: () => Promise<void> };
  let odd: RedisServer;
  const clients: Redis[] = [];
  const client = (url: string) => {
    const c = new Redis(url);
    clients.push(c);
    return c;
  };
  beforeAll(async () => {
    shared = await sharedRedis();
    // 32 databases, and CONFIG renamed away as hosted services do.
    odd = await startRedisServer(['--databases', '32', '--rename-command', 'CONFIG', 'hidden-config']);
  });
  afterAll(async () => {
    for (const c of clients) c.disconnect();
    await odd?.stop();
    await shared?.stop();
  });

  it('is checked against CONFIG GET databases, and by SELECT where CONFIG is refused', async () => {
    const c = client(shared.url);
    await expect(checkDatabase(c, `${shared.url}/15`, 15)).resolves.toBeUndefined();
    await expect(checkDatabase(c, `${shared.url}/16`, 16)).rejects.toThrow(/the server has no database 16 \(it has 16 databases, 0 to 15\)/);
    const o = client(odd.url);
    // Not refused for being past the default 15: the server has 32.
    await expect(checkDatabase(o, `${odd.url}/20`, 20)).resolves.toBeUndefined();
    const refused = checkDatabase(o, `${odd.url}/32`, 32);
    await expect(refused).rejects.toBeInstanceOf(RedisDatabaseError);
    await expect(refused).rejects.toThrow(/no database 32 \(SELECT 32: ERR DB index is out of range; a default server has 16 databases, 0 to 15\)/);
  });

  it('RedisStore: a refused database turns the tier off and says why; nothing is read or written in database 0', async () => {
    const warnings: string[] = [];
    const store = new RedisStore({ url: `${shared.url}/99`, onWarn: (m) => warnings.push(m) });
    try {
      expect(await store.ready()).toBe(false);
      expect(store.configError).toBeInstanceOf(RedisDatabaseError);
      expect(store.configError!.message).toMatch(/the server has no database 99 \(it has 16 databases, 0 to 15\)/);
      expect(store.health()).toEqual({ state: 'degraded', reason: store.configError!.message });
      expect(store.usable).toBe(false);
      const key = `ecr:v1:test:db-refused-${Date.now()}`;
      expect(await store.lookup(key, true)).toEqual({ state: 'unavailable' });
      store.store(key, new Uint8Array([1, 2, 3]), 60_000);
      await store.idle();
      expect(await client(shared.url).exists(key, `${key}:lock`)).toBe(0);
      // The caller that waited in ready() reports the refusal; the store adds no line of its own.
      expect(warnings).toEqual([]);
    } finally {
      await store.close();
    }
  });

  it('ecr run and ecr serve refuse to start on a database the server does not have (exit 2, one line)', async () => {
    const run = runCli(['run', 'hello', '--base-url', `http://127.0.0.1:${await freePort()}/v1`, '--model', 'm', '--redis', `${shared.url}/99`]);
    expect(run.code, run.stderr).toBe(2);
    expect(run.stderr).toMatch(
      /^ecr run: redis URL "redis:\/\/[^"]+\/99": the server has no database 99 \(it has 16 databases, 0 to 15\); fix the URL's \/db \(none means 0\)\n$/,
    );
    const config = resolveServeConfig(
      ['--upstream', `http://127.0.0.1:${await freePort()}/v1`, '--port', '0', '--log-level', 'silent', '--redis', `${shared.url}/99`],
      {},
    );
    if (config === 'help') throw new Error('unexpected help');
    await expect(startGateway(config)).rejects.toThrow(/the server has no database 99/);
  });
});
