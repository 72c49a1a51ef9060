/**
 * The one window scorer (src/engine/window-scorer.ts) that scoreBatch, scoreRecords, the JSONL
 * window, the columnar blocks and calibration go through: a window of mixed shapes comes back in
 * window order, a whole-window part is written in place (or is the backend's own arrays), the
 * shapes are checked once each in part order, and a non-finite result names its line or row.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { allocMetrics, type Batch, type MetricArrays } from '../src/core/batch.js';
import { toResolvedConfig } from '../src/core/config.js';
import { ConfigError, InputError } from '../src/core/errors.js';
import { NonFiniteResultError } from '../src/core/result-line.js';
import { GroupSelector } from '../src/core/select.js';
import { getBackend } from '../src/backends/registry.js';
import { allocateSharedMetrics } from '../src/backends/cpu/shared.js';
import { GroupKeys } from '../src/engine/group-keys.js';
import { checkRecord, type CheckedRecord } from '../src/engine/record.js';
import { recordsWindow } from '../src/engine/score-records.js';
import { scoreBatch } from '../src/engine/score-batch.js';
import { scoreWindow, type ScoreSettings, type ScoringWindow } from '../src/engine/window-scorer.js';
import { syntheticBatch } from '../src/testing/synthetic-batch.js';
import { parseChunk } from '../src/engine/jsonl/jsonl-parse.js';
import { PackedWindow } from '../src/engine/jsonl/packed-window.js';
import { checkBlock } from '../src/engine/columnar/block.js';
import { checkSchema } from '../src/engine/columnar/schema.js';
import { rowNumberData } from '../src/engine/columnar/arrow-build.js';
import { scoreBlock } from '../src/engine/columnar/score-columnar.js';
import * as arrow from 'apache-arrow';

const config = toResolvedConfig({});
const settings: ScoreSettings = { config, backend: 'cpu-reference', compute: {} };

/** A trajectory of T steps of m components (values from i, so every record differs). */
function record(i: number, t: number, m: number, extra: Record<string, unknown> = {}): CheckedRecord {
  const steps = Array.from({ length: t }, (_, k) => Array.from({ length: m }, (_, j) => ((i * 7 + k * 3 + j * 5) % 10) / 10));
  return checkRecord({ id: `r${i}`, group: `g${i % 3}`, steps, ...extra }, { record: i }, i);
}

const KEYS = ['evb', 'cr', 'ts', 'es', 'pd', 'cci'] as const;

afterEach(() => {
  vi.restoreAllMocks();
});

