#!/usr/bin/env node
/**
 * `ecr score` on JSONL against orjson + numpy (bench/orjson_numpy_score.py), in one run on the
 * same file and machine (issue 12: the JSONL path at >= 4x the Python script on 2 cores).
 *
 * usage: node bench/jsonl-score-bench.mjs [--n 1000000] [--t 5] [--m 8] [--file PATH] [--rounds 2]
 *                                         [--ecr-args="--threads 2"] [--no-check]
 *
 * Generates the file once (bench/gen-score-input.mjs, groups of 8 candidates), reads it once so
 * both programs start from the page cache, then runs the two programs alternately, `--rounds`
 * times each, file to file, timing each process from start to exit. Prints one line per run, the
 * best records/s of each and the ratio, then checks that the two outputs agree (same ids, groups,
 * admissible and selected flags; metrics within 1e-9).
 */
import { spawnSync } from 'node:child_process';
import { createReadStream, existsSync, openSync, closeSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const { values } = parseArgs({
  options: {
    n: { type: 'string', default: '1000000' },
    t: { type: 'string', default: '5' },
    m: { type: 'string', default: '8' },
    file: { type: 'string' },
    rounds: { type: 'string', default: '2' },
    'ecr-args': { type: 'string', default: '' },
    'no-check': { type: 'boolean', default: false },
  },
});
const n = Number(values.n);
const file = values.file ?? path.join(os.tmpdir(), `ecr-bench-${n}-t${values.t}-m${values.m}.jsonl`);
const outEcr = `${file}.ecr.out`;
const outPy = `${file}.py.out`;

if (!existsSync(file)) {
  const fd = openSync(file, 'w');
  const r = spawnSync(
    process.execPath,
    [path.join(root, 'bench/gen-score-input.mjs'), String(n), '--t', values.t, '--m', values.m, '--groups', String(Math.max(1, Math.floor(n / 8)))],
    { stdio: ['ignore', fd, 'inherit'] },
  );
  closeSync(fd);
  if (r.status !== 0) throw new Error('generating the input failed');
}
readFileSync(file); // into the page cache
const mb = (statSync(file).size / 1e6).toFixed(0);

function time(name, cmd, args) {
  const start = performance.now();
  const r = spawnSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
  const seconds = (performance.now() - start) / 1000;
  if (r.status !== 0) throw new Error(`${name} failed (${r.status}): ${r.stderr}`);
  const rate = n / seconds;
  console.log(`${name.padEnd(16)} ${seconds.toFixed(2)} s  ${Math.round(rate).toLocaleString('en-US')} records/s`);
  return rate;
}

const ecrArgs = values['ecr-args'].split(' ').filter(Boolean);
console.log(
  `${n.toLocaleString('en-US')} records, T=${values.t}, m=${values.m}, ${mb} MB: ${file}; ${os.availableParallelism()} cores, load ${os
    .loadavg()
    .map((l) => l.toFixed(1))
    .join(' ')}`,
);
const best = { ecr: 0, py: 0 };
for (let round = 0; round < Number(values.rounds); round++) {
  best.ecr = Math.max(
    best.ecr,
    time('ecr score', process.execPath, [path.join(root, 'dist/cli.js'), 'score', file, '--backend', 'cpu', ...ecrArgs, '--out', outEcr]),
  );
  best.py = Math.max(best.py, time('orjson + numpy', 'python3', [path.join(root, 'bench/orjson_numpy_score.py'), file, '--out', outPy]));
}
console.log(
  `best: ecr score ${Math.round(best.ecr).toLocaleString('en-US')} records/s, orjson + numpy ${Math.round(best.py).toLocaleString('en-US')} records/s: ${(best.ecr / best.py).toFixed(2)}x (load after: ${os.loadavg()[0].toFixed(1)})`,
);

if (!values['no-check']) {
  const a = readline.createInterface({ input: createReadStream(outEcr) })[Symbol.asyncIterator]();
  const b = readline.createInterface({ input: createReadStream(outPy) })[Symbol.asyncIterator]();
  let lines = 0,
    maxDiff = 0;
  for (;;) {
    const [x, y] = await Promise.all([a.next(), b.next()]);
    if (x.done || y.done) {
      if (x.done !== y.done) throw new Error(`outputs differ in length after ${lines} lines`);
      break;
    }
    const p = JSON.parse(x.value),
      q = JSON.parse(y.value);
    lines++;
    for (const k of ['id', 'group', 'admissible', 'selected']) if (p[k] !== q[k]) throw new Error(`line ${lines}: ${k} ${p[k]} vs ${q[k]}`);
    for (const k of ['EVB', 'CR', 'TS', 'ES', 'PD', 'CCI']) maxDiff = Math.max(maxDiff, Math.abs(p[k] - q[k]));
  }
  console.log(`outputs agree: ${lines} lines, flags identical, largest metric difference ${maxDiff.toExponential(2)}`);
  if (maxDiff > 1e-9) process.exitCode = 1;
}
rmSync(outEcr, { force: true });
rmSync(outPy, { force: true });
