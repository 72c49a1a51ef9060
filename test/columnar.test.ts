/**
 * Parquet and Arrow IPC in and out (issue 12): every fixture through every format gives the
 * JSONL path's result lines byte for byte; files written by another implementation (DuckDB, and
 * apache-arrow's fixed-size float32 lists) score the same; results files read back hold the same
 * values; selection spans record batches. `ecr score` and `ecr convert` run in-process here (the
 * same main() the CLI calls); exit codes and messages of bad files are in columnar-bad-inputs.test.ts.
 */
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as arrow from 'apache-arrow';
import { describe, expect, it } from 'vitest';
import { main as convert } from '../src/cli/convert.js';
import { main as score } from '../src/cli/score.js';
import { FIXTURE_DIR, LARGE_SHAPE_FIXTURE_DIR } from './helpers/fixtures.js';

const tmp = () => mkdtempSync(path.join(os.tmpdir(), 'ecr-columnar-'));

function fixturesIn(dir: string): { name: string; input: string; config: string }[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.input.jsonl'))
    .sort()
    .map((f) => {
      const name = f.replace(/\.input\.jsonl$/, '');
      return { name, input: path.join(dir, f), config: path.join(dir, `${name}.config.json`) };
    });
}
const FIXTURES = [...fixturesIn(FIXTURE_DIR), ...fixturesIn(LARGE_SHAPE_FIXTURE_DIR)];

async function scoreTo(input: string, out: string, config: string, extra: string[] = []): Promise<void> {
  expect(await score([input, '--backend', 'cpu', '--config', config, '--out', out, ...extra])).toBe(0);
}

/** A results file (Parquet or Arrow) as the rows of its table, numbers as JS numbers. */
async function readResults(file: string): Promise<Record<string, unknown>[]> {
  const bytes = readFileSync(file);
  let table: arrow.Table;
  if (file.endsWith('.parquet')) {
    const pw = await import('parquet-wasm/node');
    table = arrow.tableFromIPC(pw.readParquet(bytes).intoIPCStream());
  } else {
    table = arrow.tableFromIPC(bytes);
  }
  return table.toArray().map((row) => {
    const o = row.toJSON() as Record<string, unknown>;
    for (const k of Object.keys(o)) if (typeof o[k] === 'bigint') o[k] = Number(o[k]);
    return o;
  });
}

const jsonLines = (file: string) =>
  readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);

describe('every fixture through every format', () => {
  it('has the eleven fixtures', () => expect(FIXTURES).toHaveLength(11));

  it.each(FIXTURES.map((f) => [f.name, f] as const))('%s: JSONL -> Parquet -> Arrow -> JSONL, each scored', async (_name, fx) => {
    const dir = tmp();
    const pq = path.join(dir, 'in.parquet'),
      ar = path.join(dir, 'in.arrow'),
      back = path.join(dir, 'back.jsonl');
    expect(await convert([fx.input, pq])).toBe(0);
    expect(await convert([pq, ar])).toBe(0);
    expect(await convert([ar, back])).toBe(0);
    const ref = path.join(dir, 'ref.jsonl');
    await scoreTo(fx.input, ref, fx.config);
    const expected = readFileSync(ref, 'utf8');
    expect(expected.length).toBeGreaterThan(0);
    for (const input of [pq, ar, back]) {
      const out = path.join(dir, `from-${path.basename(input)}.jsonl`);
      await scoreTo(input, out, fx.config);
      expect(readFileSync(out, 'utf8'), input).toBe(expected);
    }
    // Columnar results files hold the same values as the JSONL result lines.
    const refRows = jsonLines(ref);
    for (const [input, out] of [
      [pq, 'res.arrow'],
      [ar, 'res.parquet'],
      [fx.input, 'res2.parquet'],
    ] as const) {
      await scoreTo(input, path.join(dir, out), fx.config);
      expect(await readResults(path.join(dir, out)), `${input} -> ${out}`).toEqual(refRows);
    }
  });
});

