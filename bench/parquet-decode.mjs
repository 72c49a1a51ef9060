#!/usr/bin/env node
/**
 * parquet-wasm's decoding cost alone: streams FILE in batches of 65,536 rows (as `ecr score`
 * reads it) and hands each batch over as Arrow IPC, scoring nothing. Prints wall time and the
 * process's CPU time (user + system), the part of a Parquet run no scoring work can overlap.
 * usage: npm run build && node bench/parquet-decode.mjs FILE.parquet
 */
import { openAsBlob } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { PARQUET_BATCH_ROWS } from '../dist/engine/columnar/readers.js';
import { loadParquetWasm } from '../dist/engine/columnar/parquet-wasm.js';

const file = process.argv[2];
if (!file) {
  process.stderr.write('usage: node bench/parquet-decode.mjs FILE.parquet\n');
  process.exit(2);
}
const pw = await loadParquetWasm();
const t0 = performance.now();
const cpu0 = process.cpuUsage();
const pf = await pw.ParquetFile.fromFile(await openAsBlob(file));
const reader = (await pf.stream({ batchSize: PARQUET_BATCH_ROWS })).getReader();
let batches = 0,
  rows = 0,
  ipcBytes = 0;
for (;;) {
  const next = await reader.read();
  if (next.done) break;
  batches++;
  rows += next.value.numRows;
  ipcBytes += next.value.intoIPCStream().length; // consumes (and frees) the batch
}
const cpu = process.cpuUsage(cpu0);
console.log(
  JSON.stringify({
    file,
    rows,
    batches,
    ipcMB: Math.round(ipcBytes / 2 ** 20),
    wallS: +((performance.now() - t0) / 1000).toFixed(2),
    cpuS: +((cpu.user + cpu.system) / 1e6).toFixed(2),
  }),
);
pf.free();
