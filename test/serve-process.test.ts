/**
 * `ecr serve` as a real process: started with the README's exact command, then SIGTERM with
 * requests in flight (they finish, the process exits 0).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { mkdtempSync, readFileSync, renameSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it, onTestFinished, vi } from 'vitest';
import { LoopbackServer } from '../src/testing/loopback-server.js';
import { defaultCacheBytes, machine } from '../src/core/machine.js';

const ROOT = new URL('..', import.meta.url).pathname;

/** The `npx ecr serve ...` line of the README's gateway section. */
function readmeCommand(): string {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  const line = readme.split('\n').find((l) => l.startsWith('npx ecr serve '));
  if (!line) throw new Error('README.md has no line starting with "npx ecr serve "');
  return line.replace(/\s+#.*$/, '');
}

let upstream: LoopbackServer;
beforeAll(async () => {
  upstream = await LoopbackServer.start();
});
afterAll(async () => {
  await upstream.close();
});

interface Served {
  child: ChildProcess;
  url: string;
  lines: string[];
  exit: Promise<number | null>;
}

async function serve(command: string, env: Record<string, string>): Promise<Served> {
  const child = spawn('bash', ['-c', `exec ${command}`], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  let stderr = '';
  child.stderr.on('data', (d) => {
    stderr += d;
  });
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout }).on('line', (l) => {
      lines.push(l);
      const j = JSON.parse(l);
      if (j.msg === 'ecr serve listening') resolve(j.url);
    });
    void exit.then((code) => reject(new Error(`ecr serve exited (${code}) before listening: ${stderr}`)));
  });
  return { child, url, lines, exit };
}

