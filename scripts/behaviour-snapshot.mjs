#!/usr/bin/env node
/**
 * Records what the built CLI does, byte for byte, so that a refactor can be checked to change
 * nothing: `node scripts/behaviour-snapshot.mjs OUTDIR [--big N]`, once before and once after,
 * then `diff -r BEFORE AFTER`.
 *
 * What it records (all from dist/cli.js, cpu backends, fixed seeds):
 *  - `ecr score` of every fixture (test/fixtures) on cpu and cpu-reference, to JSONL, Parquet and
 *    Arrow, and `ecr convert` of each fixture to Parquet, Arrow and back to JSONL;
 *  - a big synthetic file (default 1,000,000 records, T=5, m=8) as JSONL, Parquet and Arrow,
 *    each scored to its own format (sha256 only; the files are deleted);
 *  - `ecr calibrate` (JSON and the report's embedded data) and `ecr maturity` on the bundled
 *    calibration data, `ecr demo --json`, and every command's `--help` and bad-argument message;
 *  - the gateway's answers to a fixed request set against the loopback LLM server, with the
 *    fields that differ per run (ids, times, ports) replaced by placeholders.
 */
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

const { values, positionals } = parseArgs({ allowPositionals: true, options: { big: { type: 'string', default: '1000000' } } });
if (positionals.length !== 1) {
  process.stderr.write('usage: node scripts/behaviour-snapshot.mjs OUTDIR [--big N]\n');
  process.exit(2);
}
const root = resolve(new URL('..', import.meta.url).pathname);
const out = resolve(positionals[0]);
mkdirSync(out, { recursive: true });
const work = mkdtempSync(join(tmpdir(), 'ecr-snapshot-'));
const cli = join(root, 'dist/cli.js');
const env = { ...process.env, ECR_DEBUG: '' };

/** Runs the CLI; records exit code, stdout and stderr (with the work directory made neutral). */
function ecr(args, { record, input } = {}) {
  let status = 0;
  let stdout;
  let stderr = '';
  try {
    stdout = execFileSync('node', [cli, ...args], { cwd: root, env, input, maxBuffer: 1 << 30, stdio: ['pipe', 'pipe', 'pipe'] }).toString();
  } catch (e) {
    status = e.status ?? -1;
    stdout = e.stdout?.toString() ?? '';
    stderr = e.stderr?.toString() ?? '';
  }
  if (record) {
    const neutral = (s) => s.split(work).join('<work>').split(root).join('<root>');
    writeFileSync(join(out, record), `exit ${status}\n--- stdout\n${neutral(stdout)}\n--- stderr\n${neutral(stderr)}`);
  }
  return { status, stdout, stderr };
}
const sha = (file) => createHash('sha256').update(readFileSync(file)).digest('hex');
const copyOut = (file, name) => writeFileSync(join(out, name), readFileSync(file));

// 1. Fixtures, every backend and format.
const fixtures = join(root, 'test/fixtures');
for (const f of readdirSync(fixtures)
  .filter((n) => n.endsWith('.input.jsonl'))
  .sort()) {
  const name = f.replace('.input.jsonl', '');
  const input = join(fixtures, f);
  const config = join(fixtures, `${name}.config.json`);
  for (const backend of ['cpu', 'cpu-reference']) {
    ecr(['score', input, '--config', config, '--backend', backend], { record: `score-${name}-${backend}.txt` });
  }
  for (const fmt of ['parquet', 'arrow']) {
    const o = join(work, `${name}.${fmt}`);
    ecr(['score', input, '--config', config, '--backend', 'cpu', '--out', o], { record: `score-${name}-to-${fmt}.txt` });
    if (existsSync(o)) copyOut(o, `score-${name}.${fmt}`);
    const c = join(work, `${name}.conv.${fmt}`);
    ecr(['convert', input, c], { record: `convert-${name}-to-${fmt}.txt` });
    if (existsSync(c)) {
      copyOut(c, `convert-${name}.${fmt}`);
      const back = join(work, `${name}.back.${fmt}.jsonl`);
      ecr(['convert', c, back], { record: `convert-${name}-${fmt}-back.txt` });
      if (existsSync(back)) copyOut(back, `convert-${name}-${fmt}-back.jsonl`);
    }
  }
}

// 2. A big file in the three formats, each scored to its own format.
const n = Number(values.big);
if (n > 0) {
  execFileSync('bash', [join(root, 'bench/gen-formats.sh'), String(n), work], { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] });
  const sums = [];
  for (const fmt of ['jsonl', 'parquet', 'arrow']) {
    const o = join(work, `big.out.${fmt}`);
    const r = ecr(['score', join(work, `big.${fmt}`), '--backend', 'cpu', '--out', o]);
    sums.push(`big.${fmt} exit ${r.status} ${existsSync(o) ? sha(o) : 'no output'}`);
    rmSync(o, { force: true });
  }
  writeFileSync(join(out, 'big-score.sha256.txt'), sums.join('\n') + '\n');
}

// 3. Calibration, maturity, demo.
const calData = join(root, 'data/calibration-synthetic.jsonl');
const calOut = join(work, 'cal.json');
const report = join(work, 'report.html');
ecr(['calibrate', calData, '--out', calOut, '--report', report, '--bootstrap', '200'], { record: 'calibrate.txt' });
const undated = (s) =>
  s
    .split(work)
    .join('<work>')
    .split(root)
    .join('<root>')
    .replace(/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z/g, '<date>');
