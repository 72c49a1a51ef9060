/**
 * The columnar block builder and the result store, below the CLI: a block of one shape hands the
 * backend views of the file's own float32/float64 values (no copy; the WebGPU backend then fills
 * its mapped staging memory straight from them), mixed shapes split into per-shape batches with
 * the right rows, results spill to disk and come back in order, and a float32 block scored on
 * WebGPU agrees with the CPU.
 */
import { existsSync } from 'node:fs';
import * as arrow from 'apache-arrow';
import { describe, expect, it } from 'vitest';
import { toResolvedConfig } from '../src/core/config.js';
import { rowNumberData } from '../src/engine/columnar/arrow-build.js';
import { checkBlock } from '../src/engine/columnar/block.js';
import { ResultStore, SelectedColumn, resultBatch } from '../src/engine/columnar/results.js';
import { checkSchema } from '../src/engine/columnar/schema.js';
import { scoreBlock } from '../src/engine/columnar/score-columnar.js';
import { GroupKeys } from '../src/engine/group-keys.js';
import { GroupSelector } from '../src/core/select.js';
import type { InputError } from '../src/core/errors.js';
import { webGpuGate } from './webgpu-gate.js';
import { disposeBackends } from '../src/backends/registry.js';

const { Field, FixedSizeList, Float32, Float64, List, Utf8, makeData, RecordBatch } = arrow;

function fixedF32Batch(n: number, t: number, m: number, seed = 1): { batch: arrow.RecordBatch; values: Float32Array } {
  const values = new Float32Array(n * t * m);
  let s = seed;
  for (let i = 0; i < values.length; i++) values[i] = (s = (s * 16807) % 2147483647) / 2147483647;
  const inner = new FixedSizeList(m, new Field('item', new Float32(), false));
  const outer = new FixedSizeList(t, new Field('item', inner, false));
  const steps = makeData({
    type: outer,
    length: n,
    child: makeData({ type: inner, length: n * t, child: makeData({ type: new Float32(), length: values.length, data: values }) }),
  });
  const group = arrow.vectorFromArray(
    Array.from({ length: n }, (_, i) => `g${i >> 2}`),
    new Utf8(),
  ).data[0];
  return { batch: new RecordBatch({ group, steps }), values };
}

const check = (batch: arrow.RecordBatch, errors: InputError[] = []) => checkBlock(batch, checkSchema(batch.schema), 0, errors, 20, rowNumberData);

describe('columnar blocks', () => {
  it('a fixed-size float32 block is handed to the backend as a view of the column (zero-copy)', () => {
    const { batch, values } = fixedF32Batch(64, 5, 8);
    const block = check(batch)!;
    expect(block.parts).toHaveLength(1);
    const steps = block.parts[0].batch.steps;
    expect(steps).toBeInstanceOf(Float32Array);
    const column = batch.getChild('steps')!.data[0].children[0].children[0].values as Float32Array;
    expect(steps.buffer).toBe(column.buffer);
    expect(steps.byteOffset).toBe(column.byteOffset);
    expect(steps.length).toBe(values.length);
    expect(block.parts[0].rows).toBeNull();
    expect(block.idOf(3)).toBe(4); // no id column: the 1-based row number
  });

  it('a list<list<double>> block of one shape is a view too; mixed shapes split into per-shape batches', () => {
    const type = new List(new Field('item', new List(new Field('item', new Float64(), false)), false));
    const same = arrow.vectorFromArray(
      [
        [
          [0.1, 0.2],
          [0.3, 0.4],
        ],
        [
          [0.5, 0.6],
          [0.7, 0.8],
        ],
      ],
      type,
    ).data[0];
    const b1 = check(new RecordBatch({ steps: same }))!;
    expect(b1.parts).toHaveLength(1);
    expect(b1.parts[0].batch.steps.buffer).toBe((same.children[0].children[0].values as Float64Array).buffer);
    expect(Array.from(b1.parts[0].batch.steps)).toEqual([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]);

    const mixed = arrow.vectorFromArray(
      [
        [
          [0.1, 0.2],
          [0.3, 0.4],
        ],
        [
          [0.5, 0.6, 0.9],
          [0.7, 0.8, 1],
        ],
        [
          [0, 1],
          [1, 0],
        ],
      ],
      type,
    ).data[0];
    const b2 = check(new RecordBatch({ steps: mixed }))!;
    expect(b2.parts.map((p) => Array.from(p.rows!))).toEqual([[0, 2], [1]]);
    expect(b2.parts.map((p) => [p.batch.n, p.batch.t, p.batch.m])).toEqual([
      [2, 2, 2],
      [1, 2, 3],
    ]);
    expect(Array.from(b2.parts[0].batch.steps)).toEqual([0.1, 0.2, 0.3, 0.4, 0, 1, 1, 0]);
    expect(Array.from(b2.parts[1].batch.steps)).toEqual([0.5, 0.6, 0.9, 0.7, 0.8, 1]);
  });

  it('an invalid row makes the block null and reports the row (1-based, after firstRow) and column', () => {
    const type = new List(new Field('item', new List(new Field('item', new Float64(), false)), false));
    const steps = arrow.vectorFromArray(
      [
        [
          [0.1, 0.2],
          [0.3, 0.4],
        ],
        [
          [0.5, 2],
          [0.7, 0.8],
        ],
      ],
      type,
    ).data[0];
    const errors: InputError[] = [];
    expect(checkBlock(new RecordBatch({ steps }), { steps: 0 }, 100, errors, 20, rowNumberData)).toBeNull();
    expect(errors.map((e) => e.message)).toEqual(['row 102, id "102", column "steps[0][1]": 2 is outside [0, 1]']);
  });

  it('group keys interned from UTF-8 bytes equal those interned from strings', () => {
    const keys = ['q1', 'größe', 'q1', '', '日本', 'größe'];
    const a = new GroupKeys(),
      b = new GroupKeys();
    const enc = new TextEncoder();
    const fromBytes = keys.map((k) => {
      const bytes = enc.encode(`x${k}y`);
      return a.indexOfUtf8(bytes, 1, bytes.length - 1);
    });
    expect(fromBytes).toEqual(keys.map((k) => b.indexOf(k)));
    expect(a.keys).toEqual(b.keys);
    expect(fromBytes).toEqual([0, 1, 0, 2, 3, 1]);
  });
});

