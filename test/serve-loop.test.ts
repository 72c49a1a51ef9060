/**
 * A gateway whose upstream leads back to itself: refused at start when the upstream is its own
 * listening address, and answered 508 Loop Detected at run time (through a TCP forwarder, which
 * no start-time check can see through), while two gateways chained on purpose still work.
 */
import net from 'node:net';
import { Writable } from 'node:stream';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { LoopbackServer } from '../src/testing/loopback-server.js';
import { reachesSelf, viaNames } from '../src/server/loop.js';
import { resolveServeConfig } from '../src/server/config.js';
import { startGateway } from '../src/server/app.js';
import { bodyOf, errorOf, type EcrCompletion, type Readiness } from './helpers/http.js';

type Started = Awaited<ReturnType<typeof startGateway>>;

let upstream: LoopbackServer;
const gateways: Started[] = [];
const forwarders: net.Server[] = [];

async function gateway(url: string, extra: string[] = [], logs?: string[]): Promise<Started> {
  const config = resolveServeConfig(['--upstream', url, '--port', '0', '--retries', '0', '--log-level', logs ? 'info' : 'silent', ...extra], {});
  if (config === 'help') throw new Error('help');
  const logStream = logs
    ? new Writable({
        write(chunk, _e, cb) {
          logs.push(...String(chunk).split('\n').filter(Boolean));
          cb();
        },
      })
    : undefined;
  const g = await startGateway(config, { logStream });
  gateways.push(g);
  return g;
}

/** A plain TCP forwarder (a load balancer, say) to a port set later: the upstream URL names it, not the gateway. */
async function forwarder(): Promise<{ url: string; to: (port: number) => void }> {
  let target = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const up = net.connect(target, '127.0.0.1');
    for (const s of [client, up]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {
        client.destroy();
        up.destroy();
      });
    }
    client.pipe(up).pipe(client);
  });
  server.on('close', () => {
    for (const s of sockets) s.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  forwarders.push(server);
  return {
    url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}/v1`,
    to: (port) => {
      target = port;
    },
  };
}

const portOf = (g: Started) => Number(new URL(g.url).port);
const messages = [{ role: 'user', content: 'Is the sky blue?' }];
const chat = (g: Started, body: Record<string, unknown>) =>
  fetch(`${g.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ messages, ...body }) });

beforeAll(async () => {
  upstream = await LoopbackServer.start();
});
afterAll(async () => {
  await upstream.close();
});
afterEach(async () => {
  for (const g of gateways.splice(0)) {
    g.app.server.closeAllConnections();
    await g.app.close();
  }
  for (const f of forwarders.splice(0)) f.close();
});

