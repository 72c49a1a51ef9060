/**
 * Rejections of bad input beyond the table in test/bad-inputs/: several invalid lines in one
 * run, an --out file left alone, bad arguments, and the library's typed errors.
 */
import { describe, expect, it } from 'vitest';
import { writeFileSync, mkdtempSync, existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runCli } from './helpers/cli.js';
import { scoreRecords } from '../src/engine/score-records.js';
import { scoreBatch } from '../src/engine/score-batch.js';
import { resolveConfig } from '../src/core/config.js';
import { ConfigError, InputError } from '../src/core/errors.js';

const good = '{"id":"ok","steps":[[0.1,0.2],[0.3,0.4]]}';
const tmp = mkdtempSync(path.join(os.tmpdir(), 'ecr-validation-'));

function scoreText(lines: string[]) {
  return runCli(['score', '-'], lines.join('\n') + '\n');
}

// The table of rejected records and configurations, run on every backend, is test/bad-inputs/
// (test/bad-inputs.test.ts); the tests here cover what a table row cannot express.
const nanLine = '{"id":"x","steps":[[0.1,NaN],[0.3,0.4]]}';
const outOfRangeLine = '{"id":"x","steps":[[0.1,1.5],[0.3,0.4]]}';

describe('ecr score rejects bad records with exit 2, naming line and field', () => {
  it('reports several invalid lines in one run', () => {
    const r = scoreText([good, nanLine, good, outOfRangeLine]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/2 invalid lines/);
    expect(r.stderr).toMatch(/line 2/);
    expect(r.stderr).toMatch(/line 4/);
  });

  it('leaves an existing --out file untouched when the input is bad', () => {
    const out = path.join(tmp, 'kept.jsonl');
    writeFileSync(out, 'previous results\n');
    const inp = path.join(tmp, 'bad.jsonl');
    writeFileSync(inp, `${good}\n${nanLine}\n`);
    const r = runCli(['score', inp, '--out', out]);
    expect(r.code).toBe(2);
    expect(readFileSync(out, 'utf8')).toBe('previous results\n');
  });
});

describe('ecr score rejects bad configuration with exit 2', () => {
  it('rejects a config file that is not JSON', () => {
    const f = path.join(tmp, 'broken.json');
    writeFileSync(f, '{tau: 0.5}');
    const r = runCli(['score', '-', '--config', f], good + '\n');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/broken\.json is not valid JSON/);
  });
});

describe('ecr score rejects bad arguments with exit 2', () => {
  it.each([
    [['score'], /expected exactly one input/],
    [['score', '-', '--backend', 'tpu'], /--backend must be one of/],
    [['score', '/nonexistent/file.jsonl'], /cannot read \(ENOENT\)/],
    [['score', '-', '--window', '0'], /--window must be a positive integer/],
    [['score', '-', '--frobnicate'], /Unknown option/],
    [['frobnicate'], /unknown command "frobnicate"/],
  ] as [string[], RegExp][])('%j', (args, message) => {
    const r = runCli(args, good + '\n');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
  });
});

describe('the library rejects the same inputs with typed errors', () => {
  it('scoreRecords throws InputError naming record and field', async () => {
    await expect(
      scoreRecords([
        {
          steps: [
            [0.1, 0.2],
            [0.3, 0.4],
          ],
        },
        {
          steps: [
            [0.1, 2],
            [0.3, 0.4],
          ],
        },
      ]),
    ).rejects.toThrow(InputError);
    await expect(
      scoreRecords([
        {
          steps: [
            [0.1, 0.2],
            [0.3, 0.4],
          ],
        },
        {
          steps: [
            [0.1, 2],
            [0.3, 0.4],
          ],
        },
      ]),
    ).rejects.toThrow(/record 1.*"steps\[0\]\[1\]"/);
  });

  it('scoreBatch validates packed arrays: NaN, range, negative policy, lengths, expected without realized', async () => {
    const base = { n: 1, t: 2, m: 2 };
    await expect(scoreBatch({ ...base, steps: Float64Array.of(0.1, NaN, 0.2, 0.3) })).rejects.toThrow(/record 0, field "steps": not a finite number/);
    await expect(scoreBatch({ ...base, steps: Float64Array.of(0.1, 0.2, 1.2, 0.3) })).rejects.toThrow(/record 0, field "steps": outside \[0, 1\]/);
    await expect(scoreBatch({ ...base, steps: Float64Array.of(0.1, 0.2, 0.3) })).rejects.toThrow(/field "steps": length 3, expected 4/);
    await expect(scoreBatch({ ...base, steps: Float64Array.of(0.1, 0.2, 0.2, 0.3), a: 2, policy: Float64Array.of(1, 0, -1, 2) })).rejects.toThrow(
      /field "policy": negative/,
    );
    await expect(scoreBatch({ ...base, steps: Float64Array.of(0.1, 0.2, 0.2, 0.3), expected: Float64Array.of(0, 1) })).rejects.toThrow(/without "realized"/);
    await expect(scoreBatch({ n: 2, t: 2, m: 1, steps: Float64Array.of(0.1, 0.2, 0.2, Infinity) })).rejects.toThrow(/record 1, field "steps"/);
  });

  it('resolveConfig throws ConfigError and accepts the weights object form', () => {
    expect(() => resolveConfig({ weights: [0.5, 0.5, 0.5, 0, 0] })).toThrow(ConfigError);
    expect(resolveConfig({ weights: { alpha: 0.1, beta: 0.2, gamma: 0.3, delta: 0.2, epsilon: 0.2 } }).weights).toEqual([0.1, 0.2, 0.3, 0.2, 0.2]);
    expect(resolveConfig({ preset: 'compliance' }).weights).toEqual([0.15, 0.3, 0.1, 0.2, 0.25]);
    expect(existsSync(tmp)).toBe(true);
  });
});
