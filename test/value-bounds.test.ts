/**
 * Values at the edges of the accepted ranges (ECR-SPEC section 2, src/input-ranges.ts): every
 * backend computes finite metrics that agree (float64 paths within 1e-9 of cpu-reference, the
 * float32 WebGPU path within 1e-5) and selects the same candidates; one step past a bound is an
 * InputError naming the record and field, in the object API and in packed batches alike.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { scoreRecords, type RecordsResult } from '../src/engine/score-records.js';
import { scoreBatch } from '../src/engine/score-batch.js';
import { InputError } from '../src/core/errors.js';
import { MAX_EMBEDDING_MAGNITUDE as E_MAX, MAX_POLICY_ENTRY as P_MAX, MAX_REWARD_MAGNITUDE as R_MAX } from '../src/core/input-ranges.js';
import type { TrajectoryRecord } from '../src/engine/record.js';
import type { EcrConfig } from '../src/core/config.js';
import { webGpuGate } from './webgpu-gate.js';

const METRICS = ['EVB', 'CR', 'TS', 'ES', 'PD', 'CCI'] as const;
const S5 = [
  [0.1, 0.9, 0.4],
  [0.2, 0.8, 0.4],
  [0.3, 0.7, 0.5],
  [0.2, 0.6, 0.5],
  [0.1, 0.7, 0.6],
];
const S5B = [
  [0.9, 0.1, 0.5],
  [0.1, 0.9, 0.5],
  [0.8, 0.2, 0.4],
  [0.3, 0.6, 0.2],
  [0.9, 0.2, 0.7],
];
const C5 = [
  [0.5, 0.5, 0.5],
  [0.5, 0.5, 0.5],
  [0.5, 0.5, 0.5],
  [0.5, 0.5, 0.5],
  [0.5, 0.5, 0.5],
];

/** A row of width d whose entries are `scale` times a fixed pattern in [-1, 1], turned by `phase`. */
function wide(d: number, scale: number, phase: number): number[] {
  return Array.from({ length: d }, (_, q) => scale * Math.cos(0.37 * q + phase));
}

/** Each group holds records at the bounds; their CCIs differ by far more than 1e-5, so selection is decided. */
const GROUPS: { name: string; config: EcrConfig; records: TrajectoryRecord[] }[] = [
  {
    name: 'embeddings at +-1e15 (norms and dot products near d * 1e30)',
    config: {},
    records: [
      { id: 'parallel', steps: S5, embeddings: [0, 0.1, 0.2, 0.25, 0.3].map((p) => wide(1024, E_MAX, p)) },
      { id: 'turning', steps: S5, embeddings: [0, 0.8, 1.6, 2.4, 3.2].map((p) => wide(1024, E_MAX, p)) },
      {
        id: 'signs',
        steps: S5,
        embeddings: [
          [E_MAX, -E_MAX, E_MAX],
          [E_MAX, E_MAX, -E_MAX],
          [-E_MAX, E_MAX, E_MAX],
          [E_MAX, 1, 1e-15],
          [-E_MAX, -E_MAX, -E_MAX],
        ],
      },
      {
        id: 'mixed-scales',
        steps: S5,
        embeddings: [
          [E_MAX, 1],
          [1, E_MAX],
          [E_MAX, E_MAX],
          [1e-3, 1e-3],
          [E_MAX, -1],
        ],
      },
    ],
  },
  {
    name: 'rewards at +-16, including differences of 32 with a small spread (the float32 worst case)',
    config: {},
    records: [
      { id: 'alternating', steps: S5, expected: [R_MAX, -R_MAX, R_MAX, -R_MAX, R_MAX], realized: [-R_MAX, R_MAX, -R_MAX, R_MAX, -R_MAX] },
      { id: 'constant-difference', steps: C5, expected: [R_MAX, R_MAX, R_MAX, R_MAX, R_MAX], realized: [-R_MAX, -R_MAX, -R_MAX, -R_MAX, -R_MAX] },
      { id: 'offset-small-spread', steps: S5, expected: [-R_MAX, -R_MAX, -R_MAX, -R_MAX, -R_MAX], realized: [3e-7, 0.7, 0.3, 0.6, 0.1].map((x) => R_MAX - x) },
      { id: 'offset-tiny-spread', steps: S5, expected: [-R_MAX, -R_MAX, -R_MAX, -R_MAX, -R_MAX], realized: [0, 1e-4, 0, 2e-4, 5e-5].map((x) => R_MAX - x) },
    ],
  },
  {
    name: 'policy entries at 1e15 next to tiny and zero entries',
    config: {},
    records: [
      {
        id: 'huge-rows',
        steps: S5,
        policy: [
          [P_MAX, P_MAX, 1],
          [P_MAX, 1, P_MAX],
          [1, P_MAX, P_MAX],
          [P_MAX, P_MAX, P_MAX],
          [P_MAX, 0, 0],
        ],
      },
      {
        id: 'huge-and-tiny',
        steps: C5,
        policy: [
          [P_MAX, 1e-15, 0],
          [1e-15, P_MAX, 0],
          [P_MAX, P_MAX, 1e-15],
          [0, 0, P_MAX],
          [P_MAX, 1e-15, 1e-15],
        ],
      },
      {
        id: 'shifting',
        steps: S5,
        policy: [
          [P_MAX, 0.2 * P_MAX, 0.5 * P_MAX],
          [0.3 * P_MAX, 0.5 * P_MAX, 0.6 * P_MAX],
          [P_MAX, 0.5 * P_MAX, 0.05 * P_MAX],
          [0.4 * P_MAX, 0.51 * P_MAX, 0.25 * P_MAX],
          [P_MAX, 0.5 * P_MAX, 0.25 * P_MAX],
        ],
      },
    ],
  },
  {
    name: 'base scores of +-1e308 decide among admissible candidates',
    config: { tau: 0.3 },
    records: [
      { id: 'low', steps: C5, baseScore: -1.7e308 },
      { id: 'high', steps: S5, baseScore: 1.7e308 },
      { id: 'tiny', steps: S5B, baseScore: 5e-324 },
    ],
  },
  {
    name: 'vmax and dmax at their smallest accepted value, 1e-30',
    config: { vmax: 1e-30, dmax: 1e-30 },
    records: [
      { id: 'constant', steps: C5 },
      { id: 'moving', steps: S5 },
      {
        id: 'moving-policy',
        steps: S5B,
        policy: [
          [1, 2, 3],
          [3, 2, 1],
          [1, 2, 3],
          [3, 2, 1],
          [1, 2, 3],
        ],
      },
    ],
  },
];

