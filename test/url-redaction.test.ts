/**
 * Upstream URLs are shown without their credentials: userinfo and secret-looking query parameters
 * are masked in every surface a URL can reach (error bodies, SSE error events, readiness, the
 * access and startup log, stderr, /metrics, `ecr run`'s messages and --json output).
 */
import { spawn } from 'node:child_process';
import { Writable } from 'node:stream';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { LoopbackServer } from '../src/testing/loopback-server.js';
import { redactUrl, redactUrlsIn } from '../src/core/redact-url.js';
import { resolveServeConfig } from '../src/server/config.js';
import { startGateway } from '../src/server/app.js';
import { CLI, ROOT, runCli } from './helpers/cli.js';

describe('redactUrl', () => {
  it('masks the password (or a lone username), and the values of secret-looking query parameters', () => {
    const cases: Array<[string, string]> = [
      ['http://admin:s3cretpw@host:8080/v1', 'http://admin:***@host:8080/v1'],
      ['https://sk-abc123@api.example.com/v1', 'https://***@api.example.com/v1'],
      ['http://u:p@ss:w@rd@host/v1', 'http://u:***@host/v1'],
      ['http://u:p?ss#w@host/v1', 'http://u:***@host/v1'],
      ['redis+sentinel://:pw@h1:26379,h2:26379/mymaster', 'redis+sentinel://:***@h1:26379,h2:26379/mymaster'],
      [
        'https://h/v1?api-version=2024-06-01&api_key=abc&X-Amz-Signature=f00&sig=1&token=t&Password=p&apiKey=k#frag',
        'https://h/v1?api-version=2024-06-01&api_key=***&X-Amz-Signature=***&sig=***&token=***&Password=***&apiKey=***#frag',
      ],
      ['http://h/v1?access_token=a;client_secret=b&auth=c&model=m', 'http://h/v1?access_token=***;client_secret=***&auth=***&model=m'],
      ['http://host/v1?q=a@b', 'http://host/v1?q=a@b'],
      ['http://127.0.0.1:11434/v1', 'http://127.0.0.1:11434/v1'],
      ['not a url', 'not a url'],
    ];
    for (const [url, shown] of cases) {
      expect(redactUrl(url), url).toBe(shown);
      expect(redactUrl(shown), `idempotent: ${shown}`).toBe(shown);
    }
    expect(redactUrlsIn('generate call to http://a:b@h/v1/chat/completions failed: "https://h/x?key=k" down')).toBe(
      'generate call to http://a:***@h/v1/chat/completions failed: "https://h/x?key=***" down',
    );
  });
});

let upstream: LoopbackServer;
let deadPort: number;
beforeAll(async () => {
  upstream = await LoopbackServer.start();
  const dead = await LoopbackServer.start();
  deadPort = dead.port;
  await dead.close();
});
afterAll(async () => {
  await upstream.close();
});

const SECRETS = { userinfo: 's3cretpw', query: 's3cretq' };

