#!/usr/bin/env node
/**
 * The Parquet decoder comparison of issue 20: one decoder per process, reading FILE into what the
 * scorer needs (the steps as float64 values, row by row, in file order), nothing scored. Prints one
 * JSON line: {decoder, rows, seconds, checksum}; bench/parquet-decoders.sh adds CPU seconds and
 * peak RSS from /usr/bin/time. `checksum` (the sum of the first step value of every row) shows that
 * every decoder read the same numbers.
 *
 * usage: node bench/parquet-decoders.mjs DECODER FILE
 *   DECODER: parquet-wasm:N   the engine's own reader (dist/), N decode workers by row group
 *            duckdb           @duckdb/node-api (a devDependency), streaming, the list vectors'
 *                             float64 data read in place
 *            polars           nodejs-polars, when installed (not a dependency: see bench/README.md)
 */
import { performance } from 'node:perf_hooks';

const [decoder, file] = process.argv.slice(2);
if (!decoder || !file) {
  process.stderr.write('usage: node bench/parquet-decoders.mjs parquet-wasm:N|duckdb|polars FILE\n');
  process.exit(2);
}
const t0 = performance.now();
let rows = 0;
let checksum = 0;

if (decoder.startsWith('parquet-wasm:')) {
  const { openColumnar } = await import('../dist/engine/columnar/readers.js');
  const input = await openColumnar(file, 'parquet', null, { decodeWorkers: Number(decoder.split(':')[1]) });
  for await (const batch of input.batches) {
    const steps = batch.getChild('steps').data[0];
    const values = steps.children[0].children[0].values;
    const perRow = values.length / batch.numRows;
    for (let i = 0; i < batch.numRows; i++) checksum += values[i * perRow];
    rows += batch.numRows;
  }
  await input.close();
} else if (decoder === 'duckdb') {
  const { DuckDBInstance } = await import('@duckdb/node-api');
  const instance = await DuckDBInstance.create(':memory:');
  const connection = await instance.connect();
  const result = await connection.stream(`SELECT steps FROM read_parquet('${file.replaceAll("'", "''")}')`);
  for (;;) {
    const chunk = await result.fetchChunk();
    if (!chunk || chunk.rowCount === 0) break;
    const outer = chunk.getColumnVector(0);
    // list<list<double>> or array<array<double>>: the leaf DOUBLE vector's data, viewed in place.
    const inner = outer.childData ?? outer.itemVectors;
    const values = inner.childData.items;
    const perRow = values.length / chunk.rowCount;
    for (let i = 0; i < chunk.rowCount; i++) checksum += values[i * perRow];
    rows += chunk.rowCount;
  }
  connection.closeSync?.();
} else if (decoder === 'polars') {
  let pl;
  try {
    pl = (await import('nodejs-polars')).default;
  } catch {
    console.log(
      JSON.stringify({ decoder, skipped: 'nodejs-polars is not installed (npm install --no-save nodejs-polars@0.25.2 nodejs-polars-linux-x64-gnu@0.25.2)' }),
    );
    process.exit(0);
  }
  // The whole file at once: nodejs-polars reads a slice only by re-planning a scan per slice,
  // which was slower still; its typed-array export is a copy.
  const df = pl.readParquet(file, { columns: ['steps'] });
  const values = df.getColumn('steps').explode().explode().toTypedArray();
  rows = df.height;
  const perRow = values.length / rows;
  for (let i = 0; i < rows; i++) checksum += values[i * perRow];
} else {
  process.stderr.write(`unknown decoder ${decoder}\n`);
  process.exit(2);
}
const seconds = (performance.now() - t0) / 1000;
console.log(JSON.stringify({ decoder, rows, seconds: +seconds.toFixed(2), checksum: +checksum.toFixed(6) }));
