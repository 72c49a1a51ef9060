/**
 * The WebGPU backend against the golden fixtures (float32: within 1e-5) and the metric
 * properties, plus what only a GPU path has: every kernel on every shape it can run, chunked
 * streaming, unorm16 uploads, and device failures surfacing as GpuError. Selection is the host's
 * (GroupSelector in scoreBatch / scoreRecords): the backend returns none.
 */
import { afterAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { scoreBatch } from '../src/engine/score-batch.js';
import { resolveConfig, type EcrConfig } from '../src/core/config.js';
import { GpuError } from '../src/core/errors.js';
import { disposeBackends, getBackend } from '../src/backends/registry.js';
import { BufferUsage } from '../src/backends/webgpu/device/usage.js';
import type { Batch } from '../src/core/batch.js';
import type { BackendOutput } from '../src/backends/backend.js';
import { loadFixtures, fixtureBatch, expectMatchesFixture } from './helpers/fixtures.js';
import { newBackend, webGpuGate } from './webgpu-gate.js';
import { internalsOf } from '../src/backends/webgpu/internals.js';
import { chooseMetricsKernel } from '../src/backends/webgpu/kernel-choice.js';
import { lanesPerTrajectory, lanesWorkgroupSize } from '../src/backends/webgpu/programs/lanes.js';
import { UsageError } from '../src/core/errors.js';

const gate = await webGpuGate();
const TOL = 1e-5;
/** No test here depends on speed: a software adapter on a machine whose cores are busy is slow, not wrong. */
const SLOW = 600_000;
const fixtures = loadFixtures();
const METRICS = ['evb', 'cr', 'ts', 'es', 'pd', 'cci'] as const;

/** Deterministic pseudo-random numbers (tests must not depend on Math.random). */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/** A batch with every optional input, E quantized to `levels` so that ranks and CCIs tie. */
function randomBatch(
  n: number,
  seed: number,
  opts: { t?: number; m?: number; d?: number; a?: number; groups?: number; levels?: number; base?: boolean } = {},
): Batch {
  const r = rng(seed);
  const t = opts.t ?? 5,
    m = opts.m ?? 8;
  const q = (x: number) => (opts.levels ? Math.round(x * opts.levels) / opts.levels : x);
  const steps = Float64Array.from({ length: n * t * m }, () => q(r()));
  const b: Batch = { n, t, m, steps };
  const extra: Partial<Record<keyof Batch, unknown>> = {};
  if (opts.d) {
    extra.d = opts.d;
    extra.embeddings = Float64Array.from({ length: n * t * opts.d }, () => r() * 2 - 1);
  }
  if (opts.a) {
    extra.a = opts.a;
    extra.policy = Float64Array.from({ length: n * t * opts.a }, () => r());
  }
  if (opts.groups) extra.groups = Int32Array.from({ length: n }, () => Math.floor(r() * opts.groups!));
  if (opts.base) extra.baseScore = Float64Array.from({ length: n }, () => (r() < 0.3 ? Number.NaN : q(r())));
  return { ...b, ...extra } as Batch;
}

function expectSameOutput(a: BackendOutput, b: BackendOutput): void {
  for (const k of METRICS) expect(Array.from(b[k]), k).toEqual(Array.from(a[k]));
  if (a.covariance) expect(Array.from(b.covariance!)).toEqual(Array.from(a.covariance));
}

describe('metrics kernel choice (no device needed)', () => {
  const caps = (subgroups: boolean, subgroupMinSize = 32) => ({
    subgroups,
    subgroupMinSize,
    maxComputeWorkgroupSizeX: 256,
    maxComputeWorkgroupStorageSize: 16384,
  });
  it('auto: rows where m is a multiple of 4 and the lanes fit the smallest subgroup, else components, else staged, else general', () => {
    expect(chooseMetricsKernel('auto', 5, 7, caps(true))).toBe('components');
    expect(chooseMetricsKernel('auto', 5, 8, caps(false))).toBe('staged');
    expect(chooseMetricsKernel('auto', 5, 7, caps(true, 4))).toBe('staged'); // 8 lanes > subgroups of 4
    expect(chooseMetricsKernel('auto', 5, 3, caps(true, 4))).toBe('components'); // 3 components -> 4 lanes
    expect(chooseMetricsKernel('auto', 16, 31, caps(true, 32))).toBe('components');
    expect(chooseMetricsKernel('auto', 16, 32, caps(true, 32))).toBe('rows');
    expect(chooseMetricsKernel('auto', 5, 8, caps(true, 4))).toBe('rows'); // rows: 2 lanes
    expect(chooseMetricsKernel('auto', 5, 6, caps(true))).toBe('components');
  });
  it('auto sends every shape beyond the fast paths to the general kernel, which runs anything', () => {
    for (const sub of [true, false]) {
      expect(chooseMetricsKernel('auto', 17, 8, caps(sub))).toBe('general');
      expect(chooseMetricsKernel('auto', 24, 40, caps(sub))).toBe('general');
      expect(chooseMetricsKernel('auto', 5, 33, caps(sub))).toBe('general');
      expect(chooseMetricsKernel('auto', 4096, 5000, caps(sub))).toBe('general');
    }
    // Where not even 4 staged trajectories fit the workgroup storage (4 x 513 floats > 8 KiB), the staged kernel is unfit too.
    expect(chooseMetricsKernel('auto', 16, 32, { ...caps(false), maxComputeWorkgroupStorageSize: 8192 })).toBe('general');
    expect(chooseMetricsKernel('general', 2, 1, caps(false))).toBe('general');
  });
  it('the rows layout runs only where m is a multiple of 4, with m/4 lanes (rounded up to a power of two) in the smallest subgroup', () => {
    expect(chooseMetricsKernel('rows', 5, 8, caps(true, 2))).toBe('rows'); // 2 lanes
    expect(chooseMetricsKernel('rows', 5, 12, caps(true, 4))).toBe('rows'); // 3 -> 4 lanes
    expect(() => chooseMetricsKernel('rows', 5, 12, caps(true, 2))).toThrow(UsageError);
    expect(() => chooseMetricsKernel('rows', 5, 6, caps(true))).toThrow(/multiple of 4/);
    expect(() => chooseMetricsKernel('rows', 5, 8, caps(false))).toThrow(UsageError);
    expect(chooseMetricsKernel('rows-emulated', 5, 8, caps(false))).toBe('rows-emulated');
    expect(() => chooseMetricsKernel('rows-emulated', 5, 7, caps(false))).toThrow(UsageError);
    expect(lanesPerTrajectory(8, 'rows')).toBe(2);
    expect(lanesPerTrajectory(4, 'rows')).toBe(1);
    expect(lanesPerTrajectory(20, 'rows')).toBe(8);
    expect(lanesPerTrajectory(5, 'components')).toBe(8);
  });
  it('lane kernel workgroups: the preferred size within the device limit and 4..256 trajectories', () => {
    expect(lanesWorkgroupSize(256, 2)).toBe(256);
    expect(lanesWorkgroupSize(256, 2, 512)).toBe(256);
    expect(lanesWorkgroupSize(1024, 1, 1024)).toBe(256); // at most 256 trajectories
    expect(lanesWorkgroupSize(1024, 8, 1024)).toBe(1024);
    expect(lanesWorkgroupSize(256, 2, 64)).toBe(64);
    expect(() => lanesWorkgroupSize(256, 8, 16)).toThrow(UsageError);
    expect(() => lanesWorkgroupSize(256, 2, 100)).toThrow(/power of two/);
  });
  it('forcing a kernel the device or shape cannot run is a UsageError, never a substitute', () => {
    expect(() => chooseMetricsKernel('components', 5, 8, caps(false))).toThrow(UsageError);
    expect(() => chooseMetricsKernel('components', 5, 8, caps(true, 4))).toThrow(UsageError);
    expect(() => chooseMetricsKernel('staged', 17, 8, caps(true))).toThrow(/T = 17/);
    expect(() => chooseMetricsKernel('staged', 5, 33, caps(true))).toThrow(/m = 33/);
    expect(chooseMetricsKernel('components-emulated', 5, 8, caps(false))).toBe('components-emulated');
    expect(chooseMetricsKernel('staged', 5, 8, caps(true))).toBe('staged');
    expect(() => chooseMetricsKernel('fast' as never, 5, 8, caps(true))).toThrow(UsageError);
  });
});

describe.skipIf(!gate.available)(`webgpu backend (${gate.available ? gate.adapter : `skipped: ${gate.reason}`})`, { timeout: SLOW }, () => {
  afterAll(async () => {
    await disposeBackends();
  });

  describe('fixtures', () => {
    it.each(fixtures.map((f) => [f.name, f] as const))('%s via scoreBatch within 1e-5', async (_name, fx) => {
      const { batch, groupNames, ids } = fixtureBatch(fx);
      const res = await scoreBatch(batch, fx.config, { backend: 'webgpu', groupNames, ids });
      expect(res.backend).toBe('webgpu');
      expectMatchesFixture(res, fx, TOL);
    });

    it("the backend returns metrics only: admissibility and selection are the host's (no second selection to disagree with)", async () => {
      const fx = fixtures.find((f) => f.name === 'ties-quantized')!;
      const { batch } = fixtureBatch(fx);
      const out = await (await getBackend('webgpu')).computeMetrics(batch, resolveConfig(fx.config));
      expect('admissible' in out).toBe(false);
      expect('groupSelected' in out).toBe(false);
      expect(out.cci).toHaveLength(batch.n);
    });

    it('covariance output matches cpu-reference within 1e-5 for every shrinkage', async () => {
      const fx = fixtures.find((f) => f.name === 'ledoit-wolf')!;
      const { batch } = fixtureBatch(fx);
      for (const config of [{ lambda: 'ledoit-wolf' }, { lambda: 0.3, shrinkTarget: 'scaled-identity' }, { lambda: 0.4 }] as EcrConfig[]) {
        const gpu = await scoreBatch(batch, config, { backend: 'webgpu', covariance: true });
        const ref = await scoreBatch(batch, config, { backend: 'cpu-reference', covariance: true });
        const c = gpu.metrics.covariance!;
        expect(c.length).toBe(batch.n * batch.m * batch.m);
        ref.metrics.covariance!.forEach((x, i) => expect(Math.abs(c[i] - x), `${JSON.stringify(config)} [${i}]`).toBeLessThanOrEqual(TOL));
      }
    });
  });

  describe('properties', () => {
    const unit = fc.double({ min: 0, max: 1, noNaN: true });
    // A few representative shapes, not a random shape search: every new (T, m, d) compiles
    // pipelines, which on a loaded software adapter took minutes (the random search over shapes
    // runs on the CPU backends, test/properties-cpu.test.ts). These cover one component, odd m
    // (padding lanes), m a multiple of 4 (rows layout), the register path and the largest fast
    // path, embeddings with and without whole 16-byte words, and a policy.
    const SHAPES = [
      { t: 2, m: 1 },
      { t: 3, m: 5, d: 7 },
      { t: 5, m: 8, a: 3 },
      { t: 7, m: 12, d: 12 },
      { t: 16, m: 32, a: 4, d: 20 },
    ] as const;
    const shapeArb = fc
      .record({
        shape: fc.constantFrom(...SHAPES),
        n: fc.integer({ min: 1, max: 40 }),
        withD: fc.boolean(),
        withA: fc.boolean(),
        groups: fc.integer({ min: 1, max: 4 }),
        base: fc.boolean(),
        levels: fc.constantFrom(0, 4),
        seed: fc.integer(),
      })
      .map((s) => ({
        ...s,
        t: s.shape.t,
        m: s.shape.m,
        d: s.withD && 'd' in s.shape ? s.shape.d : undefined,
        a: s.withA && 'a' in s.shape ? s.shape.a : undefined,
      }));
    const batchArb = shapeArb.map((s) => randomBatch(s.n, s.seed, s));
    const configArb: fc.Arbitrary<EcrConfig> = fc.record({
      lambda: fc.oneof(unit, fc.constant('ledoit-wolf' as const)),
      shrinkTarget: fc.constantFrom('identity' as const, 'scaled-identity' as const),
      evbMode: fc.constantFrom('trace' as const, 'max-abs-change' as const),
      preset: fc.constantFrom('default' as const, 'compliance' as const, 'creative' as const, 'conversational' as const),
      tau: unit,
    });

    it(
      'metrics in [0, 1], within 1e-5 of cpu-reference',
      async () => {
        const backend = await getBackend('webgpu');
        await fc.assert(
          fc.asyncProperty(batchArb, configArb, async (batch, config) => {
            const cfg = resolveConfig(config);
            const out = await backend.computeMetrics(batch, cfg);
            const ref = await scoreBatch(batch, cfg, { backend: 'cpu-reference' });
            for (const k of METRICS) {
              out[k].forEach((x, i) => {
                expect(x).toBeGreaterThanOrEqual(0);
                expect(x).toBeLessThanOrEqual(1);
                // CR is a step count: a near-tie that float32 resolves otherwise moves it by 1/H.
                if (k !== 'cr' && k !== 'cci') expect(Math.abs(x - ref.metrics[k][i]), `${k}[${i}]`).toBeLessThanOrEqual(TOL);
              });
            }
          }),
          { numRuns: 40 },
        );
      },
      SLOW,
    );

    it('reordering the trajectories reorders the metrics exactly', async () => {
      const backend = await getBackend('webgpu');
      const batch = randomBatch(500, 7, { d: 24, a: 3, groups: 9, base: true });
      const r = rng(11);
      const perm = Array.from({ length: batch.n }, (_, i) => i).sort(() => r() - 0.5);
      const rows = (a: Float64Array | undefined, w: number) =>
        a ? Float64Array.from({ length: a.length }, (_, x) => a[perm[Math.floor(x / w)] * w + (x % w)]) : undefined;
      const permuted: Batch = {
        ...batch,
        steps: rows(batch.steps as Float64Array, batch.t * batch.m)!,
        embeddings: rows(batch.embeddings as Float64Array, batch.t * batch.d!),
        policy: rows(batch.policy as Float64Array, batch.t * batch.a!),
        groups: Int32Array.from(perm, (p) => batch.groups![p]),
        baseScore: Float64Array.from(perm, (p) => batch.baseScore![p]),
      };
      const cfg = resolveConfig({});
      const a = await backend.computeMetrics(batch, cfg);
      const b = await backend.computeMetrics(permuted, cfg);
      for (const k of METRICS) perm.forEach((src, i) => expect(b[k][i]).toBe(a[k][src]));
    });

    it(
      'a constant trajectory has EVB 0 (lambda 0), CR 0, TS 1, PD 0, ES 1',
      async () => {
        const backend = await getBackend('webgpu');
        const rowOf = (shape: { t: number; m: number }) => fc.array(unit, { minLength: shape.m, maxLength: shape.m }).map((row) => ({ t: shape.t, row }));
        await fc.assert(
          fc.asyncProperty(fc.constantFrom(...SHAPES).chain(rowOf), async ({ t, row }) => {
            const m = row.length;
            const steps = new Float64Array(t * m);
            for (let s = 0; s < t; s++) steps.set(row, s * m);
            for (const lambda of [0, 'ledoit-wolf'] as const) {
              const out = await backend.computeMetrics({ n: 1, t, m, steps }, resolveConfig({ lambda }));
              expect(out.evb[0]).toBeCloseTo(0, 6);
              expect(out.cr[0]).toBe(0);
              expect(out.ts[0]).toBeCloseTo(1, 6);
              expect(out.pd[0]).toBeCloseTo(0, 6);
              expect(out.es[0]).toBeCloseTo(1, 6);
            }
          }),
          { numRuns: 25 },
        );
      },
      SLOW,
    );

    it('does not mutate its inputs', async () => {
      const batch = randomBatch(300, 3, { d: 16, a: 4, groups: 5, base: true });
      const before = [batch.steps, batch.embeddings, batch.policy, batch.groups, batch.baseScore].map((a) => Array.from(a!));
      await scoreBatch(batch, {}, { backend: 'webgpu', covariance: true });
      await (await getBackend('webgpu')).computeMetrics(batch, resolveConfig({}), { compact: 'unorm16' });
      expect([batch.steps, batch.embeddings, batch.policy, batch.groups, batch.baseScore].map((a) => Array.from(a!))).toEqual(before);
    });

    it('scores the empty batch to empty results', async () => {
      const out = await (await getBackend('webgpu')).computeMetrics({ n: 0, t: 3, m: 4, steps: new Float64Array(0) }, resolveConfig({}));
      expect(out.cci.length).toBe(0);
      const r = await scoreBatch({ n: 0, t: 3, m: 4, steps: new Float64Array(0) }, {}, { backend: 'webgpu' });
      expect(r.groups).toEqual([]);
    });
  });

  describe('metrics kernels', () => {
    it('the default run takes the subgroup lane kernel exactly when the device has subgroups, the general kernel beyond the fast paths', async () => {
      const backend = newBackend();
      try {
        const { subgroups, subgroupMinSize } = await backend.describe();
        const p = await backend.profile(randomBatch(300, 3), resolveConfig({}));
        expect(p.metricsKernel).toBe(!subgroups ? 'staged' : subgroupMinSize >= 2 ? 'rows' : 'staged');
        expect((await backend.profile(randomBatch(50, 3, { t: 24, m: 40 }), resolveConfig({}))).metricsKernel).toBe('general');
        expect((await backend.profile(randomBatch(50, 3, { t: 17, m: 3 }), resolveConfig({}))).metricsKernel).toBe('general');
      } finally {
        await backend.dispose();
      }
    });

    // Every kernel this device can run, on every fixture whose shape it takes: the lane kernels'
    // logic (exchanges within a trajectory's lanes, padding lanes) through workgroup-memory
    // exchanges where the device has no subgroups, the staged kernel, and the general kernel on
    // shapes the fast paths also take.
    const KERNELS = ['rows', 'components', 'rows-emulated', 'components-emulated', 'staged', 'general'] as const;
    it.each(fixtures.flatMap((f) => KERNELS.map((k) => [f.name, k, f] as const)))(
      '%s through the %s kernel within 1e-5 (or refused, never substituted)',
      async (_name, kernel, fx) => {
        const backend = newBackend({ kernel });
        try {
          const { batch } = fixtureBatch(fx);
          const cfg = resolveConfig(fx.config);
          const d = await backend.describe();
          const caps = { subgroups: d.subgroups, subgroupMinSize: d.subgroupMinSize, ...(await internalsOf(backend).device()).limits };
          let runnable = true;
          try {
            chooseMetricsKernel(kernel, batch.t, batch.m, caps);
          } catch {
            runnable = false;
          }
          if (!runnable) {
            await expect(backend.computeMetrics(batch, cfg)).rejects.toBeInstanceOf(UsageError);
            return;
          }
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
              expect(Math.abs(out[k][i] - e[key]), `${key} ${e.id}`).toBeLessThanOrEqual(TOL);
            }
          });
          expect((await backend.profile(batch, cfg)).metricsKernel).toBe(kernel);
        } finally {
          await backend.dispose();
        }
      },
    );

    it.each(['components-emulated', 'rows-emulated', 'general'] as const)(
      'the %s kernel equals the staged kernel within 2e-7 (rows: 5e-7, general: 1e-6) on ties, padding lanes, weights, groups and chunks',
      async (kernel) => {
        const staged = newBackend({ kernel: 'staged' });
        const other = newBackend({ kernel, chunkTrajectories: 512 });
        try {
          const weights12 = [1, 0.5, 0.2, 1, 0.3, 0.9, 0.1, 0.7, 0.05, 0.6, 0.4, 0.8];
          const cases: [Batch, EcrConfig][] =
            kernel === 'components-emulated'
              ? [
                  [randomBatch(2000, 41, { t: 5, m: 8, groups: 300, base: true, levels: 4 }), { crWeights: weights12.slice(0, 8), confIndex: 3 }],
                  [randomBatch(1500, 42, { t: 3, m: 5, groups: 40, levels: 3 }), { evbMode: 'max-abs-change', tau: 0.5 }],
                  [randomBatch(700, 43, { t: 16, m: 32, a: 4, groups: 7 }), { lambda: 'ledoit-wolf' }],
                  [randomBatch(900, 44, { t: 2, m: 1, d: 12 }), { shrinkTarget: 'scaled-identity' }],
                ]
              : [
                  // m = 8 (2 lanes), 12 (3 real lanes and a padding lane), 4 (one lane), 32 (8 lanes); ties across and within lanes.
                  [randomBatch(2000, 41, { t: 5, m: 8, groups: 300, base: true, levels: 4 }), { crWeights: weights12.slice(0, 8), confIndex: 6 }],
                  [randomBatch(1500, 42, { t: 3, m: 12, groups: 40, levels: 3 }), { evbMode: 'max-abs-change', tau: 0.5, crWeights: weights12, confIndex: 9 }],
                  [randomBatch(1100, 45, { t: 7, m: 12, a: 3, levels: 2 }), { lambda: 0.3 }],
                  [randomBatch(900, 44, { t: 2, m: 4, d: 12, groups: 5, levels: 1 }), { shrinkTarget: 'scaled-identity', confIndex: 1 }],
                  [randomBatch(700, 43, { t: 16, m: 32, a: 4, groups: 7 }), { lambda: 'ledoit-wolf', confIndex: 31 }],
                  // Equal CR weights take the pair-order path: 2, 4 and 8 lanes (m = 20: 3 padding lanes), ties.
                  [randomBatch(1200, 46, { t: 6, m: 8, groups: 100, levels: 2 }), {}],
                  [randomBatch(800, 47, { t: 5, m: 16, levels: 3 }), { confIndex: 13 }],
                  [randomBatch(600, 48, { t: 4, m: 20, levels: 2 }), { evbMode: 'max-abs-change' }],
                  [randomBatch(600, 49, { t: 9, m: 32, levels: 5 }), {}],
                  [randomBatch(600, 50, { t: 5, m: 8, levels: 2 }), { crWeights: Array.from({ length: 8 }, () => 0.5) }],
                ];
          if (kernel === 'general')
            cases.push([randomBatch(600, 51, { t: 3, m: 5, d: 7, a: 2, levels: 3 }), { evbMode: 'max-abs-change', crWeights: [0.2, 1, 0.4, 0.4, 0.9] }]);
          for (const [batch, c] of cases) {
            const cfg = resolveConfig(c);
            const a = await staged.computeMetrics(batch, cfg);
            const b = await other.computeMetrics(batch, cfg);
            // The rows layout adds each lane's 4 components first, and the general kernel reduces
            // over a workgroup, so sums round differently.
            const tol = kernel === 'components-emulated' ? 2e-7 : kernel === 'rows-emulated' ? 5e-7 : 1e-6;
            for (const k of METRICS) a[k].forEach((x, i) => expect(Math.abs(b[k][i] - x), `${k}[${i}] t=${batch.t} m=${batch.m}`).toBeLessThanOrEqual(tol));
          }
          const p = await other.profile(cases[0][0], resolveConfig(cases[0][1]));
          expect(p.metricsKernel).toBe(kernel);
        } finally {
          await staged.dispose();
          await other.dispose();
        }
      },
    );

    it('the lane kernels give the same results with smaller workgroups', async () => {
      const batch = randomBatch(1500, 61, { t: 5, m: 8, groups: 1, levels: 3, base: true });
      for (const kernel of ['rows-emulated', 'components-emulated'] as const) {
        const wide = newBackend({ kernel, chunkTrajectories: 512 });
        const narrow = newBackend({ kernel, chunkTrajectories: 512, laneWorkgroupSize: 32 });
        try {
          const cfg = resolveConfig({ tau: 0.6 });
          expectSameOutput(await wide.computeMetrics(batch, cfg), await narrow.computeMetrics(batch, cfg));
        } finally {
          await wide.dispose();
          await narrow.dispose();
        }
      }
    });

    it('computeMetricsF32 writes the float32 values of computeMetrics into the caller arrays', async () => {
      const backend = (await getBackend('webgpu')) as unknown as import('../src/backends/webgpu/index.js').WebGpuBackend;
      const batch = randomBatch(900, 19, { groups: 11 });
      const cfg = resolveConfig({});
      const ref = await backend.computeMetrics(batch, cfg);
      const out32 = {
        evb: new Float32Array(900),
        cr: new Float32Array(900),
        ts: new Float32Array(900),
        es: new Float32Array(900),
        pd: new Float32Array(900),
        cci: new Float32Array(900),
      };
      await backend.computeMetricsF32(batch, cfg, out32);
      for (const k of METRICS) expect(Array.from(out32[k]), k).toEqual(Array.from(ref[k], Math.fround));
      await expect(backend.computeMetricsF32(batch, cfg, { ...out32, cci: new Float32Array(899) })).rejects.toThrow(UsageError);
    });
  });

  describe('streaming, compact inputs, reuse', () => {
    it('a batch split into many chunks equals the unsplit run exactly (covariance included)', async () => {
      const whole = newBackend();
      const split = newBackend({ chunkTrajectories: 256, slots: 2 });
      try {
        const batch = randomBatch(3000, 5, { d: 40, a: 3, groups: 700, base: true, levels: 8 });
        const cfg = resolveConfig({ lambda: 'ledoit-wolf', tau: 0.55 });
        const a = await whole.computeMetrics(batch, cfg, { covariance: true });
        const b = await split.computeMetrics(batch, cfg, { covariance: true });
        expectSameOutput(a, b);
        // One group spanning every chunk: the cross-chunk selection state.
        const single = { ...batch, groups: undefined, baseScore: undefined };
        expectSameOutput(await whole.computeMetrics(single, cfg), await split.computeMetrics(single, cfg));
      } finally {
        await whole.dispose();
        await split.dispose();
      }
    });

    it('unorm16 uploads stay within the stated tolerance of float32 on every fixture', async () => {
      const backend = await getBackend('webgpu');
      // Per-value error 1/131070; measured worst on the fixtures: PD 4.2e-4, CCI 8.4e-5, EVB/TS/ES 1.8e-5, CR exact.
      const bound = { evb: 3e-5, cr: 0, ts: 3e-5, es: 1e-4, pd: 1e-3, cci: 2e-4 };
      for (const fx of fixtures) {
        const { batch } = fixtureBatch(fx);
        const cfg = resolveConfig(fx.config);
        const f32 = await backend.computeMetrics(batch, cfg);
        const u16 = await backend.computeMetrics(batch, cfg, { compact: 'unorm16' });
        for (const k of METRICS) f32[k].forEach((x, i) => expect(Math.abs(u16[k][i] - x), `${fx.name} ${k}[${i}]`).toBeLessThanOrEqual(bound[k]));
        // Quantization really happened: some value moved.
        if (fx.name === 'proxy-default') expect(METRICS.some((k) => f32[k].some((x, i) => x !== u16[k][i]))).toBe(true);
      }
    });

    it('pre-encoded unorm16 steps (stepsUnorm16) give exactly the compact: unorm16 results, batch.steps unread', async () => {
      const { encodeUnorm16 } = await import('../src/backends/webgpu/encode.js');
      const split = newBackend({ chunkTrajectories: 256, slots: 2 });
      try {
        // m = 3, T = 5: 15 values per trajectory, so the last chunk (n = 1001) holds an odd count of codes.
        const batch = randomBatch(1001, 23, { t: 5, m: 3, groups: 40, base: true, levels: 16 });
        const cfg = resolveConfig({ tau: 0.55 });
        const codes = encodeUnorm16(batch.steps);
        expect(codes).toBeInstanceOf(Uint16Array);
        expect(codes.length).toBe(batch.steps.length);
        const compact = await split.computeMetrics(batch, cfg, { compact: 'unorm16' });
        const garbage = { ...batch, steps: new Float64Array(batch.steps.length).fill(Number.NaN) };
        const pre = await split.computeMetrics(garbage, cfg, { stepsUnorm16: codes });
        expectSameOutput(compact, pre);
        const out32 = Object.fromEntries(METRICS.map((k) => [k, new Float32Array(batch.n)])) as unknown as Parameters<typeof split.computeMetricsF32>[2];
        await split.computeMetricsF32(garbage, cfg, out32, { stepsUnorm16: codes });
        for (const k of METRICS) expect(Array.from(out32[k]), k).toEqual(Array.from(compact[k]));
        await expect(split.computeMetrics(batch, cfg, { stepsUnorm16: codes.subarray(1) })).rejects.toBeInstanceOf(UsageError);
        // Chunks of 255: every chunk starts at an odd value index (255 * 15), unorm16 pairs restart per chunk.
        const odd = newBackend({ chunkTrajectories: 255 });
        try {
          expectSameOutput(compact, await odd.computeMetrics(batch, cfg, { compact: 'unorm16' }));
          expectSameOutput(compact, await odd.computeMetrics(garbage, cfg, { stepsUnorm16: codes }));
        } finally {
          await odd.dispose();
        }
      } finally {
        await split.dispose();
      }
    });

    it('pre-encoded unorm16 steps stay within the unorm16 tolerance of every fixture', async () => {
      const { encodeUnorm16 } = await import('../src/backends/webgpu/encode.js');
      const backend = await getBackend('webgpu');
      // The fixtures' float64 values against unorm16 inputs: the unorm16 bounds above plus float32's 1e-5.
      const bound = { evb: 4e-5, cr: 0, ts: 4e-5, es: 1.1e-4, pd: 1.01e-3, cci: 2.1e-4 };
      for (const fx of fixtures) {
        const { batch } = fixtureBatch(fx);
        const cfg = resolveConfig(fx.config);
        const f32 = await backend.computeMetrics(batch, cfg);
        const pre = await (backend as import('../src/backends/webgpu/index.js').WebGpuBackend).computeMetrics(batch, cfg, {
          stepsUnorm16: encodeUnorm16(batch.steps),
        });
        for (const k of METRICS) f32[k].forEach((x, i) => expect(Math.abs(pre[k][i] - x), `${fx.name} ${k}[${i}]`).toBeLessThanOrEqual(bound[k]));
        fx.expected.forEach((row, i) => {
          for (const k of METRICS)
            expect(Math.abs(pre[k][i] - (row as unknown as Record<string, number>)[k.toUpperCase()]), `${fx.name} expected ${k}[${i}]`).toBeLessThanOrEqual(
              bound[k] + TOL,
            );
        });
      }
    });

    it('a device opened with disable_robustness gives the same results; by default only native adapters drop robustness', async () => {
      const safe = newBackend({ chunkTrajectories: 256, slots: 2, disableRobustness: false });
      const fast = newBackend({ chunkTrajectories: 256, slots: 2, disableRobustness: true });
      const plain = newBackend();
      try {
        expect((await fast.describe()).robustnessDisabled).toBe(true);
        expect((await safe.describe()).robustnessDisabled).toBe(false);
        const d = await plain.describe();
        expect(d.robustnessDisabled).toBe(d.kind === 'native');
        const batch = randomBatch(1500, 31, { d: 24, a: 3, groups: 50, base: true, levels: 8 });
        const cfg = resolveConfig({ tau: 0.55 });
        expectSameOutput(await safe.computeMetrics(batch, cfg, { covariance: true }), await fast.computeMetrics(batch, cfg, { covariance: true }));
      } finally {
        await safe.dispose();
        await fast.dispose();
        await plain.dispose();
      }
    });

    it('writes into caller-given output arrays (ComputeOptions.out) with the same values as fresh ones', async () => {
      const backend = await getBackend('webgpu');
      const batch = randomBatch(700, 17, { groups: 9 });
      const cfg = resolveConfig({});
      const fresh = await backend.computeMetrics(batch, cfg);
      const given = {
        evb: new Float64Array(700).fill(-1),
        cr: new Float64Array(700).fill(-1),
        ts: new Float64Array(700).fill(-1),
        es: new Float64Array(700).fill(-1),
        pd: new Float64Array(700).fill(-1),
        cci: new Float64Array(700).fill(-1),
      };
      const out = await backend.computeMetrics(batch, cfg, { out: given });
      for (const k of METRICS) {
        expect(out[k], k).toBe(given[k]);
        expect(Array.from(given[k]), k).toEqual(Array.from(fresh[k]));
      }
    });

    it('reuses pooled buffers and cached pipelines across calls (same answers, no growth in pipelines)', async () => {
      const backend = newBackend();
      try {
        const batch = randomBatch(1000, 9, { groups: 10 });
        const cfg = resolveConfig({});
        const first = await backend.computeMetrics(batch, cfg);
        const second = await backend.computeMetrics(batch, cfg);
        expectSameOutput(first, second);
      } finally {
        await backend.dispose();
      }
    });
  });

  describe('mapped steps (allocateMappedSteps)', () => {
    type Wgb = import('../src/backends/webgpu/index.js').WebGpuBackend;
    const fill = (dst: Float32Array, src: ArrayLike<number>) => {
      for (let i = 0; i < src.length; i++) dst[i] = src[i];
    };

    it('equal the same batch from an ordinary Float32Array, in one chunk and in tiny chunks straddling several buffers; reusable with new contents', async () => {
      const whole = newBackend();
      const split = newBackend({ chunkTrajectories: 256, slots: 2 });
      try {
        const cfg = resolveConfig({ tau: 0.55 });
        const a = randomBatch(1500, 31, { a: 3, groups: 200, base: true, levels: 8 });
        const b = randomBatch(1500, 32, { groups: 200, levels: 8 });
        const asF32 = (x: Batch): Batch => ({ ...x, steps: Float32Array.from(x.steps) });
        for (const backend of [whole, split]) {
          for (const perBuffer of [undefined, 512]) {
            // one buffer; three (512, 512, 476): chunks of 256 or the whole batch straddle them
            const mapped = await backend.allocateMappedSteps(1500, 5, 8, { trajectoriesPerBuffer: perBuffer });
            try {
              expect(mapped.parts.length).toBe(perBuffer ? 3 : 1);
              for (const [x, opts] of [
                [a, { covariance: true }],
                [b, {}],
              ] as const) {
                for (const part of mapped.parts) fill(part.steps, x.steps.subarray(part.start * 40, (part.start + part.count) * 40));
                const ref = await backend.computeMetrics(asF32(x), cfg, opts);
                const got = await backend.computeMetrics({ ...x, steps: new Float32Array(0) }, cfg, { ...opts, mappedSteps: mapped });
                expectSameOutput(ref, got);
                // The caller's contents survive the unmap / re-map cycle.
                expect(Array.from(mapped.parts[0].steps.subarray(0, 40))).toEqual(Array.from(x.steps.subarray(0, 40), Math.fround));
              }
            } finally {
              mapped.dispose();
            }
          }
        }
        // computeMetricsF32 takes them too, with batch.steps = the current view.
        const mapped = await whole.allocateMappedSteps(1500, 5, 8);
        fill(mapped.steps, b.steps);
        const out32 = Object.fromEntries(
          METRICS.map((k) => [k, new Float32Array(1500)]),
        ) as unknown as import('../src/backends/webgpu/stream.js').Float32Metrics;
        await whole.computeMetricsF32({ ...b, steps: mapped.steps }, cfg, out32, { mappedSteps: mapped });
        const ref = await whole.computeMetrics(asF32(b), cfg);
        for (const k of METRICS) expect(Array.from(out32[k]), k).toEqual(Array.from(ref[k], Math.fround));
        mapped.dispose();
      } finally {
        await whole.dispose();
        await split.dispose();
      }
    });

    it('a view held across a call is detached and rejected with a clear error; use while in flight, after dispose and with the wrong shape is rejected', async () => {
      const backend = (await getBackend('webgpu')) as unknown as Wgb;
      const cfg = resolveConfig({});
      const x = randomBatch(300, 33);
      const mapped = await backend.allocateMappedSteps(300, 5, 8);
      const held = mapped.steps;
      fill(held, x.steps);
      const first = backend.computeMetrics({ ...x, steps: held }, cfg, { mappedSteps: mapped });
      expect(mapped.state).toBe('in-use');
      expect(() => mapped.steps).toThrow(/while a compute call uses the buffers/);
      await expect(backend.computeMetrics({ ...x, steps: new Float32Array(0) }, cfg, { mappedSteps: mapped })).rejects.toThrow(UsageError);
      expect(() => mapped.dispose()).toThrow(UsageError);
      await first;
      expect(mapped.state).toBe('ready');
      expect(held.length).toBe(0); // detached by the unmap
      await expect(backend.computeMetrics({ ...x, steps: held }, cfg, { mappedSteps: mapped })).rejects.toThrow(/detached by an earlier compute call/);
      await expect(backend.computeMetrics({ ...x, steps: Float32Array.from(x.steps) }, cfg, { mappedSteps: mapped })).rejects.toThrow(/must be mapped.steps/);
      await expect(backend.computeMetrics({ ...x, n: 299, steps: new Float32Array(0) }, cfg, { mappedSteps: mapped })).rejects.toThrow(UsageError);
      await expect(backend.computeMetrics({ ...x, steps: new Float32Array(0) }, cfg, { mappedSteps: mapped, compact: 'unorm16' })).rejects.toThrow(UsageError);
      expect(mapped.state).toBe('ready'); // rejected calls leave it usable
      expect(mapped.steps.length).toBe(300 * 40);
      mapped.dispose();
      expect(mapped.state).toBe('disposed');
      expect(() => mapped.steps).toThrow(/after dispose/);
      await expect(backend.computeMetrics({ ...x, steps: new Float32Array(0) }, cfg, { mappedSteps: mapped })).rejects.toThrow(/after dispose/);
      const other = newBackend();
      try {
        const foreign = await other.allocateMappedSteps(300, 5, 8);
        await expect(backend.computeMetrics({ ...x, steps: new Float32Array(0) }, cfg, { mappedSteps: foreign })).rejects.toThrow(/another device/);
      } finally {
        await other.dispose();
      }
    });
  });

  describe('failures become GpuError', () => {
    it('a validation error inside an error scope is thrown as GpuError', async () => {
      const backend = newBackend();
      try {
        const gpu = await internalsOf(backend).device();
        // MAP_READ may only be combined with COPY_DST: invalid on every device.
        await expect(gpu.scoped(() => gpu.device.createBuffer({ size: 256, usage: BufferUsage.MAP_READ | BufferUsage.STORAGE }))).rejects.toThrow(GpuError);
      } finally {
        await backend.dispose();
      }
    });

    it('losing the device mid-batch rejects with GpuError, and the next call opens a fresh device', async () => {
      const backend = newBackend({ chunkTrajectories: 1024, slots: 2 });
      try {
        const batch = randomBatch(40000, 13, { groups: 3 });
        const cfg = resolveConfig({});
        const expected = await backend.computeMetrics(batch, cfg);
        const gpu = await internalsOf(backend).device();
        const running = backend.computeMetrics(batch, cfg);
        setImmediate(() => gpu.device.destroy());
        await expect(running).rejects.toBeInstanceOf(GpuError);
        expectSameOutput(expected, await backend.computeMetrics(batch, cfg));
      } finally {
        await backend.dispose();
      }
    });

    it('a device destroyed before the call rejects with GpuError, never returns numbers', async () => {
      const backend = newBackend();
      try {
        const gpu = await internalsOf(backend).device();
        gpu.device.destroy();
        await expect(backend.computeMetrics(randomBatch(100, 1), resolveConfig({}))).rejects.toBeInstanceOf(GpuError);
      } finally {
        await backend.dispose();
      }
    });
  });

  describe('profile()', () => {
    it('reports wall-clock stage times, and kernelMs exactly when the device has timestamp queries', async () => {
      const backend = newBackend({ chunkTrajectories: 512 });
      try {
        const { timestamps } = await backend.describe();
        const p = await backend.profile(randomBatch(2000, 4, { groups: 4 }), resolveConfig({}));
        for (const stage of ['uploadFill', 'upload', 'kernel', 'readback']) expect(p.stages[stage], stage).toBeGreaterThan(0);
        expect(p.chunks).toBe(4);
        if (timestamps) expect(p.kernelMs).toBeGreaterThan(0);
        else expect(p.kernelMs).toBeUndefined();
      } finally {
        await backend.dispose();
      }
    });
  });
});