describe('scoreWindow', () => {
  it('scores a window of mixed shapes into window order, each row offered as firstIndex + j', async () => {
    const records = [record(0, 3, 2), record(1, 4, 3), record(2, 3, 2), record(3, 5, 2, { embeddings: [[0.1], [0.2], [0.3], [0.4], [0.5]] }), record(4, 4, 3)];
    const window = recordsWindow(records, 100, new GroupKeys());
    expect(window.parts.map((p) => Array.from(p.rows!))).toEqual([[0, 2], [1, 4], [3]]);
    const selector = new GroupSelector(config.tau);
    const offered = vi.spyOn(selector, 'offer');
    const w = await scoreWindow(window, settings, selector);
    expect(w.backends).toEqual(['cpu-reference', 'cpu-reference', 'cpu-reference']);
    for (let j = 0; j < records.length; j++) {
      const r = records[j];
      const alone = await scoreBatch(
        {
          n: 1,
          t: r.t,
          m: r.m,
          steps: Float64Array.from(r.steps.flat()),
          ...(r.embeddings ? { d: r.d, embeddings: Float64Array.from(r.embeddings.flat()) } : {}),
        },
        config,
        { backend: 'cpu-reference' },
      );
      for (const k of KEYS) expect(w.metrics[k][j], `${k} of record ${j}`).toBe(alone.metrics[k][0]);
      expect(offered.mock.calls[j]).toEqual([window.groups![j], 100 + j, w.metrics.cci[j], Number.NaN]);
      expect(w.admissible[j]).toBe(w.metrics.cci[j] >= config.tau ? 1 : 0);
    }
  });

  it("writes a whole-window part in place, and keeps the backend's own arrays when given none", async () => {
    const batch = syntheticBatch({ n: 6, t: 4, m: 3, seed: 3 });
    const backend = await getBackend('cpu-reference');
    const compute = vi.spyOn(backend, 'computeMetrics');
    const into = allocateSharedMetrics(6);
    const placed = await scoreWindow(
      { n: 6, parts: [{ batch, rows: null }], firstIndex: 0, groups: null, baseScore: null, locate: null, metrics: into },
      settings,
      new GroupSelector(config.tau),
    );
    expect(compute.mock.calls[0][2]?.out).toBe(into);
    for (const k of KEYS) expect(placed.metrics[k]).toBe(into[k]);

    const own = await scoreWindow(
      { n: 6, parts: [{ batch, rows: null }], firstIndex: 0, groups: null, baseScore: null, locate: null },
      settings,
      new GroupSelector(config.tau),
    );
    const returned = (await compute.mock.results[1].value) as MetricArrays;
    for (const k of KEYS) expect(own.metrics[k]).toBe(returned[k]);
    for (const k of KEYS) expect(Array.from(own.metrics[k])).toEqual(Array.from(placed.metrics[k]));
  });

  it("scatters a part through its reused output arrays into the window's", async () => {
    const batch = syntheticBatch({ n: 3, t: 4, m: 3, seed: 4 });
    const backend = await getBackend('cpu-reference');
    const compute = vi.spyOn(backend, 'computeMetrics');
    const partOut = allocMetrics(3);
    const w = await scoreWindow(
      {
        n: 3,
        parts: [{ batch, rows: Int32Array.from([2, 0, 1]), out: partOut }],
        firstIndex: 0,
        groups: null,
        baseScore: null,
        locate: null,
      },
      settings,
      new GroupSelector(config.tau),
    );
    expect(compute.mock.calls[0][2]?.out).toBe(partOut);
    expect(w.metrics.cci).not.toBe(partOut.cci);
    expect([w.metrics.cci[2], w.metrics.cci[0], w.metrics.cci[1]]).toEqual(Array.from(partOut.cci));
  });

  it('checks each shape once, in part order, naming the first row of the first shape that does not fit', async () => {
    const tight = toResolvedConfig({ confIndex: 2 });
    const records = [record(0, 3, 3), record(1, 3, 2), record(2, 4, 1), record(3, 3, 2)];
    const backend = await getBackend('cpu-reference');
    const compute = vi.spyOn(backend, 'computeMetrics');
    const w = recordsWindow(records, 0, new GroupKeys());
    const run = scoreWindow(w, { ...settings, config: tight }, new GroupSelector(tight.tau));
    await expect(run).rejects.toThrow(InputError);
    await expect(scoreWindow(w, { ...settings, config: tight }, new GroupSelector(tight.tau))).rejects.toThrow(
      'record 1, id "r1", field "steps": 2 components per step do not fit the configuration: config "confIndex": is 2 but the trajectories have only m = 2 components',
    );
    expect(compute).not.toHaveBeenCalled(); // every shape is checked before any is computed
    // A caller's batch (no rows to name) gets the configuration's own error.
    const batch = syntheticBatch({ n: 2, t: 3, m: 2 });
    await expect(
      scoreWindow(
        { n: 2, parts: [{ batch, rows: null }], firstIndex: 0, groups: null, baseScore: null, locate: null },
        { ...settings, config: tight },
        new GroupSelector(0.5),
      ),
    ).rejects.toThrow(ConfigError);
  });

  describe('the non-finite guard', () => {
    const window = (batch: Batch, where: 'line' | 'row', requireFinite: boolean): ScoringWindow => ({
      n: batch.n,
      parts: [{ batch, rows: null }],
      firstIndex: 0,
      groups: null,
      baseScore: null,
      requireFinite,
      locate: (j) => (where === 'line' ? { line: 10 + j, id: `L${j}` } : { row: 20 + j, id: `R${j}` }),
    });

    async function poisoned(metric: (typeof KEYS)[number], value: number): Promise<Batch> {
      const batch = syntheticBatch({ n: 3, t: 3, m: 2, seed: 9 });
      const backend = await getBackend('cpu-reference');
      const real = backend.computeMetrics.bind(backend);
      vi.spyOn(backend, 'computeMetrics').mockImplementation(async (b, c, o) => {
        const out = await real(b, c, o);
        out[metric][1] = value;
        return out;
      });
      return batch;
    }

    it('names the line of a JSONL record', async () => {
      const batch = await poisoned('es', Number.NaN);
      const run = scoreWindow(window(batch, 'line', true), settings, new GroupSelector(0.5));
      await expect(run).rejects.toThrow(NonFiniteResultError);
      await expect(scoreWindow(window(batch, 'line', true), settings, new GroupSelector(0.5))).rejects.toThrow(
        'the backend computed ES = NaN for line 11, id "L1"; a result must be a finite number, so nothing was written',
      );
    });

    it('names the row of a Parquet or Arrow record, before any row is offered', async () => {
      const batch = await poisoned('cci', Number.POSITIVE_INFINITY);
      const selector = new GroupSelector(0.5);
      const offered = vi.spyOn(selector, 'offer');
      await expect(scoreWindow(window(batch, 'row', true), settings, selector)).rejects.toThrow(
        'the backend computed CCI = Infinity for row 21, id "R1"; a result must be a finite number, so nothing was written',
      );
      expect(offered).not.toHaveBeenCalled();
    });

    it('is left to the caller where none is asked for (the library API returns what the backend computed)', async () => {
      const batch = await poisoned('cr', Number.NaN);
      const w = await scoreWindow(window(batch, 'row', false), settings, new GroupSelector(0.5));
      expect(w.metrics.cr[1]).toBeNaN();
    });
  });
});

