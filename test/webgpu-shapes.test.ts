/**
 * Every shape the CPU backends accept also runs on the GPU: the large-shape fixtures (T = 24,
 * m = 40, d = 1024, A = 64, T = 70; expected values from cpu-reference, the float64 oracle)
 * through the cpu backend (1e-9), through webgpu's default choice and through every kernel the
 * device can run (1e-5, float32), and a mixed-shape `ecr score --backend webgpu` run.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { scoreBatch } from '../src/engine/score-batch.js';
import { resolveConfig } from '../src/core/config.js';
import { UsageError } from '../src/core/errors.js';
import { disposeBackends } from '../src/backends/registry.js';
import { chooseMetricsKernel } from '../src/backends/webgpu/kernel-choice.js';
import { expectMatchesFixture, fixtureBatch, loadFixtures, LARGE_SHAPE_FIXTURE_DIR } from './helpers/fixtures.js';
import { newBackend, webGpuGate } from './webgpu-gate.js';
import { internalsOf } from '../src/backends/webgpu/internals.js';

const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const gate = await webGpuGate();
const fixtures = loadFixtures(LARGE_SHAPE_FIXTURE_DIR);
const SLOW = 600_000;
const KERNELS = ['rows', 'components', 'rows-emulated', 'components-emulated', 'staged', 'general'] as const;

describe('large-shape fixtures on the cpu backend (float64)', () => {
  it('covers T = 24, m = 40, d = 1024, A = 64', () => {
    const shapes = fixtures.map((f) => f.records[0]);
    expect(shapes.some((r) => r.t === 24 && r.m === 40)).toBe(true);
    expect(shapes.some((r) => r.d === 1024)).toBe(true);
    expect(shapes.some((r) => r.a === 64)).toBe(true);
  });
  it.each(fixtures.map((f) => [f.name, f] as const))('%s within 1e-9 of cpu-reference', async (_name, fx) => {
    const { batch, groupNames, ids } = fixtureBatch(fx);
    expectMatchesFixture(await scoreBatch(batch, fx.config, { backend: 'cpu', groupNames, ids }), fx, 1e-9);
  });
});

describe.skipIf(!gate.available)(`large shapes on webgpu (${gate.available ? gate.adapter : `skipped: ${gate.reason}`})`, { timeout: SLOW }, () => {
  afterAll(async () => {
    await disposeBackends();
  });

  it.each(fixtures.map((f) => [f.name, f] as const))('%s via scoreBatch within 1e-5', async (_name, fx) => {
    const { batch, groupNames, ids } = fixtureBatch(fx);
    const res = await scoreBatch(batch, fx.config, { backend: 'webgpu', groupNames, ids });
    expect(res.backend).toBe('webgpu');
    expectMatchesFixture(res, fx, 1e-5);
  });

  it.each(fixtures.flatMap((f) => KERNELS.map((k) => [f.name, k, f] as const)))(
    '%s through the %s kernel within 1e-5, or refused',
    async (_name, kernel, fx) => {
      const backend = newBackend({ kernel });
      try {
        const { batch } = fixtureBatch(fx);
        const cfg = resolveConfig(fx.config);
        const d = await backend.describe();
        let runnable = true;
        try {
          chooseMetricsKernel(kernel, batch.t, batch.m, {
            subgroups: d.subgroups,
            subgroupMinSize: d.subgroupMinSize,
            ...(await internalsOf(backend).device()).limits,
          });
        } catch {
          runnable = false;
        }
        if (!runnable) return await expect(backend.computeMetrics(batch, cfg)).rejects.toBeInstanceOf(UsageError);
        const out = await backend.computeMetrics(batch, cfg);
        fx.expected.forEach((e, i) => {
          for (const [k, key] of [
            ['evb', 'EVB'],
            ['cr', 'CR'],
            ['ts', 'TS'],
            ['es', 'ES'],
            ['pd', 'PD'],
            ['cci', 'CCI'],
          ] as const) {
            expect(Math.abs(out[k][i] - e[key]), `${key} ${e.id}`).toBeLessThanOrEqual(1e-5);
          }
        });
      } finally {
        await backend.dispose();
      }
    },
  );

  it('the general kernel in chunks of one trajectory equals one chunk; unorm16 within its tolerance; covariance for m = 40', async () => {
    const fx = fixtures.find((f) => f.name === 'long-wide-proxy')!;
    const { batch } = fixtureBatch(fx);
    const cfg = resolveConfig(fx.config);
    const whole = newBackend();
    const split = newBackend({ chunkTrajectories: 1 });
    try {
      const a = await whole.computeMetrics(batch, cfg, { covariance: true });
      const b = await split.computeMetrics(batch, cfg, { covariance: true });
      for (const k of ['evb', 'cr', 'ts', 'es', 'pd', 'cci', 'covariance'] as const) expect(Array.from(b[k]!), k).toEqual(Array.from(a[k]!));
      // Covariance with m = 40 > 32 (means recomputed, not kept): fixed shrinkage targets. (The
      // Ledoit-Wolf estimate of the shrinkage itself is ill-conditioned in float32 where S' is
      // nearly mu I; see the WebGPU README, "Tolerance".)
      for (const c of [{ lambda: 0.4 }, { lambda: 0.3, shrinkTarget: 'scaled-identity' as const }]) {
        const gpu = await whole.computeMetrics(batch, resolveConfig(c), { covariance: true });
        const ref = await scoreBatch(batch, c, { backend: 'cpu-reference', covariance: true });
        ref.metrics.covariance!.forEach((x, i) => expect(Math.abs(gpu.covariance![i] - x), `${JSON.stringify(c)} [${i}]`).toBeLessThanOrEqual(1e-5));
      }
      const u16 = await whole.computeMetrics(batch, cfg, { compact: 'unorm16' });
      a.evb.forEach((x, i) => expect(Math.abs(u16.evb[i] - x)).toBeLessThanOrEqual(3e-5));
      expect((await internalsOf(split).planFor(batch, cfg)).chunks).toHaveLength(batch.n);
    } finally {
      await whole.dispose();
      await split.dispose();
    }
  });

  it("a trajectory too large for the general kernel's workgroup tile (T*m = 2400 > 2048) reads storage directly, same results as cpu-reference", async () => {
    let seed = 99;
    const rand = () => (seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32;
    const n = 5,
      t = 100,
      m = 24;
    const batch = { n, t, m, steps: Float64Array.from({ length: n * t * m }, () => Math.fround(rand())) };
    for (const c of [{}, { crWeights: Array.from({ length: m }, (_, j) => (j + 1) / m), evbMode: 'max-abs-change' as const }]) {
      const gpu = await scoreBatch(batch, c, { backend: 'webgpu' });
      const ref = await scoreBatch(batch, c, { backend: 'cpu-reference' });
      for (const k of ['evb', 'cr', 'ts', 'es', 'pd', 'cci'] as const)
        ref.metrics[k].forEach((x, i) => expect(Math.abs(gpu.metrics[k][i] - x), `${k}[${i}]`).toBeLessThanOrEqual(1e-5));
    }
  });

  it('ecr score --backend webgpu scores a file mixing fast-path and general shapes, selection across them', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'ecr-shapes-'));
    try {
      const lines = [
        ...readFileSync(fixtures.find((f) => f.name === 'long-wide-proxy')!.inputPath, 'utf8')
          .trim()
          .split('\n')
          .slice(0, 4),
        ...readFileSync(path.join(ROOT, 'test/fixtures/proxy-default.input.jsonl'), 'utf8').trim().split('\n').slice(0, 4),
      ];
      // One group spanning both shapes.
      const mixed = lines.map((l) => JSON.stringify({ ...JSON.parse(l), group: 'both' }));
      writeFileSync(path.join(dir, 'in.jsonl'), mixed.join('\n') + '\n');
      const run = (backend: string) =>
        spawnSync(process.execPath, [path.join(ROOT, 'dist/cli.js'), 'score', path.join(dir, 'in.jsonl'), '--backend', backend], {
          encoding: 'utf8',
          timeout: SLOW,
        });
      const gpu = run('webgpu');
      expect(gpu.status, gpu.stderr).toBe(0);
      const ref = run('cpu-reference')
        .stdout.trim()
        .split('\n')
        .map((l) => JSON.parse(l));
      const got = gpu.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l));
      expect(got).toHaveLength(8);
      got.forEach((g, i) => {
        for (const k of ['EVB', 'CR', 'TS', 'ES', 'PD', 'CCI']) expect(Math.abs(g[k] - ref[i][k]), `${k} ${i}`).toBeLessThanOrEqual(1e-5);
      });
      expect(got.filter((g) => g.selected)).toHaveLength(1);
      expect(got.findIndex((g) => g.selected)).toBe(ref.findIndex((g) => g.selected));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
