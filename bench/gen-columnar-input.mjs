#!/usr/bin/env node
/**
 * Writes N synthetic records straight to Parquet or Arrow IPC (by the file's extension), in
 * batches of 65,536 rows, without going through JSONL.
 * --data bench (default): `ecr bench`'s generator (src/testing/synthetic-batch.ts: half stable, half
 *   drifting trajectories, groups of 8 consecutive candidates "g0", "g1", ...), one seed per
 *   batch, so a file-to-file run and `ecr bench` score data of one distribution (the kernels'
 *   cost depends on the data: on --data pool they run about half as fast).
 * --data pool: the records bench/gen-score-input.mjs prints as JSONL for the same N and --groups
 *   (same generator, same 4-decimal values).
 * --dtype float32 writes the steps as float32 (what the GPU path reads without conversion).
 * usage: npm run build && node bench/gen-columnar-input.mjs N FILE [--data bench|pool] [--dtype float64|float32] [--t 5] [--m 8] [--groups distinct|K|none]
 */
import { createWriteStream } from 'node:fs';
import { parseArgs } from 'node:util';
import { Field, FixedSizeList, Float32, Float64, RecordBatch, Schema, Struct, Utf8, makeData } from 'apache-arrow';
import { Sink } from '../dist/engine/io/sink.js';
import { utf8Data } from '../dist/engine/columnar/arrow-build.js';
import { arrowLayoutOf, formatOf } from '../dist/engine/columnar/format.js';
import { openWriter } from '../dist/engine/columnar/writers.js';
import { syntheticBatch } from '../dist/testing/synthetic-batch.js';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    t: { type: 'string', default: '5' },
    m: { type: 'string', default: '8' },
    groups: { type: 'string', default: 'distinct' },
    data: { type: 'string', default: 'bench' },
    dtype: { type: 'string', default: 'float64' },
  },
});
const n = Number(positionals[0]);
const file = positionals[1];
const t = Number(values.t),
  m = Number(values.m);
if (!Number.isInteger(n) || n < 1 || !file || !['bench', 'pool'].includes(values.data)) {
  process.stderr.write('usage: node bench/gen-columnar-input.mjs N FILE [--t 5] [--m 8] [--groups distinct|K]\n');
  process.exit(2);
}
let seed = 12345;
const rand = () => (seed = (seed * 1103515245 + 12345) >>> 0) / 4294967296;
// The same pool and draws as gen-score-input.mjs, so the values equal that script's JSONL.
const rows = Array.from({ length: 4096 }, () => Array.from({ length: m }, () => Number(rand().toFixed(4))));

const f32 = values.dtype === 'float32';
const inner = new FixedSizeList(m, new Field('item', f32 ? new Float32() : new Float64(), false));
const outer = new FixedSizeList(t, new Field('item', inner, false));
const fields = [
  new Field('id', new Utf8(), false),
  ...(values.groups === 'none' ? [] : [new Field('group', new Utf8(), true)]),
  new Field('steps', outer, false),
];
const schema = new Schema(fields);
const sink = new Sink(createWriteStream(file), file);
const writer = await openWriter(formatOf(file), arrowLayoutOf(file), sink, schema, () => {
  throw new Error('FILE must end in .parquet or .arrow');
});
const BATCH = 65536;
for (let start = 0; start < n; start += BATCH) {
  const count = Math.min(BATCH, n - start);
  let data = new Float64Array(count * t * m);
  const bench = values.data === 'bench' ? syntheticBatch({ n: count, t, m, seed: 12345 + start }) : null;
  if (bench) data = bench.steps;
  else for (let i = 0; i < count; i++) for (let s = 0; s < t; s++) data.set(rows[(rand() * rows.length) | 0], (i * t + s) * m);
  const ids = Array.from({ length: count }, (_, i) => `r${start + i}`);
  const groups = bench
    ? Array.from({ length: count }, (_, i) => `g${(start + i) >> 3}`)
    : values.groups === 'distinct'
      ? ids.map((_, i) => `g${start + i}`)
      : Array.from({ length: count }, (_, i) => `g${(start + i) % Number(values.groups)}`);
  const steps = makeData({
    type: outer,
    length: count,
    child: makeData({
      type: inner,
      length: count * t,
      child: makeData({ type: f32 ? new Float32() : new Float64(), length: data.length, data: f32 ? Float32Array.from(data) : data }),
    }),
  });
  const children = [utf8Data(ids), ...(values.groups === 'none' ? [] : [utf8Data(groups)]), steps];
  await writer.write(new RecordBatch(schema, makeData({ type: new Struct(fields), length: count, nullCount: 0, children })));
}
await writer.finish();
await sink.finish();
