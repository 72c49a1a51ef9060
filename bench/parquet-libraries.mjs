#!/usr/bin/env node
/**
 * The Parquet library comparison of issue 12 on the `ecr score` workload: N records (default 1M)
 * of T=5 steps x m=8 components as float64, an id and a group string per record, written in row
 * groups of 65,536 rows and read back one row group at a time (bounded memory) into what the
 * scorer needs: the steps as one Float64Array per row group, ids and groups as strings.
 *
 * usage: node bench/parquet-libraries.mjs LIB write|read FILE [N]
 *   LIB: parquet-wasm | hyparquet | duckdb   (hyparquet writes with hyparquet-writer)
 * One operation per process, so that /usr/bin/time -v reports each one's own peak RSS; the
 * wrapper bench/parquet-libraries.sh runs the table. Prints one JSON line:
 *   {lib, op, n, seconds, recordsPerSec, bytes, rowGroups, checksum}
 * `checksum` (the sum of all step values read) shows that every library read the same numbers.
 */
import { openAsBlob, statSync, createWriteStream } from 'node:fs';
import { Writable } from 'node:stream';

const [lib, op, file, nArg] = process.argv.slice(2);
const N = Number(nArg ?? 1_000_000);
const T = 5,
  M = 8,
  ROW_GROUP = 65536;

/** Deterministic inputs (not timed): steps in [0, 1], ids r0.., groups of 8 candidates. */
function makeInputs(n) {
  let seed = 12345;
  const steps = new Float64Array(n * T * M);
  for (let i = 0; i < steps.length; i++) steps[i] = (seed = (seed * 1103515245 + 12345) >>> 0) / 4294967296;
  const ids = Array.from({ length: n }, (_, i) => `r${i}`);
  const groups = Array.from({ length: n }, (_, i) => `g${i >> 3}`);
  return { steps, ids, groups };
}

const now = () => performance.now() / 1000;
const report = (o) => process.stdout.write(JSON.stringify({ lib, op, n: N, ...o, recordsPerSec: Math.round(N / o.seconds) }) + '\n');

async function parquetWasm() {
  const arrow = await import('apache-arrow');
  const pw = await import('parquet-wasm/node');
  if (op === 'write') {
    const { steps, ids, groups } = makeInputs(N);
    const t0 = now();
    const inner = new arrow.FixedSizeList(M, new arrow.Field('item', new arrow.Float64(), false));
    const outer = new arrow.FixedSizeList(T, new arrow.Field('item', inner, false));
    const batches = [];
    for (let s = 0; s < N; s += ROW_GROUP) {
      const n = Math.min(ROW_GROUP, N - s);
      const values = arrow.makeData({ type: new arrow.Float64(), length: n * T * M, data: steps.subarray(s * T * M, (s + n) * T * M) });
      const stepsData = arrow.makeData({ type: outer, length: n, child: arrow.makeData({ type: inner, length: n * T, child: values }) });
      batches.push(
        new arrow.RecordBatch({
          id: arrow.vectorFromArray(ids.slice(s, s + n), new arrow.Utf8()).data[0],
          group: arrow.vectorFromArray(groups.slice(s, s + n), new arrow.Utf8()).data[0],
          steps: stepsData,
        }),
      );
    }
    const props = new pw.WriterPropertiesBuilder().setMaxRowGroupSize(ROW_GROUP).setCompression(pw.Compression.SNAPPY).build();
    const stream = new ReadableStream({
      pull(c) {
        const b = batches.shift();
        if (!b) {
          c.close();
          return;
        }
        c.enqueue(pw.Table.fromIPCStream(arrow.tableToIPC(new arrow.Table([b]), 'stream')).recordBatch(0));
      },
    });
    const bytes = await pw.transformParquetStream(stream, props);
    await bytes.pipeTo(Writable.toWeb(createWriteStream(file)));
    report({ seconds: now() - t0, bytes: statSync(file).size, rowGroups: Math.ceil(N / ROW_GROUP) });
  } else {
    const t0 = now();
    const pf = await pw.ParquetFile.fromFile(await openAsBlob(file));
    const groupsN = pf.metadata().numRowGroups();
    let checksum = 0,
      rows = 0;
    for (let g = 0; g < groupsN; g++) {
      const table = arrow.tableFromIPC((await pf.read({ rowGroups: [g] })).intoIPCStream());
      for (const batch of table.batches) {
        const values = batch.getChild('steps').data[0].children[0].children[0].values; // zero-copy Float64Array
        for (let i = 0; i < values.length; i++) checksum += values[i];
        const ids = batch.getChild('id'),
          grp = batch.getChild('group');
        for (let i = 0; i < batch.numRows; i++) {
          ids.get(i);
          grp.get(i);
        }
        rows += batch.numRows;
      }
    }
    report({ seconds: now() - t0, rows, rowGroups: groupsN, checksum });
  }
}

