/**
 * The library's misuse contract (README, "Errors are typed"): arguments of the wrong kind are a
 * UsageError, bad batch contents an InputError naming the field, never a raw TypeError from deep
 * inside a backend. A wrong `out` array is the same UsageError on every backend.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { allocMetrics, type Batch, type MetricArrays } from '../src/core/batch.js';
import { chooseBackend, disposeBackends, getBackend } from '../src/backends/registry.js';
import { InputError, UsageError } from '../src/core/errors.js';
import { scoreBatch } from '../src/engine/score-batch.js';
import { scoreRecords } from '../src/engine/score-records.js';
import { toResolvedConfig } from '../src/core/config.js';
import { type BackendName } from '../src/backends/backend.js';
import { webGpuGate } from './webgpu-gate.js';

const gpu = await webGpuGate();
afterAll(() => disposeBackends());

/** A valid 2-trajectory batch: T = 3 steps of m = 2 components. */
function goodBatch(): Batch {
  return { n: 2, t: 3, m: 2, steps: Float64Array.from({ length: 12 }, (_, i) => (i % 5) / 5) };
}

/** Resolves to the thrown error (the test fails if the call succeeds). */
async function errorOf(run: () => unknown): Promise<Error> {
  try {
    await run();
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected the call to throw');
}

describe('scoreBatch rejects misuse with typed errors', () => {
  // Arguments that are not a batch at all: UsageError.
  it.each([
    ['null', null, /got null/],
    ['undefined', undefined, /got undefined/],
    ['a number', 5, /got a number/],
    ['an array', [1, 2], /got an Array/],
  ])('batch %s is a UsageError', async (_name, batch, message) => {
    const err = await errorOf(() => scoreBatch(batch as unknown as Batch));
    expect(err).toBeInstanceOf(UsageError);
    expect(err.message).toMatch(message);
  });

  // Wrong types and lengths inside a batch: InputError naming the field.
  const cases: [string, Record<string, unknown>, RegExp][] = [
    ['no n', { n: undefined }, /field "n": must be an integer >= 0, got undefined/],
    ['n as a string', { n: '2' }, /field "n": must be an integer >= 0, got "2"/],
    ['t of 1', { t: 1 }, /field "t": must be an integer >= 2/],
    ['no steps', { steps: undefined }, /field "steps": is required \(a Float32Array or Float64Array of length 12\)/],
    ['steps as a plain Array', { steps: Array(12).fill(0.5) }, /field "steps": must be a Float32Array or Float64Array, got an Array/],
    ['steps as a string', { steps: 'abcdefghijkl' }, /field "steps": must be a Float32Array or Float64Array, got a string/],
    ['steps as an Int32Array', { steps: new Int32Array(12) }, /field "steps": must be a Float32Array or Float64Array, got an Int32Array/],
    ['steps too short', { steps: new Float64Array(11) }, /field "steps": length 11, expected 12/],
    ['groups as a plain Array', { groups: [0, 1] }, /field "groups": must be an Int32Array or Uint32Array, got an Array/],
    ['groups as a Float64Array', { groups: Float64Array.of(0, 0.5) }, /field "groups": must be an Int32Array or Uint32Array, got a Float64Array/],
    ['groups too long', { groups: new Int32Array(3) }, /field "groups": length 3, expected 2/],
    ['baseScore as a plain Array', { baseScore: [0.1, 0.2] }, /field "baseScore": must be a Float64Array, got an Array/],
    ['embeddings as a plain Array', { d: 2, embeddings: Array(12).fill(1) }, /field "embeddings": must be a Float32Array or Float64Array, got an Array/],
    ['embeddings without d', { embeddings: new Float64Array(12) }, /field "embeddings": embeddings and d must be given together/],
    ['d as a string', { d: '2', embeddings: new Float64Array(12) }, /field "d": must be an integer >= 1, got "2"/],
    ['embeddings of the wrong length', { d: 2, embeddings: new Float64Array(10) }, /field "embeddings": length 10, expected 12/],
    ['expected as null', { expected: null, realized: new Float64Array(6) }, /field "expected": must be a Float32Array or Float64Array, got null/],
    [
      'realized as a plain Array',
      { expected: new Float64Array(6), realized: [0, 0, 0, 0, 0, 0] },
      /field "realized": must be a Float32Array or Float64Array, got an Array/,
    ],
    ['policy as an object', { a: 2, policy: { length: 12 } }, /field "policy": must be a Float32Array or Float64Array, got an Object/],
  ];
  it.each(cases)('batch with %s is an InputError naming the field', async (_name, patch, message) => {
    const err = await errorOf(() => scoreBatch({ ...goodBatch(), ...patch }, {}, { backend: 'cpu' }));
    expect(err).toBeInstanceOf(InputError);
    expect(err.message).toMatch(message);
  });

  it('an empty object is an InputError naming n', async () => {
    const err = await errorOf(() => scoreBatch({} as Batch));
    expect(err).toBeInstanceOf(InputError);
    expect(err.message).toBe('field "n": must be an integer >= 0, got undefined');
  });

  it('an unknown backend name is a UsageError listing the real ones', async () => {
    const err = await errorOf(() => scoreBatch(goodBatch(), {}, { backend: 'gpu' as BackendName }));
    expect(err).toBeInstanceOf(UsageError);
    expect(err.message).toBe('unknown backend "gpu": expected one of auto, webgpu, cpu, cpu-reference');
  });

  it('null options are a UsageError', async () => {
    const err = await errorOf(() => scoreBatch(goodBatch(), {}, null as never));
    expect(err).toBeInstanceOf(UsageError);
    expect(err.message).toMatch(/scoreBatch: options must be an object, got null/);
  });

  it('audit() of a group that does not exist is a UsageError', async () => {
    const r = await scoreBatch(goodBatch(), {}, { backend: 'cpu' });
    expect(() => r.audit(3)).toThrow(UsageError);
    expect(() => r.audit(3)).toThrow(/no group with index 3/);
  });

  it('still scores a valid batch given as Float32Array steps', async () => {
    const b = goodBatch();
    const r = await scoreBatch({ ...b, steps: Float32Array.from(b.steps), groups: Int32Array.of(0, 0) }, {}, { backend: 'cpu' });
    expect(r.metrics.cci).toHaveLength(2);
    expect(r.groups).toHaveLength(1);
  });
});

describe('scoreRecords rejects misuse with typed errors', () => {
  it.each([
    ['an object', {}, /records must be an array of trajectory objects, got object/],
    ['null', null, /got null/],
    ['a string', 'records.jsonl', /got string/],
  ])('records as %s is a UsageError', async (_name, records, message) => {
    const err = await errorOf(() => scoreRecords(records as never));
    expect(err).toBeInstanceOf(UsageError);
    expect(err.message).toMatch(message);
  });

  it.each([
    ['null', null],
    ['a number', 3],
  ])('a record that is %s is an InputError naming the record', async (_name, record) => {
    const err = await errorOf(() => scoreRecords([{ steps: [[0.1], [0.2]] }, record as never]));
    expect(err).toBeInstanceOf(InputError);
    expect(err.message).toMatch(/^record 1/);
  });

  it('an unknown backend name and null options are UsageErrors', async () => {
    const records = [{ steps: [[0.1], [0.2]] }];
    const err = await errorOf(() => scoreRecords(records, {}, { backend: 'gpu' as BackendName }));
    expect(err).toBeInstanceOf(UsageError);
    expect(err.message).toMatch(/unknown backend "gpu"/);
    expect(await errorOf(() => scoreRecords(records, {}, null as never))).toBeInstanceOf(UsageError);
  });
});

describe('backend lookup rejects names that are not backends', () => {
  it('getBackend("gpu") and getBackend("auto") reject with a UsageError', async () => {
    await expect(getBackend('gpu' as BackendName)).rejects.toThrow(UsageError);
    await expect(getBackend('gpu' as BackendName)).rejects.toThrow(/expected one of cpu-reference, cpu, webgpu/);
    await expect(getBackend('auto' as BackendName)).rejects.toThrow(/resolve "auto" with chooseBackend/);
  });
  it('chooseBackend("gpu") rejects with a UsageError', async () => {
    await expect(chooseBackend('gpu' as BackendName)).rejects.toThrow(UsageError);
  });
});

const BACKENDS: BackendName[] = ['cpu', 'cpu-reference', ...(gpu.available ? ['webgpu' as const] : [])];

describe.each(BACKENDS)('computeMetrics on %s checks ComputeOptions.out the same way', (name) => {
  const config = toResolvedConfig({});
  const batch = goodBatch();

  it.each([
    [
      'evb one too short',
      (o: MetricArrays) => ({ ...o, evb: new Float64Array(1) }),
      'ComputeOptions.out.evb must be a Float64Array of length n = 2, got length 1',
    ],
    [
      'cci one too long',
      (o: MetricArrays) => ({ ...o, cci: new Float64Array(3) }),
      'ComputeOptions.out.cci must be a Float64Array of length n = 2, got length 3',
    ],
    [
      'pd a Float32Array',
      (o: MetricArrays) => ({ ...o, pd: new Float32Array(2) as unknown as Float64Array }),
      'ComputeOptions.out.pd must be a Float64Array of length n = 2, got a Float32Array',
    ],
    [
      'ts missing',
      (o: MetricArrays) => ({ ...o, ts: undefined as unknown as Float64Array }),
      'ComputeOptions.out.ts must be a Float64Array of length n = 2, got undefined',
    ],
  ])('out with %s is a UsageError', async (_case, patch, message) => {
    const backend = await getBackend(name);
    const err = await errorOf(() => backend.computeMetrics(batch, config, { out: patch(allocMetrics(2)) }));
    expect(err).toBeInstanceOf(UsageError);
    expect(err.message).toBe(message);
  });

  it('a missing covariance array when covariance is requested is a UsageError', async () => {
    const backend = await getBackend(name);
    const err = await errorOf(() => backend.computeMetrics(batch, config, { covariance: true, out: allocMetrics(2) }));
    expect(err).toBeInstanceOf(UsageError);
    expect(err.message).toMatch(/ComputeOptions.out.covariance must be a Float64Array of length n\*m\*m = 8/);
  });

  it('an out of the right lengths is filled in place', async () => {
    const backend = await getBackend(name);
    const out = allocMetrics(2);
    out.cci.fill(-1);
    const got = await backend.computeMetrics(batch, config, { out });
    expect(got.cci).toBe(out.cci);
    expect(out.cci[0]).toBeGreaterThanOrEqual(0);
    const fresh = await backend.computeMetrics(batch, config);
    for (let i = 0; i < 2; i++) expect(out.cci[i]).toBeCloseTo(fresh.cci[i], 5);
  });
});