describe('result store', () => {
  it('spills past its budget and reads the batches back in order, then removes its directory', async () => {
    const store = new ResultStore(1); // every batch past the first goes to disk
    const sel = new GroupSelector(0.5);
    const groups = new GroupKeys();
    const config = toResolvedConfig({});
    const expected: number[] = [];
    for (let k = 0; k < 3; k++) {
      const { batch } = fixedF32Batch(10, 3, 4, k + 1);
      const block = checkBlock(batch, checkSchema(batch.schema), k * 10, [], 20, rowNumberData)!;
      const r = await scoreBlock(block, { config, backend: 'cpu', compute: {} }, groups, sel, (j) => ({ row: k * 10 + j + 1 }));
      expected.push(...r.metrics.cci);
      await store.add(resultBatch(r));
    }
    const spillDir = (store as unknown as { spill: { dir: string } | null }).spill?.dir;
    expect(spillDir).toBeTruthy();
    const selected = new SelectedColumn(sel.selectedIndices());
    const cci: number[] = [],
      ids: number[] = [],
      flags: boolean[] = [];
    for await (const b of store.batches()) {
      const full = selected.append(b);
      cci.push(...(full.getChild('CCI')!.toArray() as Float64Array));
      ids.push(...Array.from(full.getChild('id')!.toArray() as BigInt64Array, Number));
      flags.push(...Array.from({ length: full.numRows }, (_, j) => full.getChild('selected')!.get(j) as boolean));
    }
    expect(cci).toEqual(expected);
    expect(ids).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
    // Groups g0..g2 repeat in every block (4 rows each): 3 groups, one selection each, wherever it fell.
    expect(flags.filter(Boolean)).toHaveLength(groups.size);
    expect(flags.map((f, i) => (f ? i : -1)).filter((i) => i >= 0)).toEqual(Array.from(sel.selectedIndices()));
    await store.dispose();
    expect(existsSync(spillDir!)).toBe(false);
  });
});

describe('webgpu from columns', () => {
  it('a float32 column block scored on WebGPU agrees with the cpu backend within 1e-5', async () => {
    const gpu = await webGpuGate();
    if (!gpu.available) return;
    const { batch } = fixedF32Batch(4096, 5, 8, 3);
    const config = toResolvedConfig({});
    const run = async (backend: 'cpu' | 'webgpu') => {
      const block = check(batch)!;
      return scoreBlock(block, { config, backend, compute: {} }, new GroupKeys(), new GroupSelector(config.tau), (j) => ({ row: j + 1 }));
    };
    const [c, g] = [await run('cpu'), await run('webgpu')];
    let worst = 0;
    for (const k of ['evb', 'cr', 'ts', 'es', 'pd', 'cci'] as const)
      for (let j = 0; j < 4096; j++) worst = Math.max(worst, Math.abs(c.metrics[k][j] - g.metrics[k][j]));
    expect(worst).toBeLessThan(1e-5);
    expect(worst).toBeGreaterThan(0); // float32 kernels: not the CPU's float64 bits
    await disposeBackends();
  });
});