describe('a credentialed upstream URL is never shown', () => {
  it.each([
    ['userinfo', () => `http://admin:${SECRETS.userinfo}@127.0.0.1:${deadPort}/v1`, 'admin:***@'],
    ['query', () => `http://127.0.0.1:${deadPort}/v1?api-version=2024-06-01&api_key=${SECRETS.query}`, 'api_key=***'],
  ] as const)(
    'ecr serve with the upstream down (%s): readiness, ECR and pass-through errors, SSE, models, metrics, logs, stderr',
    async (which, url, masked) => {
      const secret = SECRETS[which];
      const child = spawn(
        process.execPath,
        [CLI, 'serve', '--upstream', url(), '--port', '0', '--api-key', 'k1', '--retries', '0', '--progress-interval', '1'],
        { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let stdout = '';
      let stderr = '';
      child.stderr.on('data', (d) => {
        stderr += d;
      });
      const exit = new Promise<number | null>((resolve) => child.once('exit', resolve));
      onTestFinished(() => {
        if (child.exitCode === null) child.kill('SIGKILL');
      });
      const base = await new Promise<string>((resolve, reject) => {
        createInterface({ input: child.stdout }).on('line', (l) => {
          stdout += `${l}\n`;
          const j = JSON.parse(l);
          if (j.msg === 'ecr serve listening') resolve(j.url);
        });
        void exit.then((code) => reject(new Error(`exited ${code}: ${stderr}`)));
      });
      const seen: string[] = [];
      const call = async (path: string, body?: unknown) => {
        const res = await fetch(`${base}${path}`, {
          method: body ? 'POST' : 'GET',
          headers: { authorization: 'Bearer k1', ...(body ? { 'content-type': 'application/json' } : {}) },
          body: body ? JSON.stringify(body) : undefined,
        });
        const text = await res.text();
        seen.push(`${res.status} ${JSON.stringify([...res.headers])} ${text}`);
        return { status: res.status, text };
      };
      const messages = [{ role: 'user', content: 'Is the sky blue?' }];
      const ready = await call('/health/readiness');
      expect(ready.status).toBe(503);
      expect(ready.text).toContain(masked);
      expect((await call('/v1/chat/completions', { model: 'ecr/loop', messages, ecr: { k: 2, horizon: 1 } })).status).toBe(502);
      await call('/v1/chat/completions', { model: 'ecr/loop', messages, stream: true, ecr: { k: 2, horizon: 1 } });
      const passed = await call('/v1/chat/completions', { model: 'loop', messages });
      expect(passed.status).toBe(502);
      expect(passed.text).toContain(masked);
      expect((await call('/v1/chat/completions', { model: 'loop', messages, stream: true })).status).toBe(502);
      expect((await call('/v1/embeddings', { model: 'e', input: 'x' })).status).toBe(502);
      expect((await call('/v1/models')).status).toBe(502);
      await call('/metrics');
      child.kill('SIGTERM');
      expect(await exit).toBe(0);
      const everything = [...seen, stdout, stderr].join('\n');
      expect(stdout).toContain(masked); // the startup line and the failed requests' warnings name the upstream, masked
      expect(everything).not.toContain(secret);
    },
    60_000,
  );

  it('a base URL with a query keeps it after the endpoint path, and the startup and access log mask its key', async () => {
    const logs: string[] = [];
    const logStream = new Writable({
      write(chunk, _e, cb) {
        logs.push(String(chunk));
        cb();
      },
    });
    const config = resolveServeConfig(['--upstream', `${upstream.url}/?api-version=2024-06-01&api_key=${SECRETS.query}`, '--port', '0', '--retries', '0'], {});
    if (config === 'help') throw new Error('help');
    const g = await startGateway(config, { logStream });
    try {
      const post = (body: unknown) =>
        fetch(`${g.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      const messages = [{ role: 'user', content: 'Is the sky blue?' }];
      expect((await post({ model: 'ecr/loop', messages, ecr: { k: 2, horizon: 1, fixedK: true } })).status).toBe(200);
      expect((await post({ model: 'loop', messages })).status).toBe(200);
      expect((await fetch(`${g.url}/v1/models`)).status).toBe(200);
      expect((await fetch(`${g.url}/health/readiness`)).status).toBe(200);
      const paths = new Set(upstream.log.map((e) => e.path));
      expect([...paths].sort()).toEqual(['/v1/chat/completions', '/v1/models']);
      expect(upstream.log.every((e) => e.query === `api-version=2024-06-01&api_key=${SECRETS.query}`)).toBe(true);
    } finally {
      g.app.server.closeAllConnections();
      await g.app.close();
    }
    expect(logs.join('')).not.toContain(SECRETS.query);
  });

  it("ecr run: the LLM client's errors (message, --json url) mask the base URL", () => {
    for (const url of [`http://admin:${SECRETS.userinfo}@127.0.0.1:${deadPort}/v1`, `http://127.0.0.1:${deadPort}/v1?key=${SECRETS.query}`]) {
      for (const json of [[], ['--json']]) {
        const r = runCli(['run', '--base-url', url, '--model', 'm', '--retries', '0', ...json, 'Is the sky blue?']);
        expect(r.code, r.stderr).toBe(1);
        expect(r.stdout + r.stderr).toMatch(/127\.0\.0\.1/);
        expect(r.stdout + r.stderr).not.toMatch(/s3cret/);
      }
    }
    const bad = runCli(['run', '--base-url', `http://admin:${SECRETS.userinfo}@[::1/v1`, '--model', 'm', 'q']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('not a URL');
    expect(bad.stderr).not.toContain(SECRETS.userinfo);
  });
});