if (existsSync(calOut)) writeFileSync(join(out, 'calibrate.json'), undated(readFileSync(calOut, 'utf8')));
if (existsSync(report)) {
  // The report's data: every JSON object embedded in a <script type="application/json"> block.
  const html = undated(readFileSync(report, 'utf8'));
  const data = [...html.matchAll(/<script[^>]*application\/json[^>]*>([\s\S]*?)<\/script>/g)].map((m) => m[1]);
  writeFileSync(join(out, 'calibrate-report-data.txt'), data.join('\n'));
  writeFileSync(join(out, 'calibrate-report.sha256.txt'), createHash('sha256').update(html).digest('hex') + '\n');
}
ecr(['maturity', calData], { record: 'maturity.txt' });
ecr(['demo', '--backend', 'cpu', '--json'], { record: 'demo.txt' });

// 4. Help texts and argument errors.
for (const cmd of ['score', 'convert', 'bench', 'run', 'bench-pipeline', 'serve', 'demo', 'calibrate', 'maturity', 'worker']) {
  ecr([cmd, '--help'], { record: `help-${cmd}.txt` });
  ecr([cmd, '--no-such-flag'], { record: `badflag-${cmd}.txt` });
}
ecr([], { record: 'usage.txt' });

// 5. The gateway against the loopback LLM server.
await gatewaySnapshot();

rmSync(work, { recursive: true, force: true });
process.stdout.write(`snapshot written to ${out}\n`);

async function gatewaySnapshot() {
  const loopMain = ['dist/testing/loopback-main.js', 'dist/testing/loopback-main.js'].map((p) => join(root, p)).find(existsSync);
  const loop = spawn('node', [loopMain], { stdio: ['pipe', 'pipe', 'inherit'] });
  const { url: upstream } = JSON.parse(await firstLine(loop.stdout));
  const auditLog = join(work, 'audit.jsonl');
  const gw = spawn('node', [cli, 'serve', '--upstream', upstream, '--port', '0', '--audit-log', auditLog, '--log-level', 'info'], {
    cwd: root,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  gw.stderr.on('data', (d) => {
    log += d;
  });
  let base;
  for await (const line of lines(gw.stdout)) {
    log += line + '\n';
    const m = /"url":"(http:\/\/[^"]+)"/.exec(line);
    if (m) {
      base = (m[1] ?? m[2]).replace(/\/$/, '');
      break;
    }
  }
  if (base === undefined) throw new Error(`the gateway did not start; its output:\n${log}`);
  const requests = [
    ['GET', '/health/liveliness'],
    ['GET', '/health/readiness'],
    ['GET', '/v1/models'],
    ['POST', '/v1/chat/completions', { model: 'ecr/loop', messages: [{ role: 'user', content: 'Is 1013 prime?' }], ecr: { k: 4, horizon: 1 }, seed: 7 }],
    [
      'POST',
      '/v1/chat/completions',
      { model: 'ecr/loop', messages: [{ role: 'user', content: 'Name a colour.' }], ecr: { k: 3, horizon: 2, audit: 'full' }, seed: 3 },
    ],
    [
      'POST',
      '/v1/chat/completions',
      { model: 'ecr/loop', messages: [{ role: 'user', content: 'Stream it.' }], ecr: { k: 2, horizon: 1 }, stream: true, seed: 5 },
    ],
    ['POST', '/v1/chat/completions', { model: 'loop', messages: [{ role: 'user', content: 'pass me through' }], seed: 1 }],
    ['POST', '/v1/chat/completions', { model: 'ecr/loop', messages: [] }],
    ['POST', '/v1/chat/completions', { model: 'ecr/loop', messages: [{ role: 'user', content: 'x' }], ecr: { k: 99 } }],
    ['POST', '/v1/chat/completions', '{not json'],
  ];
  const answers = [];
  for (const [method, path, body] of requests) {
    const res = await fetch(base + path, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
    const text = await res.text();
    answers.push(`${method} ${path} ${JSON.stringify(body ?? null)}\n${res.status} ${res.headers.get('content-type')}\n${neutralise(text)}\n`);
  }
  const metrics = await (await fetch(base + '/metrics')).text();
  answers.push('metric names:\n' + [...new Set(metrics.split('\n').filter((l) => l.startsWith('# TYPE')))].join('\n'));
  writeFileSync(join(out, 'gateway.txt'), answers.join('\n'));
  gw.kill('SIGTERM');
  await new Promise((r) => gw.on('exit', r));
  loop.stdin.end();
  loop.kill('SIGTERM');
  if (existsSync(auditLog)) {
    const lines = readFileSync(auditLog, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => {
        const o = JSON.parse(l);
        for (const k of ['time', 'group', 'requestId']) if (k in o) o[k] = `<${k}>`;
        return JSON.stringify(o);
      });
    writeFileSync(join(out, 'gateway-audit.jsonl'), lines.join('\n') + '\n');
  }
}

/** Replaces what differs per run: ids, times, ports, durations. */
function neutralise(text) {
  return text
    .replace(/"(id|created|system_fingerprint)":\s*("[^"]*"|\d+)/g, '"$1":"<$1>"')
    .replace(/127\.0\.0\.1:\d+/g, '127.0.0.1:<port>')
    .replace(/"(\w*_ms|\w*Ms|requestId|group)":\s*("[^"]*"|[\d.e+-]+)/g, '"$1":"<$1>"');
}

async function firstLine(stream) {
  for await (const l of lines(stream)) return l;
  throw new Error('no line');
}
async function* lines(stream) {
  let buf = '';
  for await (const chunk of stream) {
    buf += chunk;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      yield buf.slice(0, i);
      buf = buf.slice(i + 1);
    }
  }
  if (buf) yield buf;
}
