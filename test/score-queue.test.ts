/**
 * `ecr score --queue` and `ecr worker` as users run them: the built CLI in child processes, a real
 * Redis server (test/helpers/redis-server.ts) and BullMQ between them. Every run is compared with
 * a single-process `ecr score` of the same input, byte for byte.
 *
 * The workers run with a 1 s lock and a 0.5 s stalled check (`--lock-duration`,
 * `--stalled-interval`), so a killed worker's shard comes back in about 1.5 s instead of 60 s.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, truncateSync, utimesSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CLI, ROOT, runCli } from './helpers/cli.js';
import { Redis } from 'ioredis';
import { freePort, redisGate, RedisServer, sharedRedis, startRedisServer } from './helpers/redis-server.js';
import { OPTIONS as WORKER_OPTIONS } from '../src/cli/worker.js';
import { OPTIONS as SUBMIT_OPTIONS } from '../src/cli/score-queue.js';

const gate = redisGate();
const FAST_LOCKS = ['--lock-duration', '1000', '--stalled-interval', '500'];

interface Child {
  proc: ChildProcess;
  stderr: () => string;
  exit: Promise<number>;
}
const children: Child[] = [];

function start(args: string[]): Child {
  const proc = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  proc.stderr.on('data', (d: Buffer) => {
    err += d.toString();
  });
  proc.stdout.resume();
  const exit = new Promise<number>((resolve) => proc.once('exit', (code, signal) => resolve(code ?? (signal === 'SIGKILL' ? 137 : 128))));
  const child = { proc, stderr: () => err, exit };
  children.push(child);
  return child;
}

async function waitFor<T>(what: string, probe: () => T | undefined | false, child?: Child): Promise<T> {
  for (;;) {
    const v = probe();
    if (v !== undefined && v !== false) return v;
    if (child && child.proc.exitCode !== null) throw new Error(`exited (${child.proc.exitCode}) before ${what}: ${child.stderr()}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** The child's exit code, or a failure that shows its stderr when it is still running after `ms`. */