const BACKENDS = ['cpu-reference', 'cpu', 'webgpu'] as const;
const results = new Map<string, RecordsResult>();
let gpu = { available: false, reason: '' };

beforeAll(async () => {
  gpu = await webGpuGate();
  for (const backend of BACKENDS) {
    if (backend === 'webgpu' && !gpu.available) continue;
    for (const g of GROUPS) {
      const records = g.records.map((r) => ({ ...r, group: g.name }));
      results.set(`${g.name}/${backend}`, await scoreRecords(records, g.config, { backend }));
    }
  }
}, 120_000);

describe('values at the accepted bounds score the same on every backend', () => {
  for (const g of GROUPS) {
    for (const backend of BACKENDS) {
      it(`${g.name} [${backend}]`, (ctx) => {
        if (backend === 'webgpu' && !gpu.available) {
          ctx.skip();
          return;
        }
        const ref = results.get(`${g.name}/cpu-reference`)!.results;
        const got = results.get(`${g.name}/${backend}`)!;
        expect(got.backends).toEqual([backend]);
        const tolerance = backend === 'webgpu' ? 1e-5 : 1e-9;
        got.results.forEach((r, i) => {
          for (const k of METRICS) {
            expect(Number.isFinite(r[k]), `${r.id} ${k} = ${r[k]}`).toBe(true);
            expect(Math.abs(r[k] - ref[i][k]), `${r.id} ${k}: ${r[k]} against ${ref[i][k]}`).toBeLessThanOrEqual(tolerance);
          }
          expect(r.admissible, `${r.id} admissible`).toBe(ref[i].admissible);
        });
        expect(got.results.map((r) => r.selected)).toEqual(ref.map((r) => r.selected));
      });
    }
  }

  it('the groups exercise what they claim (non-trivial TS, ES and PD values, decided selections)', () => {
    const ref = (name: string) => results.get(`${name}/cpu-reference`)!.results;
    const [emb, rew, pol, base, small] = GROUPS.map((g) => ref(g.name));
    expect(emb.some((r) => r.TS > 0.05 && r.TS < 0.95)).toBe(true);
    expect(rew.some((r) => r.ES > 0.05 && r.ES < 0.95)).toBe(true); // the worst case for float32: a spread below sqrt(vmax)
    expect(pol.some((r) => r.PD > 0.001 && r.PD < 0.95)).toBe(true);
    expect(base.find((r) => r.selected)!.id).toBe('high');
    expect(base.every((r) => r.admissible)).toBe(true); // so the base scores, not the CCIs, decide
    expect(small.find((r) => r.id === 'constant')!.ES).toBe(1);
    for (const g of GROUPS) {
      const cci = ref(g.name)
        .map((r) => r.CCI)
        .sort((a, b) => a - b);
      for (let i = 1; i < cci.length; i++) expect(cci[i] - cci[i - 1], `${g.name}: CCIs too close to decide selection`).toBeGreaterThan(1e-4);
    }
  });
});

