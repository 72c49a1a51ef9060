/** Property tests of the metrics on the CPU backends: ranges, symmetry, fixed points, purity. */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { scoreBatch } from '../src/engine/score-batch.js';
import type { Batch } from '../src/core/batch.js';
import type { EcrConfig } from '../src/core/config.js';

const unit = fc.double({ min: 0, max: 1, noNaN: true });

/** A random batch with every optional input switched on or off. */
const batchArb = fc
  .record({
    n: fc.integer({ min: 1, max: 12 }),
    t: fc.integer({ min: 2, max: 6 }),
    m: fc.integer({ min: 1, max: 9 }),
    d: fc.option(fc.integer({ min: 1, max: 7 }), { nil: undefined }),
    a: fc.option(fc.integer({ min: 1, max: 6 }), { nil: undefined }),
    rewards: fc.boolean(),
    seed: fc.integer(),
  })
  .chain((s) =>
    fc.record({
      shape: fc.constant(s),
      steps: fc.array(unit, { minLength: s.n * s.t * s.m, maxLength: s.n * s.t * s.m }),
      emb: fc.array(fc.double({ min: -3, max: 3, noNaN: true }), { minLength: s.n * s.t * (s.d ?? 0), maxLength: s.n * s.t * (s.d ?? 0) }),
      pol: fc.array(fc.double({ min: 0, max: 5, noNaN: true }), { minLength: s.n * s.t * (s.a ?? 0), maxLength: s.n * s.t * (s.a ?? 0) }),
      rew: fc.array(fc.double({ min: -2, max: 2, noNaN: true }), { minLength: s.rewards ? 2 * s.n * s.t : 0, maxLength: s.rewards ? 2 * s.n * s.t : 0 }),
      groups: fc.array(fc.integer({ min: 0, max: 2 }), { minLength: s.n, maxLength: s.n }),
    }),
  )
  .map(({ shape: s, steps, emb, pol, rew, groups }): Batch => ({
    n: s.n,
    t: s.t,
    m: s.m,
    steps: Float64Array.from(steps),
    ...(s.d ? { d: s.d, embeddings: Float64Array.from(emb) } : {}),
    ...(s.a ? { a: s.a, policy: Float64Array.from(pol) } : {}),
    ...(s.rewards ? { expected: Float64Array.from(rew.slice(0, s.n * s.t)), realized: Float64Array.from(rew.slice(s.n * s.t)) } : {}),
    groups: Int32Array.from(groups),
  }));

const configArb: fc.Arbitrary<EcrConfig> = fc.record({
  lambda: fc.oneof(unit, fc.constant('ledoit-wolf' as const)),
  shrinkTarget: fc.constantFrom('identity' as const, 'scaled-identity' as const),
  evbMode: fc.constantFrom('trace' as const, 'max-abs-change' as const),
  preset: fc.constantFrom('default' as const, 'compliance' as const, 'creative' as const, 'conversational' as const),
  vmax: fc.double({ min: 0.01, max: 1, noNaN: true }),
});

/** Rows of a packed [n][w] array reordered by `perm` (new position k holds old row perm[k]). */
function permuteRows(a: Float64Array, w: number, perm: number[]): Float64Array {
  const out = new Float64Array(a.length);
  perm.forEach((src, k) => out.set(a.subarray(src * w, (src + 1) * w), k * w));
  return out;
}

function permuteBatch(b: Batch, perm: number[]): Batch {
  const p = (arr: Float64Array | Float32Array | undefined, w: number) => (arr ? permuteRows(Float64Array.from(arr), w, perm) : undefined);
  return {
    ...b,
    steps: p(b.steps, b.t * b.m)!,
    embeddings: p(b.embeddings, b.t * (b.d ?? 0)),
    policy: p(b.policy, b.t * (b.a ?? 0)),
    expected: p(b.expected, b.t),
    realized: p(b.realized, b.t),
    groups: b.groups ? Int32Array.from(perm, (src) => b.groups![src]) : undefined,
  };
}

