/**
 * `ecr calibrate` and `ecr maturity` read Parquet and Arrow as they read JSONL: the shipped
 * labelled data converted by `ecr convert` (labels and dialogue keys in `meta` as JSON text),
 * scored results written by `ecr score --out x.parquet`, and an Arrow file with the label as its
 * own boolean column give the same numbers; bad rows name the row and column.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { tableFromArrays, tableToIPC, vectorFromArray, Bool, Utf8, Float64, List, Field, Table } from 'apache-arrow';
import { beforeAll, describe, expect, it } from 'vitest';
import { ROOT, runCli } from './helpers/cli.js';

const DATA = path.join(ROOT, 'data', 'calibration-synthetic.jsonl');
let dir: string;
const FAST = ['--bootstrap', '50', '--backend', 'cpu'];

beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'ecr-cal-columnar-'));
  for (const ext of ['parquet', 'arrow']) {
    const r = runCli(['convert', DATA, path.join(dir, `data.${ext}`)]);
    expect(r.code, r.stderr).toBe(0);
  }
});

describe('ecr calibrate and ecr maturity on columnar inputs', () => {
  it('print the same calibration for the JSONL file and its Parquet and Arrow conversions', () => {
    const jsonl = runCli(['calibrate', DATA, ...FAST]);
    expect(jsonl.code, jsonl.stderr).toBe(0);
    expect(jsonl.stdout).toMatch(/^records 880, groups \d+, labelled 880$/m);
    for (const ext of ['parquet', 'arrow']) {
      const r = runCli(['calibrate', path.join(dir, `data.${ext}`), ...FAST]);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(r.stdout).toBe(jsonl.stdout);
    }
  });

  it('the maturity checks (M2 from the dialogue keys in meta) agree across formats', () => {
    const jsonl = runCli(['maturity', DATA, '--backend', 'cpu']);
    expect([0, 3]).toContain(jsonl.code);
    expect(jsonl.stdout).toMatch(/^M2\s+(PASS|FAIL)/m);
    for (const ext of ['parquet', 'arrow']) {
      const r = runCli(['maturity', path.join(dir, `data.${ext}`), '--backend', 'cpu']);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(jsonl.code);
      expect(r.stdout).toBe(jsonl.stdout);
    }
  });

  it('reads ecr score results written as Parquet (scored records), as the JSONL results', () => {
    const cfg = path.join(dir, 'cfg.json');
    writeFileSync(cfg, '{}');
    const outJsonl = path.join(dir, 'scored.jsonl'),
      outParquet = path.join(dir, 'scored.parquet');
    expect(runCli(['score', DATA, '--backend', 'cpu', '--out', outJsonl]).code).toBe(0);
    expect(runCli(['score', DATA, '--backend', 'cpu', '--out', outParquet]).code).toBe(0);
    const a = runCli(['calibrate', outJsonl, ...FAST, '--config', cfg]);
    const b = runCli(['calibrate', outParquet, ...FAST, '--config', cfg]);
    expect(a.code, a.stderr).toBe(0);
    expect(b.stderr).toBe('');
    expect(b.stdout).toBe(a.stdout);
    // Without labels: the admission part only.
    expect(b.stdout).toMatch(/^records 880, groups \d+, labelled 0$/m);
  });

  it('takes the label from its own boolean column and --format for a name without an extension', () => {
    const lines = readFileSync(DATA, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    const steps = new List(new Field('item', new List(new Field('item', new Float64(), false)), false));
    const table = new Table({
      id: vectorFromArray(
        lines.map((l) => l.id),
        new Utf8(),
      ),
      group: vectorFromArray(
        lines.map((l) => l.group),
        new Utf8(),
      ),
      steps: vectorFromArray(
        lines.map((l) => l.steps),
        steps,
      ),
      verdict: vectorFromArray(
        lines.map((l) => l.meta.correct),
        new Bool(),
      ),
    });
    const file = path.join(dir, 'labelled-no-extension');
    writeFileSync(file, tableToIPC(table, 'file'));
    const r = runCli(['calibrate', file, '--format', 'arrow', '--labels', 'verdict', ...FAST]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^records 880, groups \d+, labelled 880$/m);
    expect(r.stdout).toMatch(/AUROC \d\.\d{3}/);
  });

  it('names the row and column of a bad value', () => {
    const table = tableFromArrays({
      id: ['a', 'b', 'c'],
      group: ['g', 'g', 'g'],
      EVB: Float64Array.from([0.1, 0.2, 1.5]),
      CR: Float64Array.from([0, 0, 0]),
      TS: Float64Array.from([1, 1, 1]),
      ES: Float64Array.from([1, 1, 1]),
      PD: Float64Array.from([0, 0, 0]),
      CCI: Float64Array.from([0.98, 0.96, 0.9]),
    });
    const file = path.join(dir, 'bad.arrow');
    writeFileSync(file, tableToIPC(table, 'file'));
    const r = runCli(['calibrate', file, ...FAST]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('row 3, id "c", column "EVB": must be a number in [0, 1], got 1.5');
    expect(r.stderr).not.toMatch(/^\s+at /m);
    const notArrow = path.join(dir, 'not.arrow');
    writeFileSync(notArrow, 'not arrow at all');
    const n = runCli(['maturity', notArrow]);
    expect(n.code).toBe(2);
    expect(n.stderr).toMatch(/is not an Arrow IPC file or stream/);
  });
});