describe('loop detection', () => {
  it('a gateway reached again through its upstream answers 508 at once, for pass-through, ECR and --ecr-all', async () => {
    const f = await forwarder();
    const logs: string[] = [];
    const a = await gateway(f.url, [], logs);
    f.to(portOf(a));
    for (const body of [{ model: 'loop' }, { model: 'loop', stream: true }, { model: 'ecr/loop', ecr: { k: 2, horizon: 1 } }]) {
      logs.length = 0;
      const res = await chat(a, body);
      expect(res.status, JSON.stringify(body)).toBe(508);
      const error = await errorOf(res);
      expect(error.code).toBe('loop_detected');
      expect(error.message).toContain('loop detected');
      // The client's request and the one call that came back round: nothing more.
      await vi.waitFor(() => expect(logs.filter((l) => JSON.parse(l).msg === 'request').length).toBeGreaterThanOrEqual(2));
      expect(logs.filter((l) => JSON.parse(l).msg === 'request').map((l) => JSON.parse(l).status)).toEqual([508, 508]);
    }
    expect((await fetch(`${a.url}/v1/models`)).status).toBe(508);
    const ready = await fetch(`${a.url}/health/readiness`);
    expect(ready.status).toBe(503);
    expect((await bodyOf<Readiness>(ready)).upstream).toBe('HTTP 508');

    const all = await gateway(f.url, ['--ecr-all']);
    f.to(portOf(all));
    const res = await chat(all, { model: 'loop', ecr: { k: 2, horizon: 1 } });
    expect(res.status).toBe(508);
  });

  it('a loop through two gateways is found where it closes; two gateways chained on purpose both serve', async () => {
    // A -> forwarder -> B -> A: B passes A's Via entry on, A recognises itself.
    const f = await forwarder();
    const a = await gateway(f.url);
    for (const bArgs of [[], ['--ecr-all']]) {
      const b = await gateway(`${a.url}/v1`, bArgs);
      f.to(portOf(b));
      for (const body of [{ model: 'loop' }, { model: 'ecr/loop', ecr: { k: 2, horizon: 1 } }]) {
        const res = await chat(a, body);
        expect(res.status, `${bArgs.join(',')} ${JSON.stringify(body)}`).toBe(508);
        expect((await errorOf(res)).code).toBe('loop_detected');
      }
    }

    // client -> C -> D -> LLM: each adds its own entry; nothing is refused.
    const d = await gateway(upstream.url);
    const c = await gateway(`${d.url}/v1`);
    expect((await chat(c, { model: 'loop' })).status).toBe(200);
    const ecr = await chat(c, { model: 'ecr/loop', ecr: { k: 2, horizon: 1, fixedK: true } });
    expect(ecr.status).toBe(200);
    expect((await bodyOf<EcrCompletion>(ecr)).choices[0].message.content).toMatch(/^\[c:/);
    expect((await fetch(`${c.url}/v1/models`)).status).toBe(200);
    expect((await fetch(`${c.url}/health/readiness`)).status).toBe(200);
    // Pass-through into a gateway that runs ECR for every model.
    const dAll = await gateway(upstream.url, ['--ecr-all']);
    const toAll = await gateway(`${dAll.url}/v1`);
    const viaAll = await chat(toAll, { model: 'loop', ecr: { k: 2, horizon: 1, fixedK: true } });
    expect(viaAll.status).toBe(200);
    expect((await bodyOf<EcrCompletion>(viaAll)).ecr.candidates).toHaveLength(2);
  });

  it('a request that arrives with this gateway in its Via is refused; other Via entries are kept', async () => {
    const a = await gateway(upstream.url);
    const res = await fetch(`${a.url}/v1/models`, { headers: { via: `1.0 corp-proxy, 1.1 ${a.gateway.id}` } });
    expect(res.status).toBe(508);
    expect((await fetch(`${a.url}/v1/models`, { headers: { via: '1.0 corp-proxy' } })).status).toBe(200);
    expect(viaNames(['1.0 corp-proxy (Squid)', 'HTTP/1.1 ecr-abc, 1.1 ecr-def'])).toEqual(['corp-proxy', 'ecr-abc', 'ecr-def']);
  });
});

describe('an upstream that is the gateway itself, at start', () => {
  it('treats localhost, 127.0.0.1, 0.0.0.0 and ::1 as the kernel does, and only on the same port', () => {
    const local = new Set(['127.0.0.1', '::1', '10.1.2.3']);
    const on = (address: string) => [{ address, port: 8080 }];
    expect(reachesSelf(['127.0.0.1'], 8080, on('127.0.0.1'), local)).toBe(true);
    expect(reachesSelf(['0.0.0.0'], 8080, on('127.0.0.1'), local)).toBe(true);
    expect(reachesSelf(['::ffff:127.0.0.1'], 8080, on('127.0.0.1'), local)).toBe(true);
    expect(reachesSelf(['127.0.0.1', '::1'], 8080, on('::1'), local)).toBe(true); // localhost
    expect(reachesSelf(['::'], 8080, on('::1'), local)).toBe(true);
    expect(reachesSelf(['127.0.0.1'], 8080, on('0.0.0.0'), local)).toBe(true);
    expect(reachesSelf(['127.0.0.2'], 8080, on('0.0.0.0'), local)).toBe(true);
    expect(reachesSelf(['10.1.2.3'], 8080, on('0.0.0.0'), local)).toBe(true);
    expect(reachesSelf(['::1'], 8080, on('::'), local)).toBe(true);
    expect(reachesSelf(['10.1.2.3'], 8080, on('::'), local)).toBe(true);
    // Not this gateway: another port, another machine, another loopback address than the one bound.
    expect(reachesSelf(['127.0.0.1'], 8081, on('127.0.0.1'), local)).toBe(false);
    expect(reachesSelf(['10.9.9.9'], 8080, on('0.0.0.0'), local)).toBe(false);
    expect(reachesSelf(['127.0.0.2'], 8080, on('127.0.0.1'), local)).toBe(false);
    expect(reachesSelf(['::1'], 8080, on('0.0.0.0'), local)).toBe(false);
  });

  it('refuses to start, naming the upstream without its password, and releases the port', async () => {
    const probe = net.createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const port = (probe.address() as net.AddressInfo).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    for (const [host, target] of [
      ['127.0.0.1', 'localhost'],
      ['0.0.0.0', '127.0.0.1'],
      ['127.0.0.1', '0.0.0.0'],
      ['localhost', '127.0.0.1'],
    ]) {
      const config = resolveServeConfig(
        ['--upstream', `http://admin:pw-${port}@${target}:${port}/v1`, '--host', host, '--port', String(port), '--log-level', 'silent'],
        {},
      );
      if (config === 'help') throw new Error('help');
      const err = await startGateway(config).catch((e) => e);
      expect(err, `${host} <- ${target}`).toBeInstanceOf(Error);
      expect(err.message).toMatch(new RegExp(`^--upstream http://admin:\\*\\*\\*@\\S+ is this gateway itself \\(\\S+:${port}, where it listens\\)`));
    }
    // Each refusal released the port.
    const ok = await gateway(upstream.url, ['--port', String(port)]);
    expect(portOf(ok)).toBe(port);
  });
});
