#!/usr/bin/env node
/**
 * Worker scaling of `ecr score --queue` against single-process `ecr score`, in one run:
 *   node bench/queue-scaling.mjs [N=200000] [--workers 1,2] [--reps 2] [--shard-bytes 8388608] [--backend cpu]
 *                                [--worker-args "--threads 0"]
 * Starts a private redis-server (/usr/bin/redis-server, or ECR_REDIS_SERVER_BIN) on a free loopback
 * port, writes N records (T=5, m=8, contiguous groups of 4) with bench/gen-score-input.mjs, and
 * times, alternating per repetition: single-process `ecr score FILE --out`, then the submitter
 * with 1, 2, ... already-connected workers. Also times the submitter's own passes (the shard
 * plan, one read of the file) so the queue's overhead can be told apart, and the CPU seconds of
 * each run (the command's, from /usr/bin/time, plus the workers' meanwhile, from /proc), which a
 * busy machine disturbs less than wall time. Every queued output is compared with the
 * single-process one (cmp). Needs `npm run build` first.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createServer } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync, openSync, closeSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const CLI = path.join(ROOT, 'dist', 'cli.js');
const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    workers: { type: 'string', default: '1,2' },
    reps: { type: 'string', default: '2' },
    'shard-bytes': { type: 'string', default: String(8 << 20) },
    backend: { type: 'string', default: 'cpu' },
    'worker-args': { type: 'string', default: '' },
  },
});
const n = Number(positionals[0] ?? 200000);
const workerCounts = values.workers.split(',').map(Number);
const reps = Number(values.reps);

const freePort = () =>
  new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
  });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const dir = mkdtempSync(path.join(os.tmpdir(), 'ecr-queue-bench-'));
const input = path.join(dir, 'in.jsonl');
const port = await freePort();
const url = `redis://127.0.0.1:${port}`;
const redis = spawn(
  process.env.ECR_REDIS_SERVER_BIN ?? '/usr/bin/redis-server',
  ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
  { stdio: 'ignore' },
);
const workers = [];
try {
  const fd = openSync(input, 'w');
  spawnSync(process.execPath, [path.join(ROOT, 'bench', 'gen-score-input.mjs'), String(n), '--groups', 'blocks:4'], { stdio: ['ignore', fd, 'inherit'] });
  closeSync(fd);
  const bytes = readFileSync(input).length;
  await sleep(300);

  // CPU seconds (user + system) of a live process, from /proc (the workers live across runs).
  const ticks = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim() || 100);
  const cpuOf = (pid) => {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8')
      .replace(/^.*\) /, '')
      .split(' ');
    return (Number(fields[11]) + Number(fields[12])) / ticks;
  };
  const workersCpu = () => workers.reduce((t, w) => t + cpuOf(w.pid), 0);
  /** Wall seconds of the command, and CPU seconds of it plus of the workers meanwhile. */
  const timed = (args) => {
    const before = workersCpu();
    const t0 = process.hrtime.bigint();
    const r = spawnSync('/usr/bin/time', ['-f', '%U %S', process.execPath, CLI, ...args], { encoding: 'utf8' });
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    if (r.status !== 0) throw new Error(`${args.join(' ')}: exit ${r.status}: ${r.stderr}`);
    const [u, sys] = r.stderr.trim().split('\n').pop().split(' ').map(Number);
    return { s, cpu: u + sys + workersCpu() - before };
  };
  const planSeconds = () => {
    const r = spawnSync(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `import { planShards } from ${JSON.stringify(path.join(ROOT, 'dist/queue/shard-plan.js'))};
       const t0 = performance.now(); const p = await planShards(${JSON.stringify(input)}, ${values['shard-bytes']}, 1 << 26);
       console.log(JSON.stringify({ s: (performance.now() - t0) / 1000, shards: p.shards.length }));`,
      ],
      { encoding: 'utf8' },
    );
    return JSON.parse(r.stdout);
  };
  const startWorkers = async (k) => {
    while (workers.length < k) {
      const w = spawn(
        process.execPath,
        [CLI, 'worker', '--queue', url, '--backend', values.backend, '--name', `bench-${workers.length}`, ...values['worker-args'].split(' ').filter(Boolean)],
        { stdio: ['ignore', 'ignore', 'pipe'] },
      );
      let err = '';
      w.stderr.on('data', (d) => {
        err += d;
      });
      while (!err.includes('waiting for shards')) {
        if (w.exitCode !== null) throw new Error(err);
        await sleep(20);
      }
      workers.push(w);
    }
    while (workers.length > k) {
      const w = workers.pop();
      w.kill('SIGTERM');
      await new Promise((r) => w.once('exit', r));
    }
  };

  const rows = [];
  const single = path.join(dir, 'single.jsonl');
  const outDir = path.join(dir, 'out');
  spawnSync('mkdir', ['-p', outDir]);
  for (let rep = 0; rep < reps; rep++) {
    const s = timed(['score', input, '--backend', values.backend, '--out', single]);
    rows.push({ rep, what: 'single-process', seconds: s.s, cpu: s.cpu });
    const plan = planSeconds();
    rows.push({ rep, what: `plan pass (${plan.shards} shards)`, seconds: plan.s });
    for (const k of workerCounts) {
      await startWorkers(k);
      const q = timed(['score', '--queue', url, input, '--out', outDir, '--work-dir', dir, '--shard-bytes', values['shard-bytes']]);
      const same = spawnSync('cmp', [single, path.join(outDir, 'in.jsonl')]).status === 0;
      if (!same) throw new Error(`queued output with ${k} workers differs from the single-process one`);
      rows.push({ rep, what: `--queue, ${k} worker${k > 1 ? 's' : ''}`, seconds: q.s, cpu: q.cpu });
    }
  }
  console.log(
    `${n} records, ${(bytes / 1e6).toFixed(1)} MB, T=5, m=8, groups of 4, --backend ${values.backend}, ${os.cpus().length} cores, load ${os.loadavg()[0].toFixed(1)}`,
  );
  for (const r of rows) {
    const rate =
      r.cpu === undefined
        ? ''
        : `${Math.round(n / r.seconds)
            .toLocaleString('en-US')
            .padStart(8)} records/s, CPU ${r.cpu.toFixed(2)} s (${(r.cpu / r.seconds).toFixed(2)} cores)`;
    console.log(`rep ${r.rep}  ${r.what.padEnd(24)} ${r.seconds.toFixed(2).padStart(6)} s  ${rate}`);
  }
  writeFileSync(path.join(os.tmpdir(), 'ecr-queue-bench.json'), JSON.stringify({ n, bytes, rows }, null, 1));
} finally {
  for (const w of workers) w.kill('SIGTERM');
  await sleep(200);
  redis.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
}