describe('files written by other implementations', () => {
  const fx = FIXTURES.find((f) => f.name === 'embeddings-policy')!;
  const records = jsonLines(fx.input) as {
    id: string;
    group: string;
    steps: number[][];
    embeddings?: number[][];
    policy?: number[][];
    expected?: number[];
    realized?: number[];
    baseScore?: number;
  }[];

  it('a Parquet file written by DuckDB from the fixture scores as the JSONL does, and DuckDB reads the results back', async () => {
    const { DuckDBInstance } = await import('@duckdb/node-api');
    const dir = tmp();
    const db = await DuckDBInstance.create(':memory:');
    const conn = await db.connect();
    // Numbers as exponent literals (DOUBLE in DuckDB's SQL, written with every digit needed to round-trip).
    const num = (x: number) => x.toExponential();
    const mat = (m?: number[][]) => (m ? `[${m.map((r) => `[${r.map(num).join(', ')}]`).join(', ')}]` : 'NULL');
    const vec = (v?: number[]) => (v ? `[${v.map(num).join(', ')}]` : 'NULL');
    const hasRewards = records.some((r) => r.expected);
    await conn.run(
      `CREATE TABLE t (id VARCHAR, "group" VARCHAR, steps DOUBLE[][], embeddings DOUBLE[][], policy DOUBLE[][]${hasRewards ? ', expected DOUBLE[], realized DOUBLE[]' : ''}, "baseScore" DOUBLE)`,
    );
    const values = records.map(
      (r) =>
        `('${r.id}', '${r.group}', ${mat(r.steps)}, ${mat(r.embeddings)}, ${mat(r.policy)}${hasRewards ? `, ${vec(r.expected)}, ${vec(r.realized)}` : ''}, ${r.baseScore === undefined ? 'NULL' : num(r.baseScore)})`,
    );
    await conn.run(`INSERT INTO t VALUES ${values.join(',\n')}`);
    const duck = path.join(dir, 'duckdb.parquet');
    await conn.run(`COPY t TO '${duck}' (FORMAT parquet)`);
    const ref = path.join(dir, 'ref.jsonl'),
      out = path.join(dir, 'out.jsonl');
    await scoreTo(fx.input, ref, fx.config);
    await scoreTo(duck, out, fx.config);
    expect(readFileSync(out, 'utf8')).toBe(readFileSync(ref, 'utf8'));

    const res = path.join(dir, 'res.parquet');
    await scoreTo(duck, res, fx.config);
    const reader = await conn.runAndReadAll(
      `SELECT count(*)::INTEGER AS n, sum(CCI) AS s, count(*) FILTER (WHERE selected)::INTEGER AS sel FROM read_parquet('${res}')`,
    );
    const [n, s, sel] = reader.getRows()[0] as [number, number, number];
    const refRows = jsonLines(ref);
    expect(n).toBe(refRows.length);
    expect(s).toBeCloseTo(
      refRows.reduce((a, r) => a + (r.CCI as number), 0),
      12,
    );
    expect(sel).toBe(refRows.filter((r) => r.selected).length);
    conn.closeSync();
  });

  it('fixed-size float32 lists (as numpy and Hugging Face write them) score as the same values in JSONL', async () => {
    const dir = tmp();
    const t = records[0].steps.length,
      m = records[0].steps[0].length;
    const n = records.length;
    const values = new Float32Array(n * t * m);
    records.forEach((r, i) => r.steps.forEach((row, s) => values.set(row, (i * t + s) * m)));
    const inner = new arrow.FixedSizeList(m, new arrow.Field('item', new arrow.Float32(), false));
    const outer = new arrow.FixedSizeList(t, new arrow.Field('item', inner, false));
    const steps = arrow.makeData({
      type: outer,
      length: n,
      child: arrow.makeData({ type: inner, length: n * t, child: arrow.makeData({ type: new arrow.Float32(), length: values.length, data: values }) }),
    });
    const batch = new arrow.RecordBatch({
      id: arrow.vectorFromArray(
        records.map((r) => r.id),
        new arrow.Utf8(),
      ).data[0],
      group: arrow.vectorFromArray(
        records.map((r) => r.group),
        new arrow.Utf8(),
      ).data[0],
      steps,
    });
    const file = path.join(dir, 'f32.arrow');
    writeFileSync(file, arrow.tableToIPC(new arrow.Table([batch]), 'file'));
    const jsonl = path.join(dir, 'f32.jsonl');
    writeFileSync(jsonl, records.map((r) => JSON.stringify({ id: r.id, group: r.group, steps: r.steps.map((row) => row.map(Math.fround)) })).join('\n') + '\n');
    const config = path.join(dir, 'config.json');
    writeFileSync(config, '{}');
    const a = path.join(dir, 'a.jsonl'),
      b = path.join(dir, 'b.jsonl');
    await scoreTo(file, a, config);
    await scoreTo(jsonl, b, config);
    expect(readFileSync(a, 'utf8')).toBe(readFileSync(b, 'utf8'));
    // Converting keeps the file's own types (the float32 fixed-size lists).
    const pq = path.join(dir, 'f32.parquet');
    expect(await convert([file, pq])).toBe(0);
    const pw = await import('parquet-wasm/node');
    const back = arrow.tableFromIPC(pw.readParquet(readFileSync(pq)).intoIPCStream());
    expect(String(back.schema.fields.find((f) => f.name === 'steps')!.type)).toBe(String(outer));
  });
});