describe('ecr serve as a process', () => {
  it('starts with the README command and shuts down gracefully on SIGTERM with requests in flight', async () => {
    const command = readmeCommand();
    expect(command).toMatch(/^npx ecr serve --upstream "\$UPSTREAM"/);
    const s = await serve(command, { UPSTREAM: upstream.url, ECR_PORT: '0', ECR_RETRIES: '0' });
    const client = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'sk-unused', maxRetries: 0 });
    const quick = await client.chat.completions.create({
      model: 'ecr/loop',
      messages: [{ role: 'user', content: 'Is the sky blue?' }],
      ecr: { k: 2, horizon: 1, fixedK: true },
    } as OpenAI.ChatCompletionCreateParamsNonStreaming);
    expect(quick.choices[0].message.content).toMatch(/^\[c:[0-9a-f]+ s:0\]/);

    upstream.latencyMs = 400;
    upstream.clearLog();
    const inFlight = [1, 2].map((i) =>
      client.chat.completions.create({
        model: 'ecr/loop',
        messages: [{ role: 'user', content: `Question ${i}?` }],
        ecr: { k: 2, horizon: 1, fixedK: true },
      } as OpenAI.ChatCompletionCreateParamsNonStreaming),
    );
    await vi.waitFor(() => expect(upstream.pending()).toBe(2), { timeout: 5000 });
    // SIGTERM to the server process itself (the pid in its log lines), as a process manager sends it;
    // npx, its parent, then exits with the server's code.
    const pid = JSON.parse(s.lines[0]).pid as number;
    // The startup line says what the pools and the cache default were sized from (issue 21).
    const started = JSON.parse(s.lines.find((l) => l.includes('ecr serve listening'))!) as Record<string, unknown>;
    const shape = machine();
    expect(started).toMatchObject({ cpus: shape.cpus, cpu_source: shape.cpuSource, memory_bytes: shape.memoryBytes, memory_source: shape.memorySource });
    expect(started.cache_max_bytes).toBe(defaultCacheBytes(shape));
    process.kill(pid, 'SIGTERM');
    const done = await Promise.all(inFlight);
    expect(done.map((r) => r.choices.length)).toEqual([1, 1]);
    expect(await s.exit).toBe(0);
    upstream.latencyMs = 0;
    // Both requests ran their review steps: nothing was cut short.
    expect(upstream.log.filter((e) => e.kind === 'unroll' && e.status === 200)).toHaveLength(4);
    const msgs = s.lines.map((l) => JSON.parse(l).msg);
    expect(msgs).toContain('shut down');
    expect(s.lines.filter((l) => JSON.parse(l).msg === 'request').map((l) => JSON.parse(l).status)).toEqual([200, 200, 200]);
    await expect(fetch(`${s.url}/health/liveliness`)).rejects.toThrow();
  }, 90_000);

  it('reopens --audit-log on SIGHUP (log rotation) and flushes it on SIGTERM', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'ecr-serve-audit-'));
    const file = path.join(dir, 'audit.jsonl');
    const s = await serve(`node dist/cli.js serve --upstream "$UPSTREAM" --port 0 --retries 0 --audit-log ${file}`, { UPSTREAM: upstream.url });
    const client = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'sk-unused', maxRetries: 0 });
    const ask = (q: string) =>
      client.chat.completions.create({
        model: 'ecr/loop',
        messages: [{ role: 'user', content: q }],
        ecr: { k: 2, horizon: 1, fixedK: true },
      } as OpenAI.ChatCompletionCreateParamsNonStreaming);
    await ask('Before the rotation?');
    await vi.waitFor(() => expect(readFileSync(file, 'utf8').split('\n').filter(Boolean)).toHaveLength(2), { timeout: 5000 });
    renameSync(file, `${file}.1`);
    const pid = JSON.parse(s.lines[0]).pid as number;
    process.kill(pid, 'SIGHUP');
    await vi.waitFor(() => expect(s.lines.map((l) => JSON.parse(l).msg)).toContain('audit log reopened'), { timeout: 5000 });
    await ask('After the rotation?');
    process.kill(pid, 'SIGTERM');
    expect(await s.exit).toBe(0);
    const lines = (f: string) =>
      readFileSync(f, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l));
    expect(lines(`${file}.1`)).toHaveLength(2);
    expect(lines(file)).toHaveLength(2);
    expect(new Set(lines(file).map((l) => l.group)).size).toBe(1);
  }, 90_000);

  it('--help lists every flag with its environment variable', async () => {
    const { SETTINGS: SERVE_SETTINGS } = await import('../src/server/config.js');
    const out = await new Promise<string>((resolve) => {
      const c = spawn(process.execPath, ['dist/cli.js', 'serve', '--help'], { cwd: ROOT });
      let text = '';
      c.stdout.on('data', (d) => {
        text += d;
      });
      c.on('exit', () => resolve(text));
    });
    for (const s of SERVE_SETTINGS) {
      expect(out).toContain(`--${s.flag}`);
      expect(out).toContain(s.env);
    }
  });

  it('exits 2 with a clear message when the upstream is missing or a setting is bad', async () => {
    const run = (args: string[], env: Record<string, string> = {}) =>
      new Promise<{ code: number | null; stderr: string }>((resolve) => {
        const c = spawn(process.execPath, ['dist/cli.js', 'serve', ...args], { cwd: ROOT, env: { PATH: process.env.PATH ?? '', ...env } });
        onTestFinished(() => {
          if (c.exitCode === null) c.kill('SIGKILL');
        });
        let stderr = '';
        c.stderr.on('data', (d) => {
          stderr += d;
        });
        c.on('exit', (code) => resolve({ code, stderr }));
      });
    const none = await run([]);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('no upstream');
    const bad = await run(['--upstream', 'http://127.0.0.1:1/v1'], { ECR_MAX_K: 'lots' });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('ECR_MAX_K');
    expect(bad.stderr).not.toMatch(/^\s+at /m);
    // A key list with no real key (or an empty entry) would turn auth off or drop a key: refused,
    // without echoing the keys that were given.
    for (const keys of [',', ' , ', '', 'sk-first,,sk-second', 'sk-first,']) {
      const r = await run(['--upstream', 'http://127.0.0.1:1/v1'], { ECR_API_KEYS: keys });
      expect(r.code, JSON.stringify(keys)).toBe(2);
      expect(r.stderr).toMatch(/^ecr serve: ECR_API_KEYS: .*(lists no key|is empty)/);
      expect(r.stderr).not.toContain('sk-');
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    }
    // A port in use or a host that does not resolve: one line naming the setting, exit 2, no stack.
    const taken = net.createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const port = (taken.address() as net.AddressInfo).port;
    try {
      const inUse = await run(['--upstream', 'http://127.0.0.1:1/v1', '--port', String(port)]);
      expect(inUse.code).toBe(2);
      expect(inUse.stderr).toBe(`ecr serve: --port ${port}: 127.0.0.1:${port} is already in use; choose another port, or --port 0 for any free one\n`);
    } finally {
      taken.close();
    }
    const unresolvable = await run(['--upstream', 'http://127.0.0.1:1/v1', '--port', '0', '--host', 'no-such-host.invalid']);
    expect(unresolvable.code).toBe(2);
    expect(unresolvable.stderr).toMatch(/^ecr serve: --host no-such-host\.invalid: cannot resolve this name \(E[A-Z_]+\)[^\n]*\n$/);
    const flag = await run(['--upstream', 'http://127.0.0.1:1/v1', '--api-key', 'sk-first', '--api-key', '']);
    expect(flag.code).toBe(2);
    expect(flag.stderr).toContain('--api-key: entry 2 of 2 is empty');
  });
});