describe('one step past a bound is an InputError naming the record and field', () => {
  const steps = [
    [0.1, 0.2],
    [0.3, 0.4],
  ];
  it.each([
    [
      'embedding component',
      {
        steps,
        embeddings: [
          [1, 1],
          [1, -1.0000001e15],
        ],
      },
      /record 1, id "1", field "embeddings\[1\]\[1\]": -1000000100000000 is outside \[-1e15, 1e15\]/,
    ],
    ['expected reward', { steps, expected: [16.5, 0], realized: [0, 0] }, /record 1, id "1", field "expected\[0\]": 16\.5 is outside \[-16, 16\]/],
    ['realized reward', { steps, expected: [0, 0], realized: [0, -1e308] }, /record 1, id "1", field "realized\[1\]": -1e\+308 is outside \[-16, 16\]/],
    [
      'policy entry',
      {
        steps,
        policy: [
          [1, 2e15],
          [1, 1],
        ],
      },
      /record 1, id "1", field "policy\[0\]\[1\]": 2000000000000000 is above 1e15/,
    ],
    ['NaN in meta', { steps, meta: { a: [1, { b: Number.NaN }] } }, /record 1, id "1", field "meta\.a\[1\]\.b": NaN is not a finite number/],
    ['Infinity as group', { steps, group: Number.POSITIVE_INFINITY }, /record 1, id "1", field "group": Infinity is not a finite number/],
    ['id beyond 2^53', { id: 2 ** 53, steps }, /record 1, field "id": 9007199254740992 cannot be kept exactly.*write it as a string/],
    [
      'fractional group',
      { steps, group: 0.5 },
      /record 1, id "1", field "group": 0\.5 is not an integer: a group must be an integer or a string; .*"group": "0\.5"/,
    ],
  ] as [string, TrajectoryRecord, RegExp][])('scoreRecords: %s', async (_name, bad, message) => {
    const run = scoreRecords([{ steps }, bad], {}, { backend: 'cpu' });
    await expect(run).rejects.toThrow(InputError);
    await expect(scoreRecords([{ steps }, bad], {}, { backend: 'cpu' })).rejects.toThrow(message);
  });

  it('a cyclic meta object (possible through the library) is walked once, not forever', async () => {
    const meta: Record<string, unknown> = { x: 1 };
    meta.self = meta;
    const r = await scoreRecords([{ steps, meta }], {}, { backend: 'cpu' });
    expect(r.results).toHaveLength(1);
  });

  const base = { n: 2, t: 2, m: 1, steps: Float64Array.of(0.1, 0.2, 0.3, 0.4) };
  it.each([
    [
      'embeddings',
      { ...base, d: 1, embeddings: Float64Array.of(1, 1, 1, 1.5e15) },
      /record 1, field "embeddings": outside \[-1e15, 1e15\].*value 1500000000000000 at offset 1/,
    ],
    [
      'expected',
      { ...base, expected: Float64Array.of(0, 0, -17, 0), realized: new Float64Array(4) },
      /record 1, field "expected": outside \[-16, 16\].*value -17 at offset 0/,
    ],
    ['realized', { ...base, expected: new Float64Array(4), realized: Float32Array.of(0, 1e30, 0, 0) }, /record 0, field "realized": outside \[-16, 16\]/],
    ['policy', { ...base, a: 1, policy: Float64Array.of(1, 1, 1e16, 1) }, /record 1, field "policy": above 1e15/],
    ['policy NaN', { ...base, a: 1, policy: Float64Array.of(1, Number.NaN, 1, 1) }, /record 0, field "policy": not a finite number \(value NaN at offset 1\)/],
    [
      'embeddings -Infinity',
      { ...base, d: 1, embeddings: Float64Array.of(1, 1, -Infinity, 1) },
      /record 1, field "embeddings": not a finite number \(value -Infinity at offset 0\)/,
    ],
  ] as [string, Parameters<typeof scoreBatch>[0], RegExp][])('scoreBatch (packed arrays): %s', async (_name, batch, message) => {
    await expect(scoreBatch(batch, {}, { backend: 'cpu' })).rejects.toThrow(InputError);
    await expect(scoreBatch(batch, {}, { backend: 'cpu' })).rejects.toThrow(message);
  });

  it('scoreBatch accepts values exactly at the bounds', async () => {
    const r = await scoreBatch(
      {
        ...base,
        d: 1,
        embeddings: Float64Array.of(E_MAX, -E_MAX, 1, 1),
        expected: Float64Array.of(R_MAX, -R_MAX, 0, 0),
        realized: Float64Array.of(-R_MAX, R_MAX, 0, 0),
        a: 1,
        policy: Float64Array.of(P_MAX, 0, 1, 1),
      },
      {},
      { backend: 'cpu' },
    );
    for (const v of r.metrics.cci) expect(Number.isFinite(v)).toBe(true);
  });
});