async function exitWithin(child: Child, what: string, ms: number): Promise<number> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} was still running ${ms / 1000} s later; its stderr:\n${child.stderr()}`)), ms);
  });
  try {
    return await Promise.race([child.exit, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** A worker, started and connected to the queue (it says so once BullMQ is ready). */
async function startWorker(url: string, queueName: string, name: string, extra: string[] = []): Promise<Child> {
  const w = start(['worker', '--queue', url, '--queue-name', queueName, '--backend', 'cpu', '--name', name, ...FAST_LOCKS, ...extra]);
  await waitFor(`${name} connected`, () => w.stderr().includes('waiting for shards'), w);
  return w;
}

/**
 * Records in contiguous groups of 1 to 5 (string and number keys, "7" and 7 distinct), a block of
 * ungrouped records (one group), a blank line and a CRLF line: a varied single-process baseline.
 */
function makeInput(records: number, seed = 7): string {
  let s = seed;
  const rand = () => (s = (s * 1103515245 + 12345) >>> 0) / 4294967296;
  const lines: string[] = [];
  let group = 0;
  while (lines.length < records) {
    const size = 1 + Math.floor(rand() * 5);
    const key = group % 3 === 0 ? group : `q${group}`;
    for (let k = 0; k < size && lines.length < records; k++) {
      const steps = Array.from({ length: 5 }, () => Array.from({ length: 8 }, () => Number(rand().toFixed(4))));
      const rec: Record<string, unknown> = { id: `r${lines.length}`, group: key, steps };
      if (k === 0 && group % 4 === 1) rec.baseScore = Number(rand().toFixed(3));
      lines.push(JSON.stringify(rec));
    }
    group++;
  }
  const ungrouped = Array.from({ length: 6 }, (_, i) =>
    JSON.stringify({
      steps: [
        [0.1 * i, 0.2],
        [0.3, 0.1 * i],
      ],
    }),
  );
  lines.splice(
    Math.floor(lines.length / 2),
    0,
    ...ungrouped,
    '',
    JSON.stringify({
      group: '7',
      steps: [
        [0.9, 0.9],
        [0.8, 0.9],
      ],
    }) + '\r',
  );
  return lines.join('\n') + '\n';
}

describe.skipIf(!gate.available)('ecr score --queue with ecr worker processes', () => {
  let redis: { url: string; stop: () => Promise<void> };
  let dir: string;
  let queueName: string;
  let workDir: string;
  let outDir: string;

  beforeAll(async () => {
    redis = await sharedRedis();
    dir = mkdtempSync(path.join(os.tmpdir(), 'ecr-score-queue-'));
  });
  afterAll(async () => {
    await redis?.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  let testNo = 0;
  const fresh = () => {
    testNo++;
    queueName = `ecr-test-${randomUUID()}`;
    workDir = path.join(dir, `work-${testNo}`);
    outDir = path.join(dir, `out-${testNo}`);
    mkdirSync(workDir);
    mkdirSync(outDir);
  };
  afterEach(async () => {
    for (const c of children.splice(0)) {
      if (c.proc.exitCode === null && c.proc.signalCode === null) c.proc.kill('SIGKILL');
      await c.exit;
    }
  });

  /** The single-process output for `file` (and the config), the baseline of every comparison. */
  function single(file: string, extra: string[] = []): string {
    const r = runCli(['score', file, '--backend', 'cpu', ...extra]);
    expect(r.code, r.stderr).toBe(0);
    return r.stdout;
  }

  it('two workers and one submitter over a 4-shard input write what single-process ecr score writes', async () => {
    fresh();
    const text = makeInput(400);
    const input = path.join(dir, 'four.jsonl');
    writeFileSync(input, text);
    const config = path.join(dir, 'tau.json');
    writeFileSync(config, JSON.stringify({ tau: 0.55, preset: 'compliance' }));
    const shardBytes = String(Math.ceil(Buffer.byteLength(text) / 4));
    const w1 = await startWorker(redis.url, queueName, 'w1');
    const w2 = await startWorker(redis.url, queueName, 'w2');
    const sub = start([
      'score',
      '--queue',
      redis.url,
      '--queue-name',
      queueName,
      input,
      '--out',
      outDir,
      '--work-dir',
      workDir,
      '--config',
      config,
      '--shard-bytes',
      shardBytes,
      '--window',
      '64',
    ]);
    expect(await sub.exit, sub.stderr()).toBe(0);
    expect(sub.stderr()).toBe('');
    const expected = single(input, ['--config', config]);
    expect(expected.split('\n').length).toBe(400 + 7 + 1);
    expect(readFileSync(path.join(outDir, 'four.jsonl'), 'utf8')).toBe(expected);
    const logs = w1.stderr() + w2.stderr();
    for (let k = 1; k <= 4; k++) expect(logs).toMatch(new RegExp(`shard ${k}/4 of `));
    expect(readdirSync(workDir)).toEqual([]); // the run directory is gone
  });

  it('writes one output per input, in order, each identical to its single-process run', async () => {
    fresh();
    const a = path.join(dir, 'a.jsonl'),
      b = path.join(dir, 'b.jsonl'),
      empty = path.join(dir, 'empty.jsonl');
    writeFileSync(a, makeInput(120, 1));
    writeFileSync(b, makeInput(90, 2));
    writeFileSync(empty, '\n');
    await startWorker(redis.url, queueName, 'w1');
    const sub = start(['score', '--queue', redis.url, '--queue-name', queueName, a, empty, b, '--out', outDir, '--work-dir', workDir, '--shard-bytes', '5000']);
    expect(await sub.exit, sub.stderr()).toBe(0);
    expect(sub.stderr()).toMatch(/warning: no records in .*empty\.jsonl/);
    expect(readFileSync(path.join(outDir, 'a.jsonl'), 'utf8')).toBe(single(a));
    expect(readFileSync(path.join(outDir, 'b.jsonl'), 'utf8')).toBe(single(b));
    expect(readFileSync(path.join(outDir, 'empty.jsonl'), 'utf8')).toBe('');
  });

  it('a worker killed with SIGKILL mid-shard loses and duplicates nothing: another worker gets the shard back', async () => {
    fresh();
    const text = makeInput(6000, 3);
    const input = path.join(dir, 'kill.jsonl');
    writeFileSync(input, text);
    const victim = await startWorker(redis.url, queueName, 'victim');
    const sub = start([
      'score',
      '--queue',
      redis.url,
      '--queue-name',
      queueName,
      input,
      '--out',
      outDir,
      '--work-dir',
      workDir,
      '--shard-bytes',
      String(Math.ceil(Buffer.byteLength(text) / 4)),
      '--window',
      '128',
    ]);
    // Mid-shard: the worker has opened the shard's temporary output and not yet renamed it. It is
    // stopped (SIGSTOP) to look, and killed only if it was caught there.
    const shardsDir = () => {
      const run = readdirSync(workDir)[0];
      return run ? path.join(workDir, run, 'shards') : null;
    };
    let caught: string | null = null;
    while (caught === null) {
      const tmp = await waitFor(
        'a shard in progress',
        () => {
          const d = shardsDir();
          const f = d && existsSync(d) ? readdirSync(d).find((n) => n.endsWith('.tmp')) : undefined;
          return f && path.join(d!, f);
        },
        sub,
      );
      victim.proc.kill('SIGSTOP');
      const finalName = tmp.replace(/\.[0-9a-f]{8}\.tmp$/, '');
      if (existsSync(tmp) && !existsSync(finalName)) {
        caught = finalName;
        break;
      }
      victim.proc.kill('SIGCONT');
    }
    victim.proc.kill('SIGKILL');
    expect(await victim.exit).toBe(137);
    await startWorker(redis.url, queueName, 'rescuer');
    expect(await sub.exit, sub.stderr()).toBe(0);
    const shardNo = path.basename(caught).match(/^0-(\d+)\.jsonl$/)![1];
    expect(sub.stderr()).toMatch(new RegExp(`shard ${Number(shardNo) + 1} of 4 of .*kill\\.jsonl.*its worker stopped renewing the lock`));
    expect(readFileSync(path.join(outDir, 'kill.jsonl'), 'utf8')).toBe(single(input, ['--window', '128']));
    expect(readdirSync(workDir)).toEqual([]);
  });

  it('says within seconds that no worker is connected, and goes on when one connects', async () => {
    fresh();
    const input = path.join(dir, 'lonely.jsonl');
    writeFileSync(input, makeInput(50, 4));
    const sub = start(['score', '--queue', redis.url, '--queue-name', queueName, input, '--out', outDir, '--work-dir', workDir, '--no-worker-notice', '500']);
    await waitFor('the no-worker notice', () => sub.stderr().includes('no ecr worker is connected'), sub);
    expect(sub.stderr()).toContain(`1 shard waiting. Start one with: ecr worker --queue ${redis.url} --queue-name ${queueName}`);
    await startWorker(redis.url, queueName, 'late');
    expect(await sub.exit, sub.stderr()).toBe(0);
    expect(readFileSync(path.join(outDir, 'lonely.jsonl'), 'utf8')).toBe(single(input));
  });

  it('a shard that fails on every attempt with bad input fails the run with the single-process message; nothing is written', async () => {
    fresh();
    const lines = makeInput(200, 5).split('\n');
    const bad = 150; // 0-based line index in the third or fourth shard
    lines[bad] = lines[bad].replace(/"steps":\[\[[0-9.]+/, '"steps":[[1.5');
    const input = path.join(dir, 'bad.jsonl');
    writeFileSync(input, lines.join('\n'));
    const previous = path.join(outDir, 'bad.jsonl');
    writeFileSync(previous, 'an earlier result\n');
    const w = await startWorker(redis.url, queueName, 'w1');
    const sub = start([
      'score',
      '--queue',
      redis.url,
      '--queue-name',
      queueName,
      input,
      '--out',
      outDir,
      '--work-dir',
      workDir,
      '--shard-bytes',
      String(Math.ceil(lines.join('\n').length / 4)),
      '--attempts',
      '2',
    ]);
    expect(await sub.exit).toBe(2);
    const alone = runCli(['score', input, '--backend', 'cpu']);
    expect(alone.code).toBe(2);
    expect(sub.stderr()).toBe(alone.stderr);
    expect(sub.stderr()).toContain(`line ${bad + 1}, id "r`);
    expect(sub.stderr()).toContain('field "steps[0][0]": 1.5 is outside [0, 1]');
    expect(w.stderr()).toMatch(/failed \(attempt 1 of 2\): 1 invalid line/);
    expect(w.stderr()).toMatch(/failed \(attempt 2 of 2\): 1 invalid line/);
    expect(readFileSync(previous, 'utf8')).toBe('an earlier result\n');
    expect(readdirSync(outDir)).toEqual(['bad.jsonl']);
    expect(readdirSync(workDir)).toEqual([]);
  });

  it('refuses what it cannot do, before anything is queued', async () => {
    fresh();
    const input = path.join(dir, 'small.jsonl');
    writeFileSync(input, makeInput(5, 6));
    const q = ['--queue', redis.url, '--queue-name', queueName];
    const cases: [string[], number, RegExp][] = [
      [['score', ...q, '-', '--out', outDir], 2, /needs its inputs as files/],
      [['score', ...q, input, '--out', outDir, '--adapter', 'native'], 2, /--adapter is chosen by each worker/],
      [['score', ...q, input], 2, /--out DIR is required/],
      [['score', ...q, input, '--out', input], 2, /must be a directory/],
      [['score', ...q, input, input, '--out', outDir], 2, /would both be written to/],
      [['score', '--queue', 'http://x', input, '--out', outDir], 2, /expected redis:\/\/host:port\[\/db\], rediss:\/\//],
      [['score', '--queue', `redis://127.0.0.1:${await freePort()}`, input, '--out', outDir, '--work-dir', workDir], 1, /cannot reach Redis at .*ECONNREFUSED/],
      [['worker', '--queue', `redis://127.0.0.1:${await freePort()}`], 1, /cannot reach Redis at .*ECONNREFUSED/],
      [['worker'], 2, /--queue redis:\/\/HOST:PORT is required/],
      [['worker', ...q, '--concurrency', '0'], 2, /--concurrency must be a positive integer/],
      // A database the server does not have is refused, not replaced by database 0 (issue 18, item 6).
      [
        ['score', '--queue', `${redis.url}/99`, '--queue-name', queueName, input, '--out', outDir, '--work-dir', workDir],
        2,
        /redis URL "redis:\/\/[^"]+\/99": the server has no database 99 \(it has 16 databases, 0 to 15\)/,
      ],
      [
        ['score', '--queue', `${redis.url}/abc`, '--queue-name', queueName, input, '--out', outDir, '--work-dir', workDir],
        2,
        /the path is the database index.*got "abc"/,
      ],
      [['worker', '--queue', `${redis.url}/99`, '--queue-name', queueName], 2, /the server has no database 99/],
      // Queue names BullMQ refuses (item 8): one line and exit 2, not a stack and a hang.
      [['score', '--queue', redis.url, '--queue-name', 'a:b', input, '--out', outDir, '--work-dir', workDir], 2, /--queue-name must not contain ":"/],
      [['score', '--queue', redis.url, '--queue-name', '', input, '--out', outDir, '--work-dir', workDir], 2, /--queue-name must not be empty/],
      [['worker', '--queue', redis.url, '--queue-name', 'a:b'], 2, /--queue-name must not contain ":"/],
      [['worker', '--queue', redis.url, '--queue-name', ''], 2, /--queue-name must not be empty/],
      // A negative value is a range error, whatever the flag (item 18).
      [['score', ...q, input, '--out', outDir, '--shard-bytes', '-5'], 2, /--shard-bytes must be a positive integer, got "-5"/],
      [['score', ...q, input, '--out', outDir, '--attempts', '-1'], 2, /--attempts must be a positive integer, got "-1"/],
      [['worker', ...q, '--concurrency', '-2'], 2, /--concurrency must be a positive integer, got "-2"/],
      [['score', input, '--window', '-3'], 2, /--window must be a positive integer, got "-3"/],
      // The backend a run fixes (item 20).
      [
        ['score', ...q, input, '--out', outDir, '--backend', 'auto'],
        2,
        /--backend with --queue fixes the backend of every shard: one of cpu, cpu-reference, webgpu/,
      ],
      [['score', ...q, input, '--out', outDir, '--backend', 'cpu', '--compact', 'unorm16'], 2, /--compact must be "unorm16", with --backend webgpu/],
      [['score', ...q, '--resume', 'ecr-run-none', '--work-dir', workDir], 2, /--resume ecr-run-none: no such run in --work-dir .*; there is none/],
      [['score', ...q, input, '--out', outDir, '--orphan-grace', '10'], 2, /--orphan-grace must be 0 \(never remove\) or at least 300 seconds/],
    ];
    // Run side by side: each is a fresh process, and the checks are independent.
    const results = await Promise.all(
      cases.map(([args]) => {
        const c = start(args);
        return c.exit.then((code) => ({ code, stderr: c.stderr() }));
      }),
    );
    cases.forEach(([args, code, message], k) => {
      const r = results[k];
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(code);
      const what = `${args.join(' ')}: ${r.stderr}`;
      expect(r.stderr, what).toMatch(message);
      expect(r.stderr, what).not.toMatch(/^\s+at /m);
      expect(r.stderr, what).not.toContain('Unhandled error event');
      if (!r.stderr.includes('usage:')) expect(r.stderr.trim().split('\n'), what).toHaveLength(1);
    });
    expect(readdirSync(outDir)).toEqual([]);
    expect(readdirSync(workDir)).toEqual([]);
    // Nothing of this queue went to database 0 (or anywhere) through the refused URLs.
    const raw = new Redis(redis.url);
    try {
      expect(await raw.keys(`bull:${queueName}:*`)).toEqual([]);
    } finally {
      raw.disconnect();
    }
  }, 120_000); // some thirty processes, side by side on a busy machine

  /** Waits until `w` is caught mid-shard (a temporary output and no final one) and stops it there with SIGSTOP; returns the shard's final output path. */
  async function stopMidShard(w: Child, sub: Child): Promise<string> {
    const shardsDir = () => {
      const run = readdirSync(workDir)[0];
      return run ? path.join(workDir, run, 'shards') : null;
    };
    for (;;) {
      const tmp = await waitFor(
        'a shard in progress',
        () => {
          const d = shardsDir();
          const f = d && existsSync(d) ? readdirSync(d).find((n) => n.endsWith('.tmp')) : undefined;
          return f && path.join(d!, f);
        },
        sub,
      );
      w.proc.kill('SIGSTOP');
      const finalName = tmp.replace(/\.[0-9a-f]{8}\.tmp$/, '');
      if (existsSync(tmp) && !existsSync(finalName)) return finalName;
      w.proc.kill('SIGCONT');
    }
  }

  const submit = (input: string, extra: string[] = []) =>
    start(['score', '--queue', redis.url, '--queue-name', queueName, input, '--out', outDir, '--work-dir', workDir, ...extra]);
  const quarterOf = (text: string) => String(Math.ceil(Buffer.byteLength(text) / 4));

  it('--timeout gives up with the run left queued; --resume collects it once a worker has scored it', async () => {
    fresh();
    const input = path.join(dir, 'later.jsonl');
    const text = makeInput(300, 8);
    writeFileSync(input, text);
    const sub = submit(input, ['--shard-bytes', quarterOf(text), '--timeout', '1', '--no-worker-notice', '60000']);
    expect(await sub.exit, sub.stderr()).toBe(1);
    expect(sub.stderr()).toMatch(/did not finish within --timeout 1 s \(4 shards of 4 not done\)/);
    const m = /collect it later with: ecr (score --queue .* --resume (ecr-run-\w+) --work-dir \S+)$/m.exec(sub.stderr());
    expect(m, sub.stderr()).not.toBeNull();
    expect(readdirSync(workDir)).toEqual([m![2]]);
    expect(readdirSync(outDir)).toEqual([]);
    await startWorker(redis.url, queueName, 'w1');
    const again = start(m![1].split(' '));
    expect(await again.exit, again.stderr()).toBe(0);
    expect(again.stderr()).toMatch(/^ecr score: resumed run: \d shards? done, \d still queued, 0 submitted again$/m);
    expect(readFileSync(path.join(outDir, 'later.jsonl'), 'utf8')).toBe(single(input));
    expect(readdirSync(workDir)).toEqual([]);
  });

  it('a submitter killed with SIGKILL leaves a run that --resume collects; a later run removes an orphan past --orphan-grace', async () => {
    fresh();
    const a = path.join(dir, 'orphan-a.jsonl'),
      b = path.join(dir, 'orphan-b.jsonl'),
      c = path.join(dir, 'orphan-c.jsonl');
    writeFileSync(a, makeInput(200, 9));
    writeFileSync(b, makeInput(150, 10));
    writeFileSync(c, makeInput(30, 11));
    const queued = async (input: string) => {
      const sub = submit(input, ['--no-worker-notice', '200']);
      await waitFor('the shards queued', () => sub.stderr().includes('no ecr worker is connected'), sub);
      return sub;
    };
    const subA = await queued(a);
    const [idA] = readdirSync(workDir);
    // While its owner lives, a run is not anyone else's to collect.
    const early = runCli(['score', '--queue', redis.url, '--queue-name', queueName, '--resume', idA, '--work-dir', workDir]);
    expect(early.code, early.stderr).toBe(2);
    expect(early.stderr).toMatch(new RegExp(`--resume ${idA}: its owner .*:${subA.proc.pid} may still be running`));
    subA.proc.kill('SIGKILL');
    await subA.exit;
    const subB = await queued(b);
    const idB = readdirSync(workDir).find((n) => n !== idA)!;
    subB.proc.kill('SIGKILL');
    await subB.exit;
    // B's owner was last heard of two days ago: past the default grace of a day.
    const longAgo = new Date(Date.now() - 2 * 86_400_000);
    utimesSync(path.join(workDir, idB, 'owner.json'), longAgo, longAgo);

    const next = submit(c);
    await waitFor('the sweep', () => next.stderr().includes(`removed the orphaned run ${idB}`), next);
    await startWorker(redis.url, queueName, 'w1');
    expect(await next.exit, next.stderr()).toBe(0);
    expect(next.stderr()).toMatch(
      new RegExp(`removed the orphaned run ${idB} in ${workDir} \\(owner .*:${subB.proc.pid}, silent for 48\\.0 h > --orphan-grace; [0-9.]+ MB\\)`),
    );
    expect(next.stderr()).toContain(`the run ${idA} in ${workDir} has no owner`);
    expect(next.stderr()).toContain(`collect it with: ecr score --queue ${redis.url} --queue-name ${queueName} --resume ${idA} --work-dir ${workDir}`);
    expect(readFileSync(path.join(outDir, 'orphan-c.jsonl'), 'utf8')).toBe(single(c));
    expect(readdirSync(workDir)).toEqual([idA]);

    const again = runCli(['score', '--queue', redis.url, '--queue-name', queueName, '--resume', idA, '--work-dir', workDir]);
    expect(again.code, again.stderr).toBe(0);
    expect(readFileSync(path.join(outDir, 'orphan-a.jsonl'), 'utf8')).toBe(single(a));
    expect(existsSync(path.join(outDir, 'orphan-b.jsonl'))).toBe(false);
    expect(readdirSync(workDir)).toEqual([]);
  });

  it('an input truncated in place while its shards are queued fails the run naming the change, not a line of it', async () => {
    fresh();
    const input = path.join(dir, 'truncated.jsonl');
    const text = makeInput(400, 12);
    writeFileSync(input, text);
    const previous = path.join(outDir, 'truncated.jsonl');
    writeFileSync(previous, 'an earlier result\n');
    const sub = submit(input, ['--shard-bytes', quarterOf(text), '--no-worker-notice', '200']);
    await waitFor('the shards queued', () => sub.stderr().includes('no ecr worker is connected'), sub);
    const size = Buffer.byteLength(text);
    const cut = Math.floor(size * 0.6);
    truncateSync(input, cut);
    await startWorker(redis.url, queueName, 'w1');
    expect(await sub.exit, sub.stderr()).toBe(2);
    const fmt = (n: number) => n.toLocaleString('en-US');
    expect(sub.stderr()).toMatch(
      new RegExp(`^ecr score: .*truncated\\.jsonl changed while its shards were queued \\(size ${fmt(size)} bytes -> ${fmt(cut)} bytes, modified `, 'm'),
    );
    expect(readFileSync(previous, 'utf8')).toBe('an earlier result\n');
    expect(readdirSync(workDir)).toEqual([]);
  });

  it('--backend fixes the backend of every shard: a cpu worker computes a cpu-reference run with cpu-reference', async () => {
    fresh();
    const input = path.join(dir, 'fixed.jsonl');
    const text = makeInput(400, 13);
    writeFileSync(input, text);
    const w = await startWorker(redis.url, queueName, 'w1'); // --backend cpu
    const sub = submit(input, ['--backend', 'cpu-reference', '--shard-bytes', quarterOf(text)]);
    expect(await sub.exit, sub.stderr()).toBe(0);
    expect(sub.stderr()).toBe('');
    expect(readFileSync(path.join(outDir, 'fixed.jsonl'), 'utf8')).toBe(single(input, ['--backend', 'cpu-reference']));
    expect(w.stderr().match(/records from line \d+ in [0-9.]+ s \(cpu-reference\)$/gm)).toHaveLength(4);
  });

  it('a worker that cannot run the backend a run fixed refuses its shard, naming itself and the backend', async (ctx) => {
    // A native (Vulkan, Metal, D3D12) adapter is what this worker is limited to; where one exists, it could run the shard.
    const probe = runCli(['score', path.join(ROOT, 'test', 'fixtures', 'ledoit-wolf.input.jsonl'), '--backend', 'webgpu', '--adapter', 'native']);
    if (!/backend "webgpu" is unavailable/.test(probe.stderr)) ctx.skip();
    fresh();
    const input = path.join(dir, 'gpu-only.jsonl');
    writeFileSync(input, makeInput(40, 16));
    const w = await startWorker(redis.url, queueName, 'cpu-box', ['--adapter', 'native']);
    const sub = submit(input, ['--backend', 'webgpu']);
    expect(await sub.exit, sub.stderr()).toBe(1);
    expect(sub.stderr()).toMatch(
      /^ecr score: shard 1 of 1 of .*gpu-only\.jsonl .* failed: worker cpu-box cannot run the run's --backend webgpu: backend "webgpu" is unavailable/m,
    );
    expect(w.stderr()).toContain('the run fixed --backend webgpu, which cannot run here');
    expect(readdirSync(outDir)).toEqual([]);
    expect(readdirSync(workDir)).toEqual([]);
  });

  it('without --backend, a run whose shards were computed by different backends says so', async () => {
    fresh();
    const input = path.join(dir, 'mixed.jsonl');
    const text = makeInput(6000, 14);
    writeFileSync(input, text);
    // A holds its shard for a minute while stopped, so the shard stays its own.
    const a = await startWorker(redis.url, queueName, 'a', ['--lock-duration', '60000']);
    const sub = submit(input, ['--shard-bytes', quarterOf(text), '--window', '128']);
    const held = await stopMidShard(a, sub);
    await startWorker(redis.url, queueName, 'b', ['--backend', 'cpu-reference']);
    const shards = path.dirname(held);
    await waitFor('the other shards scored', () => readdirSync(shards).filter((n) => n.endsWith('.jsonl')).length === 3, sub);
    a.proc.kill('SIGCONT');
    expect(await sub.exit, sub.stderr()).toBe(0);
    const warning =
      /warning: the shards of this run were computed by different backends \((.*)\); results can differ from a single-process run in the last digits\. Fix one backend for the run with --backend/.exec(
        sub.stderr(),
      );
    expect(warning, sub.stderr()).not.toBeNull();
    expect(warning![1]).toMatch(/(^|, )cpu: [1-3] shards?(,|$)/);
    expect(warning![1]).toMatch(/cpu-reference: [1-3] shards?/);
  });
});

