/**
 * The production `cpu` backend: golden fixtures (float64 and float32 inputs), agreement with the
 * cpu-reference oracle on adversarial batches, covariance output, and the worker-thread path
 * (identical results, reuse, no hold on process exit). The worker tests load the compiled
 * backend from dist/ (a worker thread cannot load .ts sources): run `npx tsc -p .` first.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { scoreBatch } from '../src/engine/score-batch.js';
import { resolveConfig, type EcrConfig } from '../src/core/config.js';
import type { Batch, FloatArray, MetricArrays } from '../src/core/batch.js';
import { CpuBackend } from '../src/backends/cpu/index.js';
import { allocateSharedMetrics } from '../src/backends/cpu/shared.js';
import { CpuReferenceBackend } from '../src/backends/cpu-reference.js';
import { syntheticBatch } from '../src/testing/synthetic-batch.js';
import { fixtureBatch, loadFixtures, selectionAmbiguous } from './helpers/fixtures.js';

const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const DIST_CPU = path.join(ROOT, 'dist', 'backends', 'cpu', 'index.js');
const fixtures = loadFixtures();
const METRICS = ['evb', 'cr', 'ts', 'es', 'pd', 'cci'] as const;
const FIELD = { evb: 'EVB', cr: 'CR', ts: 'TS', es: 'ES', pd: 'PD', cci: 'CCI' } as const;

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}

function toFloat32(batch: Batch): Batch {
  const f = (a?: FloatArray) => (a ? Float32Array.from(a) : undefined);
  return {
    ...batch,
    steps: f(batch.steps)!,
    embeddings: f(batch.embeddings),
    expected: f(batch.expected),
    realized: f(batch.realized),
    policy: f(batch.policy),
  };
}

describe('cpu backend on the golden fixtures', () => {
  it.each(fixtures.map((f) => [f.name, f] as const))('%s: float64 within 1e-9, same flags', async (_name, fx) => {
    const { batch } = fixtureBatch(fx);
    expect(batch.steps).toBeInstanceOf(Float64Array);
    const res = await scoreBatch(batch, fx.config, { backend: 'cpu' });
    expect(res.backend).toBe('cpu');
    for (const k of METRICS)
      expect(
        maxDiff(
          res.metrics[k],
          fx.expected.map((e) => e[FIELD[k]]),
        ),
        k,
      ).toBeLessThanOrEqual(1e-9);
    fx.expected.forEach((e, i) => {
      if (selectionAmbiguous(fx, i, 1e-9)) return;
      expect(res.admissible[i] === 1, `admissible ${e.id}`).toBe(e.admissible);
      expect(res.selected[i] === 1, `selected ${e.id}`).toBe(e.selected);
    });
  });

  it.each(fixtures.map((f) => [f.name, f] as const))('%s: float32 inputs within 1e-5', async (_name, fx) => {
    const batch = toFloat32(fixtureBatch(fx).batch);
    expect(batch.steps).toBeInstanceOf(Float32Array);
    const res = await scoreBatch(batch, fx.config, { backend: 'cpu' });
    for (const k of METRICS)
      expect(
        maxDiff(
          res.metrics[k],
          fx.expected.map((e) => e[FIELD[k]]),
        ),
        k,
      ).toBeLessThanOrEqual(1e-5);
    fx.expected.forEach((e, i) => {
      if (selectionAmbiguous(fx, i, 1e-5)) return;
      expect(res.admissible[i] === 1, `admissible ${e.id}`).toBe(e.admissible);
    });
  });
});

/** A batch with the cases fast paths get wrong: exact ties, constant rows, zero embeddings, zero policy rows. */
function adversarialBatch(n: number, t: number, m: number, d: number, a: number): Batch {
  const b = syntheticBatch({ n, t, m, d, a, rewards: true, seed: 7 });
  const steps = b.steps,
    emb = b.embeddings!,
    pol = b.policy!;
  for (let i = 0; i < n; i++) {
    const kind = i % 5;
    for (let k = 0; k < t; k++) {
      const row = (i * t + k) * m;
      // Quantized to 4 levels: many exact ties between components and across steps.
      if (kind === 0) for (let j = 0; j < m; j++) steps[row + j] = Math.round(steps[row + j] * 3) / 3;
      if (kind === 1) for (let j = 0; j < m; j++) steps[row + j] = 0.5; // all components tied at every step
      if (kind === 2 && k === 1) emb.fill(0, (i * t + k) * d, (i * t + k + 1) * d); // zero embedding: distance 1
      if (kind === 3 && k === 2) pol.fill(0, (i * t + k) * a, (i * t + k + 1) * a); // zero policy row
    }
  }
  return b;
}

