/**
 * `ecr bench` through the compiled CLI (run `npx tsc -p .` first): one parseable JSON object with
 * the documented keys and positive numbers; usage errors exit 2 with a message. Speed itself is
 * measured by running the command, never asserted here.
 */
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { syntheticBatch } from '../src/testing/synthetic-batch.js';
import { validateBatch } from '../src/core/batch.js';
import { runBench } from '../src/bench/run-bench.js';

const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const CLI = path.join(ROOT, 'dist', 'cli.js');

function ecr(...args: string[]) {
  return spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 60_000 });
}

describe('ecr bench CLI', () => {
  it.each([
    ['cpu', [] as string[]],
    ['cpu-reference', ['--d', '6', '--a', '4']],
    ['auto', ['--dtype', 'float32', '--unshared']],
    ['cpu', ['--reuse-outputs', '--covariance', '--a', '3']],
  ])('--backend %s --json prints one object with the documented keys', (backend, extra) => {
    const r = ecr('bench', '--backend', backend, '--n', '300', '--t', '4', '--m', '5', '--reps', '2', '--warmup', '0', '--json', ...extra);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines).toHaveLength(1);
    const out = JSON.parse(lines[0]);
    expect(out.backend).toBe(backend === 'auto' ? out.backend : backend);
    expect(['cpu', 'cpu-reference', 'webgpu']).toContain(out.backend);
    expect([out.n, out.t, out.m, out.reps]).toEqual([300, 4, 5, 2]);
    const flag = (name: string) => (extra.includes(name) ? Number(extra[extra.indexOf(name) + 1]) : null);
    expect(out.d).toBe(flag('--d'));
    expect(out.a).toBe(flag('--a'));
    expect(out.trajPerSec).toBeGreaterThan(0);
    expect(out.msPerBatch).toBeGreaterThan(0);
    expect(out.trajPerSec).toBeCloseTo(out.n / (out.msPerBatch / 1000), 6);
    expect(out.samplesMs).toHaveLength(2);
    expect(out.reuseOutputs).toBe(extra.includes('--reuse-outputs'));
    expect(out.shared).toBe(out.backend === 'cpu' && !extra.includes('--unshared'));
  });

  it('prints a human-readable summary without --json', () => {
    const r = ecr('bench', '--backend', 'cpu', '--n', '200', '--reps', '1');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/backend\s+cpu/);
    expect(r.stdout).toMatch(/n=200 t=5 m=8/);
    expect(r.stdout).toMatch(/[\d,]+ trajectories\/s/);
  });

  it.each([
    [['--n', '0'], /--n must be an integer >= 1/],
    [['--n', 'many'], /--n must be an integer/],
    [['--t', '1'], /--t must be an integer >= 2/],
    [['--m', '2.5'], /--m must be an integer/],
    [['--reps', '0'], /--reps must be an integer >= 1/],
    [['--backend', 'gpu'], /--backend must be one of/],
    [['--dtype', 'float16'], /--dtype must be float64 or float32/],
    [['--frobnicate'], /Unknown option/],
    [['--n', '1000000000', '--d', '4096'], /GiB of input/],
    [['--adapter', 'metal'], /--adapter must be one of auto, native, opengles/],
    [['--compact', 'unorm8'], /--compact must be "unorm16"/],
  ])('bad arguments %j exit 2 with a message', (args, message) => {
    const r = ecr('bench', ...args);
    expect(r.status).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(message);
  });
});

describe('synthetic batches', () => {
  it('are deterministic per seed, valid per the spec, and optionally in shared memory', () => {
    const opts = { n: 500, t: 5, m: 6, d: 8, a: 4, rewards: true };
    const a = syntheticBatch({ ...opts, seed: 1 });
    const b = syntheticBatch({ ...opts, seed: 1 });
    const c = syntheticBatch({ ...opts, seed: 2, shared: true, dtype: 'float32' });
    validateBatch(a);
    validateBatch(c);
    expect(Array.from(a.steps)).toEqual(Array.from(b.steps));
    expect(Array.from(a.policy!)).toEqual(Array.from(b.policy!));
    expect(Array.from(a.steps)).not.toEqual(Array.from(c.steps));
    expect(c.steps.buffer).toBeInstanceOf(SharedArrayBuffer);
    expect(c.steps).toBeInstanceOf(Float32Array);
    expect(a.steps.buffer).toBeInstanceOf(ArrayBuffer);
    expect(new Set(a.groups).size).toBe(Math.ceil(500 / 8));
  });

  it('mix stable and drifting trajectories', async () => {
    // A stable trajectory barely moves (TS near 1); a drifting one does not: both must be present.
    const { getBackend } = await import('../src/backends/registry.js');
    const { resolveConfig } = await import('../src/core/config.js');
    const batch = syntheticBatch({ n: 400, t: 5, m: 8, seed: 9 });
    const out = await (await getBackend('cpu')).computeMetrics(batch, resolveConfig({}));
    const ts = Array.from(out.ts);
    expect(ts.filter((x) => x > 0.99).length).toBeGreaterThan(100);
    expect(ts.filter((x) => x < 0.95).length).toBeGreaterThan(100);
  });
});

describe('runBench', () => {
  it('resolves auto to a concrete backend and reports the median of its repetitions', async () => {
    const r = await runBench({ backend: 'cpu', n: 256, t: 3, m: 4, reps: 3, warmup: 0 });
    expect(r.backend).toBe('cpu');
    expect(r.samplesMs).toHaveLength(3);
    const sorted = [...r.samplesMs].sort((x, y) => x - y);
    expect(r.msPerBatch).toBe(sorted[1]);
    expect(r.shared).toBe(true);
    const ref = await runBench({ backend: 'cpu-reference', n: 64, t: 3, m: 4, reps: 2, warmup: 0 });
    expect(ref.shared).toBe(false);
    expect(ref.msPerBatch).toBe((ref.samplesMs[0] + ref.samplesMs[1]) / 2);
  });
});