async function hyparquet() {
  if (op === 'write') {
    const { parquetWriteFile } = await import('hyparquet-writer');
    const { steps, ids, groups } = makeInputs(N);
    const t0 = now();
    // hyparquet-writer takes nested lists as JS arrays of arrays: that conversion is part of its cost.
    const nested = new Array(N);
    for (let i = 0; i < N; i++) {
      const rec = new Array(T);
      for (let s = 0; s < T; s++) rec[s] = Array.from(steps.subarray((i * T + s) * M, (i * T + s + 1) * M));
      nested[i] = rec;
    }
    parquetWriteFile({
      filename: file,
      columnData: [
        { name: 'id', data: ids },
        { name: 'group', data: groups },
        { name: 'steps', data: nested },
      ],
      schema: [
        { name: 'root', num_children: 3 },
        { name: 'id', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'REQUIRED' },
        { name: 'group', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'REQUIRED' },
        { name: 'steps', repetition_type: 'REQUIRED', converted_type: 'LIST', num_children: 1 },
        { name: 'list', repetition_type: 'REPEATED', num_children: 1 },
        { name: 'element', repetition_type: 'REQUIRED', converted_type: 'LIST', num_children: 1 },
        { name: 'list', repetition_type: 'REPEATED', num_children: 1 },
        { name: 'element', type: 'DOUBLE', repetition_type: 'REQUIRED' },
      ],
      rowGroupSize: ROW_GROUP,
    });
    report({ seconds: now() - t0, bytes: statSync(file).size, rowGroups: Math.ceil(N / ROW_GROUP) });
  } else {
    const { parquetMetadataAsync, parquetRead, asyncBufferFromFile } = await import('hyparquet');
    const t0 = now();
    const buf = await asyncBufferFromFile(file);
    const meta = await parquetMetadataAsync(buf);
    let checksum = 0,
      rows = 0,
      start = 0;
    for (const rg of meta.row_groups) {
      const count = Number(rg.num_rows);
      await parquetRead({
        file: buf,
        metadata: meta,
        rowStart: start,
        rowEnd: start + count,
        onComplete: (data) => {
          // Rows of [id, group, steps]; steps into one Float64Array per row group, as the scorer needs.
          const out = new Float64Array(count * T * M);
          let k = 0;
          for (const row of data) for (const step of row[2]) for (const x of step) out[k++] = x;
          for (let i = 0; i < out.length; i++) checksum += out[i];
          rows += data.length;
        },
      });
      start += count;
    }
    report({ seconds: now() - t0, rows, rowGroups: meta.row_groups.length, checksum });
  }
}

async function duckdb() {
  const d = await import('@duckdb/node-api');
  const instance = await d.DuckDBInstance.create(':memory:');
  const conn = await instance.connect();
  if (op === 'write') {
    const { steps, ids, groups } = makeInputs(N);
    const t0 = now();
    await conn.run(`CREATE TABLE t (id VARCHAR, "group" VARCHAR, steps DOUBLE[${M}][${T}])`);
    const appender = await conn.createAppender('t');
    const stepType = d.ARRAY(d.ARRAY(d.DOUBLE, M), T);
    for (let i = 0; i < N; i++) {
      appender.appendVarchar(ids[i]);
      appender.appendVarchar(groups[i]);
      const rec = new Array(T);
      for (let s = 0; s < T; s++) rec[s] = d.arrayValue(Array.from(steps.subarray((i * T + s) * M, (i * T + s + 1) * M)));
      appender.appendArray(rec, stepType);
      appender.endRow();
    }
    appender.closeSync();
    await conn.run(`COPY t TO '${file}' (FORMAT parquet, ROW_GROUP_SIZE ${ROW_GROUP})`);
    report({ seconds: now() - t0, bytes: statSync(file).size, rowGroups: Math.ceil(N / ROW_GROUP) });
  } else {
    const t0 = now();
    const result = await conn.stream(`SELECT id, "group", steps FROM read_parquet('${file}')`);
    let checksum = 0,
      rows = 0;
    for (;;) {
      const chunk = await result.fetchChunk();
      if (!chunk || chunk.rowCount === 0) break;
      const n = chunk.rowCount;
      const idv = chunk.getColumnVector(0),
        gv = chunk.getColumnVector(1),
        sv = chunk.getColumnVector(2);
      const out = new Float64Array(n * T * M);
      let k = 0;
      for (let i = 0; i < n; i++) {
        idv.getItem(i);
        gv.getItem(i);
        for (const step of sv.getItem(i).items) for (const x of step.items) out[k++] = x;
      }
      for (let i = 0; i < out.length; i++) checksum += out[i];
      rows += n;
    }
    report({ seconds: now() - t0, rows, checksum });
  }
  conn.closeSync();
}

if (!file || !['write', 'read'].includes(op)) {
  process.stderr.write('usage: node bench/parquet-libraries.mjs parquet-wasm|hyparquet|duckdb write|read FILE [N]\n');
  process.exit(2);
}
const run = { 'parquet-wasm': parquetWasm, hyparquet, duckdb }[lib];
if (!run) {
  process.stderr.write(`unknown library ${lib}\n`);
  process.exit(2);
}
await run();