describe('cpu backend against the cpu-reference oracle', () => {
  const reference = new CpuReferenceBackend();
  const cpu = new CpuBackend({ threads: 1 });
  const configs: [string, EcrConfig][] = [
    ['defaults', {}],
    ['scaled-identity', { lambda: 0.3, shrinkTarget: 'scaled-identity' }],
    ['ledoit-wolf', { lambda: 'ledoit-wolf' }],
    [
      'max-abs-change, weighted CR, dmax, confIndex',
      { evbMode: 'max-abs-change', crWeights: [0.9, 0.1, 0.5, 0.3, 0.7, 0.2], dmax: 0.7, confIndex: 2, vmax: 0.1 },
    ],
  ];

  it.each(configs)('%s: metrics and covariance agree within 1e-12', async (_name, raw) => {
    const config = resolveConfig(raw);
    for (const withExtras of [true, false]) {
      const full = adversarialBatch(200, 6, 6, 5, 4);
      const batch: Batch = withExtras ? full : { n: full.n, t: full.t, m: full.m, steps: full.steps };
      const want = await reference.computeMetrics(batch, config, { covariance: true });
      const got = await cpu.computeMetrics(batch, config, { covariance: true });
      for (const k of METRICS) expect(maxDiff(got[k], want[k]), `${k} extras=${withExtras}`).toBeLessThanOrEqual(1e-12);
      expect(maxDiff(got.covariance!, want.covariance!), 'covariance').toBeLessThanOrEqual(1e-12);
    }
  });

  it('without the covariance option returns no matrices, and EVB does not change with it', async () => {
    const batch = adversarialBatch(50, 5, 6, 4, 3);
    for (const raw of [{}, { lambda: 'ledoit-wolf' as const }, { shrinkTarget: 'scaled-identity' as const }]) {
      const config = resolveConfig(raw);
      const plain = await cpu.computeMetrics(batch, config);
      const withCov = await cpu.computeMetrics(batch, config, { covariance: true });
      expect(plain.covariance).toBeUndefined();
      expect(Array.from(withCov.evb)).toEqual(Array.from(plain.evb));
      // EVB is min(1, tr(C)/m) of the returned matrices.
      const m = batch.m;
      for (let i = 0; i < batch.n; i++) {
        let tr = 0;
        for (let j = 0; j < m; j++) tr += withCov.covariance![i * m * m + j * m + j];
        expect(Math.abs(Math.min(1, tr / m) - plain.evb[i])).toBeLessThanOrEqual(1e-14);
      }
    }
  });

  it('writes into caller-provided outputs and rejects ones of the wrong size', async () => {
    const batch = adversarialBatch(40, 4, 6, 3, 3);
    const config = resolveConfig({});
    const want = await cpu.computeMetrics(batch, config);
    const out = {
      evb: new Float64Array(40),
      cr: new Float64Array(40),
      ts: new Float64Array(40),
      es: new Float64Array(40),
      pd: new Float64Array(40),
      cci: new Float64Array(40),
    };
    const got = await cpu.computeMetrics(batch, config, { out });
    expect(got.evb).toBe(out.evb);
    for (const k of METRICS) expect(Array.from(got[k])).toEqual(Array.from(want[k]));
    await expect(cpu.computeMetrics(batch, config, { out: { ...out, pd: new Float64Array(39) } })).rejects.toThrow(/out\.pd.*length n = 40/);
    await expect(cpu.computeMetrics(batch, config, { out, covariance: true })).rejects.toThrow(/out\.covariance/);
  });

  it("Ledoit-Wolf reproduces scikit-learn's documented example", async () => {
    // X: np.random.seed(0); np.random.multivariate_normal([0, 0], [[.4, .2], [.2, .8]], size=50), the
    // LedoitWolf docstring's data; scikit-learn prints covariance_ [[0.4406, 0.1616], [0.1616, 0.8022]].
    const x = [
      0.8424984564251626, 1.4450891295730035, 1.5178567890994665, 0.36667196840192884, 0.1630381916043181, 1.8317973279370645, 0.26287067353821236,
      0.857367268614446, 0.17651962220293776, -0.17809169165769026, 0.8084500264179484, -0.1883768424128679, 0.3369523442175089, 0.6344147046813222,
      0.33320942284808036, 0.3133946266481745, 0.43047982201300344, 1.341186622887936, -0.33181565068048036, 0.4558363317158134, -0.577897195897361,
      -2.3570498870167493, -0.07532364733080038, 0.9103425596877937, 0.05942719657487196, 2.28375344099933, -0.0809381934972725, 0.08006268490969225,
      1.315644104452152, 1.0138981023783733, 0.2524716195836603, 0.05300631124935685, -1.3498252769397643, -0.34377333154327655, -0.043750004006001555,
      -0.3357091853922792, 1.067970063253212, 0.808853407190146, -0.2965581344361734, -0.27107784211706343, -1.1158597541190374, -0.6041873057944658,
      0.4014652156026514, -1.901590575107771, -0.4111842046433446, -0.3480046028549103, -0.04593825009276528, -1.2550803872155922, -0.6909948937161541,
      -1.3551349471155931, -0.12067649401733256, -0.8607149115744706, -0.7979506297117328, -0.1889732746840518, 0.2127270567300524, -0.11677611255641296,
      0.18129319882945197, -0.007445250190309907, -0.4168158176652631, -0.4724627803565696, -0.4288704442769215, -0.5062567761792558, -1.1905640762879914,
      -0.3338322058186825, -0.14524926961630535, 0.24060883497386565, -0.3453825768615519, -1.5148700689354717, -0.2992085604446506, -0.7987976009550376,
      0.3292674464077446, 0.6051072271458039, -0.23278589590386556, 1.255207897868118, -0.21163648388008113, 0.49684920991414705, -0.6142856967502591,
      -0.6311661830887009, -0.08280164544183558, -0.28255527801078245, 0.049747917019359045, -1.2055783002429317, -0.6318680799854512, 0.7353128846633102,
      1.5215567934652587, 0.8833217341428938, 0.3302370521659642, 1.062044979677192, 0.16362116328566143, -1.1567429843157273, 0.49106688478427635,
      -0.6134425882050514, 0.5830330336562125, -0.02968191836201878, 0.49576710028136145, 0.15707565005331114, 0.9329614689245413, -0.3757666405029528,
      0.2547880786606382, 0.023534516321122537,
    ];
    // The metric kernels do not require E in [0, 1] (validation is scoreBatch's job), so the raw data goes in directly.
    const batch: Batch = { n: 1, t: 50, m: 2, steps: Float64Array.from(x) };
    const out = await cpu.computeMetrics(batch, resolveConfig({ lambda: 'ledoit-wolf' }), { covariance: true });
    // The docstring truncates ("0.4406..."), so compare the first four decimals.
    const printed = Array.from(out.covariance!, (v) => Math.trunc(v * 1e4) / 1e4);
    expect(printed).toEqual([0.4406, 0.1616, 0.1616, 0.8022]);
  });

  it('Ledoit-Wolf applies no shrinkage when the sample covariance is already mu*I', async () => {
    // Two components with equal variance and zero covariance: S' = mu I exactly.
    const steps = Float64Array.from([0, 0, 1, 0, 1, 1, 0, 1]);
    const out = await cpu.computeMetrics({ n: 1, t: 4, m: 2, steps }, resolveConfig({ lambda: 'ledoit-wolf' }), { covariance: true });
    expect(Array.from(out.covariance!)).toEqual([0.25, 0, 0, 0.25]);
  });
});