describe.each(['cpu-reference', 'cpu'] as const)('metric properties on %s', (backend) => {
  it('every metric and CCI lies in [0, 1]', async () => {
    await fc.assert(
      fc.asyncProperty(batchArb, configArb, async (batch, config) => {
        const r = await scoreBatch(batch, config, { backend });
        for (const arr of [r.metrics.evb, r.metrics.cr, r.metrics.ts, r.metrics.es, r.metrics.pd, r.metrics.cci]) {
          for (const x of arr) {
            expect(x).toBeGreaterThanOrEqual(0);
            expect(x).toBeLessThanOrEqual(1 + 1e-12);
          }
        }
      }),
      { numRuns: 60 },
    );
  });

  it("reordering the candidates reorders the results and keeps each group's selection", async () => {
    await fc.assert(
      fc.asyncProperty(batchArb, configArb, fc.integer(), async (batch, config, seed) => {
        const perm = Array.from({ length: batch.n }, (_, i) => i);
        let s = seed >>> 0;
        for (let i = perm.length - 1; i > 0; i--) {
          s = (s * 1103515245 + 12345) >>> 0;
          const j = s % (i + 1);
          [perm[i], perm[j]] = [perm[j], perm[i]];
        }
        const a = await scoreBatch(batch, config, { backend });
        const b = await scoreBatch(permuteBatch(batch, perm), config, { backend });
        perm.forEach((src, k) => {
          expect(b.metrics.cci[k]).toBeCloseTo(a.metrics.cci[src], 12);
          expect(b.metrics.evb[k]).toBeCloseTo(a.metrics.evb[src], 12);
        });
        for (const g of a.groups) {
          if (g.size === 0) continue;
          const gb = b.groups[g.group];
          expect(gb.reason).toBe(g.reason);
          // The selected candidate is the same one unless two candidates tie exactly.
          expect(b.metrics.cci[gb.selectedIndex]).toBeCloseTo(a.metrics.cci[g.selectedIndex], 12);
        }
      }),
      { numRuns: 40 },
    );
  });

  it('a constant trajectory has EVB 0 (lambda 0), CR 0, TS 1, PD 0 and ES 1', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 2, max: 8 }), fc.array(unit, { minLength: 1, maxLength: 10 }), async (t, row) => {
        const m = row.length;
        const steps = new Float64Array(t * m);
        for (let s = 0; s < t; s++) steps.set(row, s * m);
        for (const lambda of [0, 'ledoit-wolf'] as const) {
          const r = await scoreBatch({ n: 1, t, m, steps }, { lambda }, { backend });
          expect(r.metrics.evb[0]).toBeCloseTo(0, 12);
          expect(r.metrics.cr[0]).toBe(0);
          expect(r.metrics.ts[0]).toBeCloseTo(1, 12);
          expect(r.metrics.pd[0]).toBeCloseTo(0, 12);
          expect(r.metrics.es[0]).toBeCloseTo(1, 12);
        }
      }),
      { numRuns: 40 },
    );
  });

  it('does not mutate its inputs', async () => {
    await fc.assert(
      fc.asyncProperty(batchArb, configArb, async (batch, config) => {
        const copies = [batch.steps, batch.embeddings, batch.policy, batch.expected, batch.realized, batch.groups].map((a) => (a ? Array.from(a) : null));
        const configCopy = structuredClone(config);
        await scoreBatch(batch, config, { backend, covariance: true });
        [batch.steps, batch.embeddings, batch.policy, batch.expected, batch.realized, batch.groups].forEach((a, i) => {
          expect(a ? Array.from(a) : null).toEqual(copies[i]);
        });
        expect(config).toEqual(configCopy);
      }),
      { numRuns: 25 },
    );
  });

  it('scores the empty batch to empty results', async () => {
    const r = await scoreBatch({ n: 0, t: 3, m: 4, steps: new Float64Array(0) }, {}, { backend });
    expect(r.metrics.cci.length).toBe(0);
    expect(r.selected.length).toBe(0);
    expect(r.groups).toEqual([]);
  });

  it('returns the shrunk covariance on request, matching EVB = tr(C)/m', async () => {
    await fc.assert(
      fc.asyncProperty(batchArb, configArb, async (batch, config) => {
        const r = await scoreBatch(batch, { ...config, evbMode: 'trace' }, { backend, covariance: true });
        const { n, m } = batch;
        expect(r.metrics.covariance).toBeDefined();
        for (let i = 0; i < n; i++) {
          let tr = 0;
          for (let j = 0; j < m; j++) tr += r.metrics.covariance![i * m * m + j * m + j];
          expect(r.metrics.evb[i]).toBeCloseTo(Math.min(1, tr / m), 10);
          // symmetric
          for (let j = 0; j < m; j++)
            for (let k = 0; k < m; k++) {
              expect(r.metrics.covariance![i * m * m + j * m + k]).toBeCloseTo(r.metrics.covariance![i * m * m + k * m + j], 12);
            }
        }
      }),
      { numRuns: 30 },
    );
  });
});

describe('the two CPU backends agree', () => {
  it('cpu equals cpu-reference within 1e-9 on random batches and options, covariance included', async () => {
    await fc.assert(
      fc.asyncProperty(batchArb, configArb, async (batch, config) => {
        const ref = await scoreBatch(batch, config, { backend: 'cpu-reference', covariance: true });
        const fast = await scoreBatch(batch, config, { backend: 'cpu', covariance: true });
        for (const k of ['evb', 'cr', 'ts', 'es', 'pd', 'cci'] as const) {
          ref.metrics[k].forEach((x, i) => expect(Math.abs(fast.metrics[k][i] - x), `${k}[${i}]`).toBeLessThanOrEqual(1e-9));
        }
        ref.metrics.covariance!.forEach((x, i) => expect(Math.abs(fast.metrics.covariance![i] - x)).toBeLessThanOrEqual(1e-9));
        // Selection may differ only between candidates whose CCIs tie within the tolerance.
        ref.groups.forEach((g) => {
          if (g.size === 0) return;
          const f = fast.groups[g.group];
          expect(f.reason).toBe(g.reason);
          expect(Math.abs(fast.metrics.cci[f.selectedIndex] - ref.metrics.cci[g.selectedIndex])).toBeLessThanOrEqual(1e-9);
        });
      }),
      { numRuns: 80 },
    );
  });
});
