/**
 * Real Redis servers for the tests: Debian's `redis-server` binary, started on a free loopback
 * port with no persistence. `.ci/run` installs the package, starts one shared server and exports
 * ECR_TEST_REDIS_URL; tests that stop and restart Redis start their own with `startRedisServer`.
 *
 * Without the binary the Redis tests are skipped with the reason printed, unless
 * ECR_REQUIRE_REDIS=1 (the CI), where a missing binary fails them.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createConnection, createServer } from 'node:net';
import { existsSync } from 'node:fs';

export const REDIS_SERVER_BIN = process.env.ECR_REDIS_SERVER_BIN ?? '/usr/bin/redis-server';

export interface RedisGate {
  available: boolean;
  reason: string;
}

export function redisGate(): RedisGate {
  let reason = '';
  if (!existsSync(REDIS_SERVER_BIN)) reason = `${REDIS_SERVER_BIN} does not exist (apt-get install redis-server)`;
  else if (spawnSync(REDIS_SERVER_BIN, ['--version']).status !== 0) reason = `${REDIS_SERVER_BIN} --version failed`;
  if (reason === '') return { available: true, reason };
  if (process.env.ECR_REQUIRE_REDIS === '1') throw new Error(`ECR_REQUIRE_REDIS=1 but ${reason}`);
  console.warn(`skipping Redis tests: ${reason}`);
  return { available: false, reason };
}

/** Binds `port` on 127.0.0.1 and releases it: true when it was free. */
function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

/**
 * A free TCP port on 127.0.0.1, below Linux's ephemeral range (32768 and up), where no other
 * test's `listen(0)` or outgoing connection can be given it: a server stopped and started again
 * on its port (the restart tests) must find the port still its own, with test files in parallel.
 */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = 20000 + Math.floor(Math.random() * 12000);
    if (await canBind(port)) return port;
  }
  throw new Error('no free port between 20000 and 32000 on 127.0.0.1');
}

async function answersPing(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = createConnection({ host: '127.0.0.1', port });
    let buf = '';
    sock.once('error', () => resolve(false));
    sock.on('data', (d) => {
      buf += d.toString();
      if (buf.includes('\r\n')) {
        sock.destroy();
        resolve(buf.startsWith('+PONG'));
      }
    });
    sock.once('connect', () => sock.write('PING\r\n'));
  });
}

export class RedisServer {
  private child: ChildProcess | null = null;
  constructor(
    readonly port: number,
    private readonly extraArgs: string[] = [],
  ) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }
  get running(): boolean {
    return this.child !== null && this.child.exitCode === null;
  }

  /** Starts the server (again, on the same port) and waits until it answers PING. */
  async start(): Promise<void> {
    if (this.running) return;
    const child = spawn(
      REDIS_SERVER_BIN,
      ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--notify-keyspace-events', 'KEA', ...this.extraArgs],
      { stdio: ['ignore', 'ignore', 'inherit'] },
    );
    this.child = child;
    for (let i = 0; i < 200; i++) {
      if (child.exitCode !== null) throw new Error(`redis-server on port ${this.port} exited with ${child.exitCode}`);
      if (await answersPing(this.port)) {
        // The answer must come from this process, not from another test's server on the port.
        const info = spawnSync('redis-cli', ['-p', String(this.port), 'INFO', 'server'], { encoding: 'utf8' }).stdout;
        const pid = /process_id:(\d+)/.exec(info)?.[1];
        if (pid !== undefined && Number(pid) !== child.pid) throw new Error(`port ${this.port} is served by another redis-server (pid ${pid})`);
        return;
      }
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error(`redis-server on port ${this.port} did not answer PING within 5 s`);
  }

  /** Stops the server (SIGKILL unless `graceful`) and waits for the process to exit. */
  async stop(graceful = false): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null) {
      this.child = null;
      return;
    }
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill(graceful ? 'SIGTERM' : 'SIGKILL');
    await exited;
    this.child = null;
  }
}

/** A private Redis server on a free port, started. */
export async function startRedisServer(extraArgs: string[] = []): Promise<RedisServer> {
  const server = new RedisServer(await freePort(), extraArgs);
  await server.start();
  return server;
}

/**
 * The shared Redis of this run: `.ci/run`'s server (ECR_TEST_REDIS_URL), or else a private one
 * started for the calling test file; `stop` only stops what this call started.
 */
export async function sharedRedis(): Promise<{ url: string; stop: () => Promise<void> }> {
  const url = process.env.ECR_TEST_REDIS_URL;
  if (url) return { url, stop: async () => {} };
  const server = await startRedisServer();
  return { url: server.url, stop: () => server.stop() };
}
