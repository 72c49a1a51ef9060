/**
 * `ecr score` reads Parquet's float list columns with DuckDB (duckdb-lists.ts) and the rest with
 * parquet-wasm (issue 20). Files written by parquet-wasm and by DuckDB itself, row groups of
 * several sizes, more batches than the ring of reused buffers holds: every result is the one the
 * Arrow and JSONL paths give.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as arrow from 'apache-arrow';
import { describe, expect, it } from 'vitest';
import { openParquetInWorkers } from '../src/engine/columnar/parquet-reader.js';
import { knownWithin } from '../src/engine/columnar/value-bounds.js';
import { ROOT, runCli } from './helpers/cli.js';
import { FIXTURE_DIR } from './helpers/fixtures.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'ecr-native-lists-'));
const records = path.join(FIXTURE_DIR, 'polars', 'records.jsonl');
// The decode worker runs from the build, as in the CLI (vitest does not load worker scripts from src/).
const script = new URL(`file://${path.join(ROOT, 'dist/engine/columnar/parquet-worker.js')}`);

async function writeParquet(table: arrow.Table, file: string, rowGroupRows: number): Promise<void> {
  const pw = await import('parquet-wasm/node');
  const props = new pw.WriterPropertiesBuilder().setMaxRowGroupSize(rowGroupRows).build();
  writeFileSync(file, pw.writeParquet(pw.Table.fromIPCStream(arrow.tableToIPC(table, 'stream')), props));
}

describe('Parquet float lists read by DuckDB', () => {
  it('a file DuckDB wrote (its own row groups and list types) scores as its JSONL source', async () => {
    const arrows = path.join(dir, 'records.arrows');
    expect(runCli(['convert', records, arrows]).code).toBe(0);
    const source = path.join(dir, 'records.parquet');
    await writeParquet(arrow.tableFromIPC(readFileSync(arrows)), source, 20);
    const { DuckDBInstance } = await import('@duckdb/node-api');
    const db = await DuckDBInstance.create(':memory:');
    const connection = await db.connect();
    const duckFile = path.join(dir, 'duckdb.parquet');
    await connection.run(`COPY (SELECT * FROM read_parquet('${source}')) TO '${duckFile}' (FORMAT parquet, ROW_GROUP_SIZE 16)`);
    connection.closeSync();
    db.closeSync();
    const fromDuck = runCli(['score', duckFile, '--backend', 'cpu-reference']);
    const fromJsonl = runCli(['score', records, '--backend', 'cpu-reference']);
    expect(fromDuck.code, fromDuck.stderr).toBe(0);
    expect(fromDuck.stdout).toBe(fromJsonl.stdout);
  });

  it('hands over list<list<float>> with the bounds of its values, so the range check has nothing left to read', async () => {
    const file = path.join(dir, 'bounds.parquet');
    await writeParquet(arrow.tableFromIPC(readFileSync(path.join(dir, 'records.arrows'))), file, 20);
    const input = await openParquetInWorkers(file, script, 65536, 1, true);
    let batches = 0;
    try {
      for await (const batch of input.batches) {
        const steps = batch.getChild('steps')!.data[0];
        expect(steps.type.toString()).toBe('List<List<Float64>>');
        expect(knownWithin(steps.children[0].children[0], 0, 1)).toBe(true);
        batches++;
      }
    } finally {
      await input.close();
    }
    expect(input.transient).toBe(true);
    expect(batches).toBeGreaterThan(0);
  });

  it('more batches than the ring holds (262,244 rows, float32, row groups of 100,000): the results of the same rows as Arrow IPC', async () => {
    const n = 4 * 65536 + 100;
    const values = new Float32Array(n * 4);
    let seed = 7;
    for (let i = 0; i < values.length; i++) values[i] = ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 8) / 16777216;
    const leaf = arrow.makeData({ type: new arrow.Float32(), length: values.length, data: values });
    const inner = arrow.makeData({
      type: new arrow.List(new arrow.Field('item', new arrow.Float32(), true)),
      length: n * 2,
      valueOffsets: Int32Array.from({ length: n * 2 + 1 }, (_, i) => i * 2),
      child: leaf,
    });
    const stepsType = new arrow.List(new arrow.Field('item', inner.type, true));
    const steps = arrow.makeVector(
      arrow.makeData({ type: stepsType, length: n, valueOffsets: Int32Array.from({ length: n + 1 }, (_, i) => i * 2), child: inner }),
    );
    const group = arrow.vectorFromArray(
      Array.from({ length: n }, (_, i) => `g${i >> 2}`),
      new arrow.Utf8(),
    );
    const table = new arrow.Table({ group, steps });
    const parquet = path.join(dir, 'ring.parquet');
    await writeParquet(table, parquet, 100_000);
    const ipc = path.join(dir, 'ring.arrow');
    writeFileSync(ipc, arrow.tableToIPC(table, 'file'));
    const fromParquet = runCli(['score', parquet, '--backend', 'cpu']);
    const fromArrow = runCli(['score', ipc, '--backend', 'cpu']);
    expect(fromParquet.code, fromParquet.stderr).toBe(0);
    expect(fromArrow.code, fromArrow.stderr).toBe(0);
    expect(fromParquet.stdout.split('\n')).toHaveLength(n + 1);
    expect(fromParquet.stdout).toBe(fromArrow.stdout);
  });
});