describe('the paths name their records through the scorer', () => {
  async function poisonCci(): Promise<void> {
    const backend = await getBackend('cpu-reference');
    const real = backend.computeMetrics.bind(backend);
    vi.spyOn(backend, 'computeMetrics').mockImplementation(async (b, c, o) => {
      const out = await real(b, c, o);
      out.cci[b.n - 1] = Number.NaN;
      return out;
    });
  }

  it('the JSONL window: a mixed-shape window in line order, a non-finite result named by line and id', async () => {
    const text = ['{"id":"a","steps":[[0.1,0.2],[0.3,0.4]]}', '{"id":"b","steps":[[0.1],[0.3],[0.5]]}', '{"id":"c","steps":[[0.5,0.2],[0.1,0.9]]}'].join('\n');
    const chunk = parseChunk(Buffer.from(`${text}\n`), 40, 3);
    const window = new PackedWindow(new GroupKeys());
    window.add(chunk, 0, 3);
    const w = await window.score(7, settings, new GroupSelector(config.tau));
    expect(Array.from(w.lineOf)).toEqual([40, 41, 42]);
    const alone = await scoreBatch({ n: 1, t: 3, m: 1, steps: Float64Array.from([0.1, 0.3, 0.5]) }, config, { backend: 'cpu-reference' });
    expect(w.metrics.cci[1]).toBe(alone.metrics.cci[0]);
    await poisonCci();
    window.add(parseChunk(Buffer.from(`${text}\n`), 40, 3), 0, 3);
    // The last record of each shape comes back NaN ("c", line 42, and "b", line 41): the first in line order is named.
    await expect(window.score(7, settings, new GroupSelector(config.tau))).rejects.toThrow('the backend computed CCI = NaN for line 41, id "b"');
    expect(window.size).toBe(0);
  });

  it('the columnar block: a non-finite result named by row and id', async () => {
    const steps = arrow.vectorFromArray(
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
      new arrow.List(new arrow.Field('item', new arrow.List(new arrow.Field('item', new arrow.Float64(), false)), false)),
    ).data[0];
    const id = arrow.vectorFromArray(['x', 'y'], new arrow.Utf8()).data[0];
    const batch = new arrow.RecordBatch({ id, steps });
    const block = checkBlock(batch, checkSchema(batch.schema), 10, [], 20, rowNumberData)!;
    await poisonCci();
    await expect(scoreBlock(block, settings, new GroupKeys(), new GroupSelector(config.tau), (j) => ({ row: 10 + j + 1 }))).rejects.toThrow(
      'the backend computed CCI = NaN for row 12, id "y"',
    );
  });
});