// The worker path runs the compiled backend: worker threads cannot load TypeScript.
describe.runIf(existsSync(DIST_CPU))('cpu backend worker threads (compiled dist/)', () => {
  type DistModule = typeof import('../src/backends/cpu/index.js');
  const load = async () => (await import(pathToFileURL(DIST_CPU).href)) as DistModule;
  const backends: CpuBackend[] = [];
  afterAll(async () => {
    for (const b of backends) await b.dispose();
  });

  async function compare(batch: Batch, raw: EcrConfig, covariance: boolean, expectCopied: boolean) {
    const { CpuBackend: DistCpu } = await load();
    const parallel = new DistCpu({ threads: 2, sharedThreshold: 64, copyThreshold: 64 });
    const single = new DistCpu({ threads: 1 });
    backends.push(parallel, single);
    expect(parallel.workersAvailable).toBe(true);
    const config = resolveConfig(raw);
    const a: MetricArrays = await parallel.computeMetrics(batch, config, { covariance });
    expect(parallel.lastRun).toEqual({ threads: 2, copiedInputs: expectCopied, copiedOutputs: false, offloaded: false });
    const b: MetricArrays = await single.computeMetrics(batch, config, { covariance });
    expect(single.lastRun.threads).toBe(1);
    for (const k of METRICS) expect(Array.from(a[k]), k).toEqual(Array.from(b[k]));
    if (covariance) expect(Array.from(a.covariance!)).toEqual(Array.from(b.covariance!));
    return parallel;
  }

  it('shared-memory inputs: identical results to the single-threaded path', async () => {
    const batch = syntheticBatch({ n: 3001, t: 5, m: 8, d: 16, a: 6, rewards: true, shared: true, seed: 3 });
    await compare(batch, {}, false, false);
    await compare(batch, { lambda: 'ledoit-wolf', evbMode: 'trace' }, true, false);
  });

  it('ordinary-memory inputs (copied for the workers, float32 too): identical results', async () => {
    await compare(syntheticBatch({ n: 2001, t: 4, m: 5, a: 3, seed: 4 }), { crWeights: [1, 0.5, 0.2, 0.9, 0.1], evbMode: 'max-abs-change' }, true, true);
    await compare(syntheticBatch({ n: 2001, t: 6, m: 7, d: 8, rewards: true, dtype: 'float32', seed: 5 }), { shrinkTarget: 'scaled-identity' }, false, true);
  });

  it('fills caller-provided output arrays, shared (in place) or ordinary (staged and copied back)', async () => {
    const { CpuBackend: DistCpu } = await load();
    const parallel = new DistCpu({ threads: 2, sharedThreshold: 64, copyThreshold: 64 });
    const offloading = new DistCpu({ threads: 2, sharedThreshold: 64, copyThreshold: 64, offload: true });
    const single = new DistCpu({ threads: 1 });
    backends.push(parallel, offloading, single);
    const config = resolveConfig({ lambda: 'ledoit-wolf' });
    for (const inputsShared of [true, false]) {
      const batch = syntheticBatch({ n: 2500, t: 5, m: 6, a: 5, shared: inputsShared, seed: 11 });
      const want = await single.computeMetrics(batch, config, { covariance: true });
      for (const outShared of [true, false]) {
        const out: MetricArrays = outShared
          ? allocateSharedMetrics(batch.n, batch.m)
          : {
              evb: new Float64Array(batch.n),
              cr: new Float64Array(batch.n),
              ts: new Float64Array(batch.n),
              es: new Float64Array(batch.n),
              pd: new Float64Array(batch.n),
              cci: new Float64Array(batch.n),
              covariance: new Float64Array(batch.n * batch.m * batch.m),
            };
        out.cci.fill(-1); // stale values from a previous batch must all be overwritten
        for (const offload of [false, true]) {
          out.cci.fill(-1); // stale values from a previous batch must all be overwritten
          out.covariance!.fill(-1);
          const backend = offload ? offloading : parallel;
          const got = await backend.computeMetrics(batch, config, { covariance: true, out });
          expect(backend.lastRun).toEqual({ threads: 2, copiedInputs: !inputsShared, copiedOutputs: !outShared, offloaded: offload });
          expect(got.cci).toBe(out.cci);
          expect(got.covariance).toBe(out.covariance);
          const where = `inputsShared=${inputsShared} outShared=${outShared} offload=${offload}`;
          for (const k of METRICS) expect(Array.from(got[k]), `${k} ${where}`).toEqual(Array.from(want[k]));
          expect(Array.from(got.covariance!), where).toEqual(Array.from(want.covariance!));
        }
      }
    }
  });

  it('offload (a CpuBackendOptions option): the workers compute the whole batch while the calling thread stays free', async () => {
    const { CpuBackend: DistCpu } = await load();
    const normal = new DistCpu({ threads: 2, sharedThreshold: 64, copyThreshold: 64 });
    const backend = new DistCpu({ threads: 2, sharedThreshold: 64, copyThreshold: 64, offload: true });
    const single = new DistCpu({ threads: 1, offload: true });
    backends.push(normal, backend, single);
    const config = resolveConfig({});
    const batch = syntheticBatch({ n: 20_000, t: 5, m: 8, seed: 21 });
    const want = await single.computeMetrics(batch, config);
    await normal.computeMetrics(batch, config);
    expect(normal.workersStarted).toBe(1); // a normal call: the calling thread and one worker
    const got = await backend.computeMetrics(batch, config);
    // Offloaded: one worker per thread, the calling thread only staged the inputs.
    expect(backend.lastRun).toEqual({ threads: 2, copiedInputs: true, copiedOutputs: false, offloaded: true });
    expect(backend.workersStarted).toBe(2);
    for (const k of METRICS) expect(Array.from(got[k]), k).toEqual(Array.from(want[k]));
    // Below the threshold, or with one thread, it computes in place as before.
    expect(single.lastRun).toEqual({ threads: 1, copiedInputs: false, copiedOutputs: false, offloaded: false });
  });

  it('reuses its workers across calls and stays single-threaded below the threshold', async () => {
    const { CpuBackend: DistCpu } = await load();
    const backend = new DistCpu({ threads: 2, sharedThreshold: 1000, copyThreshold: 1000 });
    backends.push(backend);
    const config = resolveConfig({});
    await backend.computeMetrics(syntheticBatch({ n: 999, t: 5, m: 8, shared: true }), config);
    expect(backend.lastRun.threads).toBe(1);
    expect(backend.workersStarted).toBe(0);
    const big = syntheticBatch({ n: 4000, t: 5, m: 8, shared: true });
    for (let r = 0; r < 3; r++) {
      await backend.computeMetrics(big, config);
      expect(backend.lastRun.threads).toBe(2);
      expect(backend.workersStarted).toBe(1);
    }
  });

  it('idle workers do not keep the process alive, with or without dispose()', () => {
    for (const dispose of [false, true]) {
      const script = `
        const { CpuBackend } = await import(${JSON.stringify(pathToFileURL(DIST_CPU).href)});
        const { allocateSharedBatch } = await import(${JSON.stringify(pathToFileURL(path.join(ROOT, 'dist', 'backends', 'cpu', 'shared.js')).href)});
        const { resolveConfig } = await import(${JSON.stringify(pathToFileURL(path.join(ROOT, 'dist', 'core', 'config.js')).href)});
        const b = allocateSharedBatch({ n: 5000, t: 3, m: 4 });
        b.steps.fill(0.5);
        const backend = new CpuBackend({ threads: 2, sharedThreshold: 100 });
        const out = await backend.computeMetrics(b, resolveConfig({}));
        if (backend.lastRun.threads !== 2) throw new Error('workers not used');
        ${dispose ? 'await backend.dispose();' : ''}
        console.log(out.cci[4999]);`;
      const stdout = execFileSync(process.execPath, ['--input-type=module', '-e', script], { timeout: 20_000, encoding: 'utf8' });
      expect(Number(stdout.trim())).toBeCloseTo(0.2 * (1 - 0.4) + 0.2 + 0.2 + 0.2 + 0.2, 12);
    }
  });
});
