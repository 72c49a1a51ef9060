/**
 * The table of bad columnar inputs (issue 12), the counterpart of test/bad-inputs/ for JSONL:
 * each case is an Arrow table built here, written as an Arrow IPC file (apache-arrow) and as a
 * Parquet file (parquet-wasm), and run through the built CLI as a user runs it. Every run must
 * exit 2, name the row and the column, print no stack trace, write nothing to stdout and leave
 * no --out file. A case with a JSONL twin (the same records as JSON lines) must print exactly the
 * JSONL path's message, with "line N" read as "row N" and "field" as "column".
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as arrow from 'apache-arrow';
import { beforeAll, describe, expect, it } from 'vitest';
import { CLI, ROOT } from './helpers/cli.js';

const { Field, Float64, Float32, Int64, List, Utf8, FixedSizeList, makeData, RecordBatch, Table } = arrow;

type Rows = (unknown[] | null)[];
const f64 = () => new Float64();
const listOf = (t: arrow.DataType, nullable = false) => new List(new Field('item', t, nullable));

/** An Arrow column from JS values (nulls where given), through apache-arrow's builders. */
const column = (type: arrow.DataType, values: unknown[]) => arrow.vectorFromArray(values as never[], type as never).data[0];

interface Case {
  name: string;
  columns: Record<string, arrow.Data>;
  /** Substrings every run's stderr must contain. */
  stderr: string[];
  /** The same records as JSONL lines, when JSONL can express the problem. */
  jsonl?: unknown[];
}

const STEPS = [
  [0.1, 0.2, 0.3],
  [0.4, 0.5, 0.6],
];
const ids = (n: number) =>
  column(
    new Utf8(),
    Array.from({ length: n }, (_, i) => `r${i + 1}`),
  );
const matrix = (rows: Rows, valueNullable = false) => column(listOf(listOf(f64(), valueNullable), true), rows);