describe('selection and streaming across record batches', () => {
  it('a group split over many batches selects as the JSONL path does; Arrow IPC stream from stdin-like input works', async () => {
    const dir = tmp();
    // 40 records in 5 groups, round robin, so every group spans batches of 3 (convert --window 3).
    const lines: string[] = [];
    let seed = 7;
    const rand = () => (seed = (seed * 16807) % 2147483647) / 2147483647;
    for (let i = 0; i < 40; i++) {
      const steps = Array.from({ length: 4 }, () => Array.from({ length: 3 }, () => Number(rand().toFixed(3))));
      lines.push(JSON.stringify({ id: `r${i}`, group: `g${i % 5}`, steps, ...(i % 7 === 0 ? { baseScore: i } : {}) }));
    }
    const jsonl = path.join(dir, 'in.jsonl');
    writeFileSync(jsonl, lines.join('\n') + '\n');
    const config = path.join(dir, 'c.json');
    writeFileSync(config, '{"tau": 0.5}');
    const arrows = path.join(dir, 'in.arrows');
    expect(await convert([jsonl, arrows, '--window', '3'])).toBe(0);
    const table = arrow.tableFromIPC(readFileSync(arrows));
    expect(table.batches.length).toBe(14);
    const ref = path.join(dir, 'ref.jsonl'),
      out = path.join(dir, 'out.jsonl');
    await scoreTo(jsonl, ref, config);
    await scoreTo(arrows, out, config);
    expect(readFileSync(out, 'utf8')).toBe(readFileSync(ref, 'utf8'));
    // JSONL in, columnar out (the JSONL reader feeding the columnar writer), windows of 3 records.
    const res = path.join(dir, 'res.arrow');
    await scoreTo(jsonl, res, config, ['--window', '3']);
    expect(await readResults(res)).toEqual(jsonLines(ref));
    expect(jsonLines(ref).filter((r) => r.selected)).toHaveLength(5);
  });

  it('an Arrow IPC file of more batches than the read ring holds, with string and dictionary groups, scores as its JSONL', async () => {
    const dir = tmp();
    const lines: string[] = [];
    let seed = 11;
    const rand = () => (seed = (seed * 16807) % 2147483647) / 2147483647;
    for (let i = 0; i < 60; i++) {
      const steps = Array.from({ length: 3 }, () => Array.from({ length: 4 }, () => Number(rand().toFixed(3))));
      lines.push(JSON.stringify({ id: `id-${i}`, group: `g${i % 6}`, steps }));
    }
    const jsonl = path.join(dir, 'in.jsonl');
    writeFileSync(jsonl, lines.join('\n') + '\n');
    const config = path.join(dir, 'c.json');
    writeFileSync(config, '{"tau": 0.4}');
    const ref = path.join(dir, 'ref.jsonl');
    await scoreTo(jsonl, ref, config);
    // The file format (read batch by batch into reused buffers), batches of 4: 15 batches.
    const file = path.join(dir, 'in.arrow');
    expect(await convert([jsonl, file, '--window', '4'])).toBe(0);
    expect(arrow.tableFromIPC(readFileSync(file)).batches.length).toBe(15);
    // The same rows with the group dictionary-encoded (its dictionary batch precedes the records).
    const plain = arrow.tableFromIPC(readFileSync(file));
    const groupType = new arrow.Dictionary(new arrow.Utf8(), new arrow.Int32());
    const names = ['g0', 'g1', 'g2', 'g3', 'g4', 'g5'];
    const dictionary = arrow.vectorFromArray(names, new arrow.Utf8());
    const fields = [plain.schema.fields[0], new arrow.Field('group', groupType, true), plain.schema.fields[2]];
    const dictSchema = new arrow.Schema(fields);
    const dictBatches = plain.batches.map((b) => {
      const keys = Int32Array.from(b.getChild('group')!.toArray() as string[], (g) => names.indexOf(g));
      const group = arrow.makeData({ type: groupType, length: b.numRows, nullCount: 0, data: keys, dictionary });
      return new arrow.RecordBatch(
        dictSchema,
        arrow.makeData({ type: new arrow.Struct(fields), length: b.numRows, nullCount: 0, children: [b.data.children[0], group, b.data.children[2]] }),
      );
    });
    const dictFile = path.join(dir, 'dict.arrow');
    writeFileSync(dictFile, arrow.tableToIPC(new arrow.Table(dictBatches), 'file'));
    for (const input of [file, dictFile]) {
      const out = path.join(dir, 'out.jsonl'),
        res = path.join(dir, 'res.arrow');
      await scoreTo(input, out, config);
      expect(readFileSync(out, 'utf8'), input).toBe(readFileSync(ref, 'utf8'));
      // Columnar output holds every batch's ids and groups until the end: they must not be views of reused memory.
      await scoreTo(input, res, config);
      const rows = await readResults(res);
      expect(
        rows.map((r) => [r.id, String(r.group)]),
        input,
      ).toEqual(jsonLines(ref).map((r) => [r.id, r.group]));
      expect(rows.map((r) => r.CCI)).toEqual(jsonLines(ref).map((r) => r.CCI));
    }
  });
});

