/**
 * Parquet decoding (issue 20): row groups streamed in batches of a bounded row count by one or
 * more decode workers, yielded in file order; the decode worker also finds the bounds of each
 * column's float values, which let the main thread skip its own range pass.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as arrow from 'apache-arrow';
import { describe, expect, it } from 'vitest';
import { openParquetInWorkers } from '../src/engine/columnar/parquet-reader.js';
import { boundsOf, knownWithin } from '../src/engine/columnar/value-bounds.js';
import { ROOT, runCli } from './helpers/cli.js';
import { FIXTURE_DIR } from './helpers/fixtures.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'ecr-decode-workers-'));
const records = path.join(FIXTURE_DIR, 'polars', 'records.jsonl');
// The worker runs from the build, as in the CLI (vitest does not load worker scripts from src/).
const script = new URL(`file://${path.join(ROOT, 'dist/engine/columnar/parquet-worker.js')}`);

/** The 48 fixture records as Parquet in row groups of 20 rows (20, 20, 8). */
async function parquetFile(): Promise<string> {
  const pw = await import('parquet-wasm/node');
  const arrows = path.join(dir, 'records.arrows');
  expect(runCli(['convert', records, arrows]).code).toBe(0);
  const props = new pw.WriterPropertiesBuilder().setMaxRowGroupSize(20).build();
  const file = path.join(dir, 'records.parquet');
  writeFileSync(file, pw.writeParquet(pw.Table.fromIPCStream(readFileSync(arrows)), props));
  return file;
}

const jsonlIds = () =>
  readFileSync(records, 'utf8')
    .trim()
    .split('\n')
    .map((l) => (JSON.parse(l) as { id: string | number }).id);

describe('openParquetInWorkers', () => {
  it.each([1, 2, 3])(
    'with %i worker(s), yields every row once, in file order, in batches of at most 7 rows, with the bounds of the steps values',
    async (workers) => {
      const file = await parquetFile();
      const input = await openParquetInWorkers(file, script, 7, workers);
      const ids: unknown[] = [];
      let checked = 0;
      try {
        for await (const batch of input.batches) {
          expect(batch.numRows).toBeLessThanOrEqual(7);
          const idColumn = batch.getChild('id')!;
          for (let i = 0; i < batch.numRows; i++) ids.push(idColumn.get(i));
          // steps: list<list<double>>, every value in [0, 1]: the main thread's pass is skipped.
          const leaf = batch.getChild('steps')!.data[0].children[0].children[0];
          if (knownWithin(leaf, 0, 1)) checked++;
          expect(knownWithin(leaf, 0, 0.5)).toBe(false);
        }
      } finally {
        await input.close();
      }
      expect(ids).toEqual(jsonlIds());
      // Row groups of 20, 20 and 8 rows in batches of 7: 3 + 3 + 2.
      expect(checked).toBe(8);
    },
  );

  it('ecr score reads the file of three row groups exactly as its JSONL source', async () => {
    const file = await parquetFile();
    const fromParquet = runCli(['score', file, '--backend', 'cpu-reference']);
    const fromJsonl = runCli(['score', records, '--backend', 'cpu-reference']);
    expect(fromParquet.code, fromParquet.stderr).toBe(0);
    expect(fromParquet.stdout).toBe(fromJsonl.stdout);
  });
});

describe('boundsOf', () => {
  const leafOf = (values: number[], type: arrow.Float = new arrow.Float64()) => arrow.vectorFromArray(values, type).data[0];
  it('gives the least and greatest value, for float64 and float32', () => {
    expect(boundsOf(leafOf([0.5, 0, 1, 0.25]))).toEqual({ min: 0, max: 1 });
    expect(boundsOf(leafOf([-2, 3.5], new arrow.Float32()))).toEqual({ min: -2, max: 3.5 });
  });
  it('gives none when a value is NaN or null, so that the main thread checks and words the error', () => {
    expect(boundsOf(leafOf([0.5, Number.NaN, 1]))).toBeNull();
    expect(boundsOf(leafOf([Number.NaN]))).toBeNull();
    expect(boundsOf(arrow.vectorFromArray([0.5, null], new arrow.Float64()).data[0])).toBeNull();
  });
});