const CASES: Case[] = [
  {
    name: 'steps of the wrong type (strings)',
    columns: {
      id: ids(1),
      steps: column(listOf(listOf(new Utf8())), [
        [
          ['a', 'b'],
          ['c', 'd'],
        ],
      ]),
    },
    stderr: ['column "steps" has type List<List<Utf8>>', 'a list of lists of numbers per row (any integer or float type'],
  },
  {
    name: 'id of the wrong type (float64)',
    columns: { id: column(f64(), [1.5]), steps: matrix([STEPS]) },
    stderr: ['column "id" has type Float64', 'strings or integers'],
  },
  {
    name: 'missing steps column',
    columns: { id: ids(1), group: column(new Utf8(), ['g']) },
    stderr: ['column "steps" is missing', "the file's columns: id, group"],
  },
  {
    name: 'expected without realized',
    columns: { id: ids(1), steps: matrix([STEPS]), expected: column(listOf(f64()), [[0.1, 0.2]]) },
    stderr: ['column "expected" is given without a "realized" column'],
  },
  {
    name: 'unknown column (a misspelt embeddings)',
    columns: { id: ids(1), steps: matrix([STEPS]), embedings: matrix([STEPS]) },
    stderr: ['column "embedings" is not a known column'],
  },
  {
    name: 'a null steps row',
    columns: { id: ids(3), steps: matrix([STEPS, null, STEPS]) },
    stderr: ['row 2, id "r2", column "steps": is required'],
    jsonl: [{ id: 'r1', steps: STEPS }, { id: 'r2' }, { id: 'r3', steps: STEPS }],
  },
  {
    name: 'a null value inside steps',
    columns: {
      id: ids(2),
      steps: matrix(
        [
          STEPS,
          [
            [0.1, null, 0.3],
            [0.4, 0.5, 0.6],
          ],
        ],
        true,
      ),
    },
    stderr: ['row 2, id "r2", column "steps[0][1]": null is not a finite number'],
    jsonl: [
      { id: 'r1', steps: STEPS },
      {
        id: 'r2',
        steps: [
          [0.1, null, 0.3],
          [0.4, 0.5, 0.6],
        ],
      },
    ],
  },
  {
    name: 'ragged steps',
    columns: {
      id: ids(2),
      steps: matrix([
        [
          [0.1, 0.2, 0.3],
          [0.4, 0.5],
        ],
        STEPS,
      ]),
    },
    stderr: ['row 1, id "r1", column "steps": ragged rows: row 1 has 2 entries, row 0 has 3'],
    jsonl: [
      {
        id: 'r1',
        steps: [
          [0.1, 0.2, 0.3],
          [0.4, 0.5],
        ],
      },
      { id: 'r2', steps: STEPS },
    ],
  },
  {
    name: 'a step value outside [0, 1], and NaN in another row',
    columns: {
      id: ids(3),
      steps: matrix([
        STEPS,
        [
          [0.1, 0.2, 0.3],
          [0.4, 1.5, 0.6],
        ],
        [
          [0.1, NaN, 0.3],
          [0.4, 0.5, 0.6],
        ],
      ]),
    },
    stderr: [
      '2 invalid rows; nothing was written',
      'row 2, id "r2", column "steps[1][1]": 1.5 is outside [0, 1]',
      'row 3, id "r3", column "steps[0][1]": NaN is not a finite number',
    ],
    jsonl: [
      { id: 'r1', steps: STEPS },
      {
        id: 'r2',
        steps: [
          [0.1, 0.2, 0.3],
          [0.4, 1.5, 0.6],
        ],
      },
      {
        id: 'r3',
        steps: [
          [0.1, 'NaN', 0.3],
          [0.4, 0.5, 0.6],
        ],
      },
    ],
  },
  {
    name: 'embeddings with fewer rows than steps',
    columns: { id: ids(1), steps: matrix([STEPS]), embeddings: matrix([[[1, 0]]]) },
    stderr: ['row 1, id "r1", column "embeddings": has 1 row, expected 2 (one per step)'],
    jsonl: [{ id: 'r1', steps: STEPS, embeddings: [[1, 0]] }],
  },
  {
    name: 'a null id',
    columns: { id: column(new Utf8(), ['a', null]), steps: matrix([STEPS, STEPS]) },
    stderr: ['row 2, column "id": must be a string or number, got null'],
    jsonl: [
      { id: 'a', steps: STEPS },
      { id: null, steps: STEPS },
    ],
  },
  {
    name: 'an int64 id beyond 2^53',
    columns: { id: makeData({ type: new Int64(), length: 1, data: BigInt64Array.from([9007199254740993n]) }), steps: matrix([STEPS]) },
    // The exact digits (as a float64 the id would read 9007199254740992).
    stderr: ['row 1, column "id": 9007199254740993 cannot be kept exactly', 'store it as a string'],
  },
  {
    name: 'a single step (T < 2) in fixed-size float32 lists',
    columns: {
      id: ids(1),
      steps: makeData({
        type: new FixedSizeList(1, new Field('item', new FixedSizeList(3, new Field('item', new Float32(), false)), false)),
        length: 1,
        child: makeData({
          type: new FixedSizeList(3, new Field('item', new Float32(), false)),
          length: 1,
          child: makeData({ type: new Float32(), length: 3, data: Float32Array.from([0.1, 0.2, 0.3]) }),
        }),
      }),
    },
    stderr: ['row 1, id "r1", column "steps": needs at least 2 steps, got 1'],
    jsonl: [{ id: 'r1', steps: [[0.1, 0.2, 0.3]] }],
  },
];

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runScore(args: string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, 'score', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '',
      stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** Runs every job, two at a time (the CI machine has two cores). */
async function pool<T>(jobs: (() => Promise<T>)[]): Promise<T[]> {
  const out: T[] = new Array(jobs.length);
  let next = 0;
  await Promise.all(
    [0, 1].map(async () => {
      while (next < jobs.length) {
        const k = next++;
        out[k] = await jobs[k]();
      }
    }),
  );
  return out;
}

const dir = mkdtempSync(path.join(os.tmpdir(), 'ecr-columnar-bad-'));
const runs = new Map<string, Run>();

beforeAll(async () => {
  const pw = await import('parquet-wasm/node');
  const jobs: (() => Promise<void>)[] = [];
  CASES.forEach((c, k) => {
    const n = Object.values(c.columns)[0].length;
    const fields = Object.entries(c.columns).map(([name, d]) => new Field(name, d.type, true));
    const batch = new RecordBatch(
      new arrow.Schema(fields),
      makeData({ type: new arrow.Struct(fields), length: n, nullCount: 0, children: Object.values(c.columns) }),
    );
    const ipc = arrow.tableToIPC(new Table([batch]), 'file');
    writeFileSync(path.join(dir, `${k}.arrow`), ipc);
    writeFileSync(path.join(dir, `${k}.parquet`), pw.writeParquet(pw.Table.fromIPCStream(arrow.tableToIPC(new Table([batch]), 'stream'))));
    const backends = k === 0 ? ['cpu', 'cpu-reference', 'webgpu'] : ['cpu'];
    for (const ext of ['arrow', 'parquet']) {
      for (const b of backends) {
        jobs.push(async () => {
          runs.set(
            `${k}.${ext}.${b}`,
            await runScore([path.join(dir, `${k}.${ext}`), '--backend', b, '--out', path.join(dir, `${k}.${ext}.${b}.out.parquet`)]),
          );
        });
      }
    }
    if (c.jsonl) {
      // 'NaN' stands for a bare NaN token, which JSON.stringify cannot write.
      writeFileSync(path.join(dir, `${k}.jsonl`), c.jsonl.map((r) => JSON.stringify(r).replace(/"NaN"/g, 'NaN')).join('\n') + '\n');
      jobs.push(async () => {
        runs.set(`${k}.jsonl`, await runScore([path.join(dir, `${k}.jsonl`), '--backend', 'cpu']));
      });
    }
  });
  await pool(jobs);
}, 120_000);

describe.each(CASES.map((c, k) => [c.name, c, k] as const))('bad columnar input: %s', (_name, c, k) => {
  it.each(['arrow', 'parquet'])('as %s: exit 2, row and column named, no stack, nothing written', (ext) => {
    for (const [key, r] of runs) {
      if (!key.startsWith(`${k}.${ext}.`)) continue;
      expect(r.code, key).toBe(2);
      for (const s of c.stderr) expect(r.stderr, key).toContain(s);
      expect(r.stderr, key).not.toMatch(/^\s+at /m);
      expect(r.stdout, key).toBe('');
      expect(existsSync(path.join(dir, `${key}.out.parquet`)), key).toBe(false);
    }
    expect([...runs.keys()].some((key) => key.startsWith(`${k}.${ext}.`))).toBe(true);
  });

  if (c.jsonl) {
    it.each(['arrow', 'parquet'])("as %s: the JSONL path's own message, line for row", (ext) => {
      const j = runs.get(`${k}.jsonl`)!;
      expect(j.code).toBe(2);
      const asRows = j.stderr
        .replace(/\bline (\d+)/g, 'row $1')
        .replace(/\binvalid lines?\b/g, (w) => w.replace('line', 'row'))
        .replace(/field "/g, 'column "');
      expect(runs.get(`${k}.${ext}.cpu`)!.stderr).toBe(asRows);
    });
  }
});
