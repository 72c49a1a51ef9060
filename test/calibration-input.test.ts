/**
 * The input of `ecr calibrate` and `ecr maturity` is streamed (issue 19): JSONL a line at a
 * time, Parquet and Arrow a record batch at a time through `ecr score`'s columnar reader, raw
 * trajectories scored a window at a time. The results are those of scoring the whole input at
 * once, a scoring failure is still reported only after every record was checked, and the
 * provenance's sha256 is that of the input's bytes, from a file or from stdin.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { beforeAll, describe, expect, it } from 'vitest';
import { toResolvedConfig } from '../src/core/config.js';
import { readCalibrationSet } from '../src/calibration/labelled-input.js';
import { scoreRecords } from '../src/engine/score-records.js';
import { CLI, ROOT, runCli } from './helpers/cli.js';

const DATA = path.join(ROOT, 'data', 'calibration-synthetic.jsonl');
let dir: string;
/** More trajectories than one scoring window (8192). */
const COUNT = 8300;

function trajectory(i: number): { group: string; steps: number[][]; correct: boolean } {
  const v = (k: number, j: number) => ((i * 13 + k * 7 + j * 3) % 17) / 17;
  return {
    group: `q${Math.floor(i / 4)}`,
    steps: [
      [v(0, 0), v(0, 1)],
      [v(1, 0), v(1, 1)],
      [v(2, 0), v(2, 1)],
    ],
    correct: i % 3 !== 0,
  };
}

const lines = Array.from({ length: COUNT }, (_, i) => JSON.stringify(trajectory(i)));

beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'ecr-cal-input-'));
});

describe('readCalibrationSet over more than one scoring window', () => {
  it('gives every trajectory the metrics of scoring the whole input at once, and the sha256 of the file', async () => {
    const file = path.join(dir, 'many.jsonl');
    writeFileSync(file, `${lines.join('\n')}\n`);
    const config = toResolvedConfig({});
    const set = await readCalibrationSet(file, { config, backend: 'cpu-reference' });
    expect(set.records).toHaveLength(COUNT);
    expect(set.sha256).toBe(createHash('sha256').update(readFileSync(file)).digest('hex'));
    const whole = await scoreRecords(
      Array.from({ length: COUNT }, (_, i) => {
        const { correct: _c, ...t } = trajectory(i);
        return t;
      }),
      config,
      { backend: 'cpu-reference' },
    );
    for (const i of [0, 1, 8191, 8192, 8193, COUNT - 1]) {
      const r = whole.results[i];
      expect(set.records[i].metrics, `record ${i}`).toEqual([r.EVB, r.CR, r.TS, r.ES, r.PD]);
    }
  });

  it('reports an invalid line after the first window before a configuration that does not fit', async () => {
    const tight = toResolvedConfig({ confIndex: 2 });
    const clean = path.join(dir, 'tight.jsonl');
    writeFileSync(clean, `${lines.join('\n')}\n`);
    // As when every trajectory was scored at the end of the input: named by index, its id that index.
    await expect(readCalibrationSet(clean, { config: tight, backend: 'cpu-reference' })).rejects.toThrow(
      'record 0, id "0", field "steps": 2 components per step do not fit the configuration: config "confIndex": is 2 but the trajectories have only m = 2 components',
    );
    const bad = path.join(dir, 'tight-bad.jsonl');
    writeFileSync(bad, `${lines.join('\n')}\n{"steps": [[0.5, 2], [0.5, 0.5]]}\n`);
    await expect(readCalibrationSet(bad, { config: tight, backend: 'cpu-reference' })).rejects.toThrow(
      'line 8301, id "8301", field "steps[0][1]": 2 is outside [0, 1]',
    );
  });
});

describe('ecr calibrate from stdin', () => {
  it.each(['parquet', 'arrow'])('reads %s from stdin as from the file, with the same sha256', (format) => {
    const file = path.join(dir, `data.${format}`);
    expect(runCli(['convert', DATA, file]).code).toBe(0);
    const args = ['--bootstrap', '50', '--backend', 'cpu'];
    const fromFile = runCli(['calibrate', file, ...args, '--out', path.join(dir, `file-${format}.json`)]);
    expect(fromFile.code, fromFile.stderr).toBe(0);
    const fromStdin = spawnSync(process.execPath, [CLI, 'calibrate', '-', '--format', format, ...args, '--out', path.join(dir, `stdin-${format}.json`)], {
      input: readFileSync(file),
      cwd: ROOT,
      encoding: 'utf8',
    });
    expect(fromStdin.stderr).toBe('');
    expect(fromStdin.status).toBe(0);
    expect(fromStdin.stdout).toBe(fromFile.stdout);
    const sha = (name: string) => (JSON.parse(readFileSync(path.join(dir, name), 'utf8')) as { provenance: { sha256: string } }).provenance.sha256;
    expect(sha(`stdin-${format}.json`)).toBe(sha(`file-${format}.json`));
    expect(sha(`stdin-${format}.json`)).toBe(createHash('sha256').update(readFileSync(file)).digest('hex'));
  });
});