describe('columnar inputs on the command line', () => {
  it('Arrow IPC stream on stdin with --format arrow; Parquet on stdin is refused (exit 2); an empty input writes an empty columnar file', async () => {
    const { runCli } = await import('./helpers/cli.js');
    const dir = tmp();
    const fx = FIXTURES.find((f) => f.name === 'paper-worked-example')!;
    const arrows = path.join(dir, 'x.arrows'),
      pq = path.join(dir, 'x.parquet');
    expect(await convert([fx.input, arrows])).toBe(0);
    expect(await convert([fx.input, pq])).toBe(0);
    const ref = runCli(['score', fx.input, '--backend', 'cpu', '--config', fx.config]);
    expect(ref.code).toBe(0);
    const { spawnSync } = await import('node:child_process');
    const { CLI, ROOT } = await import('./helpers/cli.js');
    const run = spawnSync(process.execPath, [CLI, 'score', '-', '--format', 'arrow', '--backend', 'cpu', '--config', fx.config], {
      input: readFileSync(arrows),
      cwd: ROOT,
      encoding: 'utf8',
    });
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout).toBe(ref.stdout);

    const refused = spawnSync(process.execPath, [CLI, 'score', '-', '--format', 'parquet'], { input: readFileSync(pq), cwd: ROOT, encoding: 'utf8' });
    expect(refused.status).toBe(2);
    expect(refused.stderr).toContain('stdin: Parquet is read from its footer, so it needs a regular file');

    const badFormat = runCli(['score', fx.input, '--format', 'csv']);
    expect(badFormat.code).toBe(2);
    expect(badFormat.stderr).toContain('--format must be one of jsonl, parquet, arrow, got "csv"');

    const empty = path.join(dir, 'empty.jsonl');
    writeFileSync(empty, '\n');
    for (const out of ['empty.parquet', 'empty.arrow']) {
      const r = runCli(['score', empty, '--backend', 'cpu', '--out', path.join(dir, out)]);
      expect(r.code).toBe(0);
      expect(r.stderr).toContain('warning: no records');
      expect(await readResults(path.join(dir, out))).toEqual([]);
    }
  });
});