describe.skipIf(!gate.available)('a queue whose Redis restarts mid-run', () => {
  let server: RedisServer;
  let dir: string;
  beforeAll(async () => {
    server = await startRedisServer();
    dir = mkdtempSync(path.join(os.tmpdir(), 'ecr-queue-restart-'));
  });
  afterAll(async () => {
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  afterEach(async () => {
    for (const c of children.splice(0)) {
      if (c.proc.exitCode === null && c.proc.signalCode === null) c.proc.kill('SIGKILL');
      await c.exit;
    }
  });

  it('the submitter submits the lost shards again and the run completes; a worker mid-shard goes on; no stack is printed', async () => {
    const queueName = `ecr-test-${randomUUID()}`;
    const workDir = path.join(dir, 'work'),
      outDir = path.join(dir, 'out');
    mkdirSync(workDir);
    mkdirSync(outDir);
    const input = path.join(dir, 'restart.jsonl');
    const text = makeInput(6000, 15);
    writeFileSync(input, text);
    const w = await startWorker(server.url, queueName, 'w1', ['--lock-duration', '60000']);
    const sub = start([
      'score',
      '--queue',
      server.url,
      '--queue-name',
      queueName,
      input,
      '--out',
      outDir,
      '--work-dir',
      workDir,
      '--shard-bytes',
      String(Math.ceil(Buffer.byteLength(text) / 4)),
      '--window',
      '128',
    ]);
    // The worker is caught mid-shard, Redis loses everything, and the worker goes on.
    const shardsDir = () => {
      const run = readdirSync(workDir)[0];
      return run ? path.join(workDir, run, 'shards') : null;
    };
    for (;;) {
      const tmp = await waitFor(
        'a shard in progress',
        () => {
          const d = shardsDir();
          const f = d && existsSync(d) ? readdirSync(d).find((n) => n.endsWith('.tmp')) : undefined;
          return f && path.join(d!, f);
        },
        sub,
      );
      w.proc.kill('SIGSTOP');
      if (existsSync(tmp) && !existsSync(tmp.replace(/\.[0-9a-f]{8}\.tmp$/, ''))) break;
      w.proc.kill('SIGCONT');
    }
    await server.stop();
    await server.start();
    w.proc.kill('SIGCONT');
    expect(await sub.exit, sub.stderr()).toBe(0);
    expect(sub.stderr()).toMatch(
      /queued shards? of this run had vanished from Redis at .* \(restarted without its data\?\); submitted them again from the run directory/,
    );
    expect(readFileSync(path.join(outDir, 'restart.jsonl'), 'utf8')).toBe(runCli(['score', input, '--backend', 'cpu', '--window', '128']).stdout);
    expect(readdirSync(workDir)).toEqual([]);
    for (const text of [sub.stderr(), w.stderr()]) {
      expect(text).not.toContain('Unhandled error event');
      expect(text).not.toMatch(/^\s+at /m);
      expect(text).not.toMatch(/: -\d+ \(retrying\)/);
    }
  });

  it(
    "a server that comes back without the URL's database stops the submitter and the worker (exit 2), not switches them to database 0",
    { timeout: 90_000 },
    async () => {
      const workDir = mkdtempSync(path.join(dir, 'work-db-')),
        outDir = mkdtempSync(path.join(dir, 'out-db-'));
      const input = path.join(dir, 'db.jsonl');
      writeFileSync(input, makeInput(50, 17));
      const url = `${server.url}/9`;
      // Each on its own queue: the worker must not finish the submitter's run before the restart.
      const w = await startWorker(url, `ecr-test-${randomUUID()}`, 'w1');
      const sub = start([
        'score',
        '--queue',
        url,
        '--queue-name',
        `ecr-test-${randomUUID()}`,
        input,
        '--out',
        outDir,
        '--work-dir',
        workDir,
        '--no-worker-notice',
        '200',
      ]);
      await waitFor('the shards queued', () => sub.stderr().includes('no ecr worker is connected'), sub);
      await server.stop();
      // Down for 8 s: after a longer outage the worker's connections reconnect in an order in which
      // closing BullMQ waited forever (the worker never exited, and ioredis printed "Unhandled
      // error event" stacks); a quick restart showed it only now and then.
      await new Promise((r) => setTimeout(r, 8000));
      // The same port, now with 4 databases; stopped by afterAll even if this test times out.
      server = new RedisServer(server.port, ['--databases', '4']);
      await server.start();
      expect(await exitWithin(sub, 'the submitter', 40_000)).toBe(2);
      expect(await exitWithin(w, 'the worker', 20_000)).toBe(2);
      for (const text of [sub.stderr(), w.stderr()]) {
        expect(text).toMatch(/redis URL "redis:\/\/127\.0\.0\.1:\d+\/9": the server has no database 9 \(SELECT: ERR DB index is out of range\)/);
        expect(text).not.toContain('Unhandled error event');
      }
      expect(readdirSync(outDir)).toEqual([]);
      expect(readdirSync(workDir)).toEqual([]);
    },
  );
});

/** Every flag has its own line in --help, as for the other commands (test/cli-surface.test.ts). */
describe.each([
  [['worker'], WORKER_OPTIONS],
  [['score', '--queue', 'redis://127.0.0.1:6379'], SUBMIT_OPTIONS],
] as [string[], Record<string, { short?: string }>][])('ecr %s --help', (args, options) => {
  const r = runCli([...args, '--help']);
  it('prints the help to stdout and exits 0', () => {
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^usage: ecr ${args[0]} `));
  });
  it.each(Object.entries(options))('explains --%s in one line', (flag, spec) => {
    const short = spec.short ? `-${spec.short}, ` : '';
    expect(r.stdout).toMatch(new RegExp(`^ +${short}--${flag}( [A-Za-z0-9]+)? {2,}\\S.{8,}$`, 'm'));
  });
});
