/**
 * One test per rejection of bad input: each is refused with exit code 2 and a message naming the
 * line and the field, through the CLI and through the library.
 */
import { describe, expect, it } from 'vitest';
import { writeFileSync, mkdtempSync, existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runCli } from './helpers/cli.js';
import { scoreRecords } from '../src/records/score-records.js';
import { scoreBatch } from '../src/score.js';
import { resolveConfig } from '../src/config.js';
import { ConfigError, InputError } from '../src/errors.js';

const good = '{"id":"ok","steps":[[0.1,0.2],[0.3,0.4]]}';
const tmp = mkdtempSync(path.join(os.tmpdir(), 'ecr-validation-'));

function scoreText(lines: string[], config?: object) {
  const args = ['score', '-'];
  if (config) {
    const f = path.join(tmp, `cfg-${Math.random().toString(36).slice(2)}.json`);
    writeFileSync(f, JSON.stringify(config));
    args.push('--config', f);
  }
  return runCli(args, lines.join('\n') + '\n');
}

const badRecords: [string, string, RegExp][] = [
  ['NaN in steps', '{"id":"x","steps":[[0.1,NaN],[0.3,0.4]]}', /line 2.*"steps\[0\]\[1\]".*NaN is not a finite number/],
  ['Infinity in steps', '{"id":"x","steps":[[0.1,0.2],[Infinity,0.4]]}', /line 2.*"steps\[1\]\[0\]".*Infinity is not a finite number/],
  ['value above 1 in steps', '{"id":"x","steps":[[0.1,1.5],[0.3,0.4]]}', /line 2.*"steps\[0\]\[1\]".*1\.5 is outside \[0, 1\]/],
  ['negative value in steps', '{"id":"x","steps":[[0.1,0.2],[-0.3,0.4]]}', /line 2.*"steps\[1\]\[0\]".*outside \[0, 1\]/],
  ['ragged step rows', '{"id":"x","steps":[[0.1,0.2],[0.3]]}', /line 2.*field "steps".*ragged rows/],
  ['negative policy entry', '{"id":"x","steps":[[0.1,0.2],[0.3,0.4]],"policy":[[0.5,0.5],[-0.1,1.1]]}', /line 2.*"policy\[1\]\[0\]".*is negative/],
  ['expected without realized', '{"id":"x","steps":[[0.1,0.2],[0.3,0.4]],"expected":[0.1,0.2]}', /line 2.*field "expected".*without "realized"/],
  ['realized without expected', '{"id":"x","steps":[[0.1,0.2],[0.3,0.4]],"realized":[0.1,0.2]}', /line 2.*field "realized".*without "expected"/],
  ['embedding rows not one per step', '{"id":"x","steps":[[0.1,0.2],[0.3,0.4]],"embeddings":[[1,2]]}', /line 2.*field "embeddings".*1 rows, expected 2/],
  ['a single step', '{"id":"x","steps":[[0.1,0.2]]}', /line 2.*field "steps".*at least 2 steps/],
  ['missing steps', '{"id":"x"}', /line 2.*field "steps".*required/],
  ['unknown record field', '{"id":"x","steps":[[0.1,0.2],[0.3,0.4]],"embedings":[]}', /line 2.*field "embedings".*unknown field/],
  ['a string where a number belongs', '{"id":"x","steps":[[0.1,"0.2"],[0.3,0.4]]}', /line 2.*"steps\[0\]\[1\]".*not a finite number/],
  ['baseScore not finite', '{"id":"x","steps":[[0.1,0.2],[0.3,0.4]],"baseScore":"high"}', /line 2.*field "baseScore"/],
  ['invalid JSON', '{"id":"x","steps":[[0.1,0.2],[0.3,0.4]]', /line 2: invalid JSON/],
];

describe('ecr score rejects bad records with exit 2, naming line and field', () => {
  it.each(badRecords)('%s', (_name, line, message) => {
    const r = scoreText([good, line]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.stdout).toBe(''); // nothing is written for an invalid input
  });

  it('reports several invalid lines in one run', () => {
    const r = scoreText([good, badRecords[0][1], good, badRecords[2][1]]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/2 invalid lines/);
    expect(r.stderr).toMatch(/line 2/);
    expect(r.stderr).toMatch(/line 4/);
  });

  it('leaves an existing --out file untouched when the input is bad', () => {
    const out = path.join(tmp, 'kept.jsonl');
    writeFileSync(out, 'previous results\n');
    const inp = path.join(tmp, 'bad.jsonl');
    writeFileSync(inp, `${good}\n${badRecords[0][1]}\n`);
    const r = runCli(['score', inp, '--out', out]);
    expect(r.code).toBe(2);
    expect(readFileSync(out, 'utf8')).toBe('previous results\n');
  });
});

const badConfigs: [string, object, RegExp][] = [
  ['unknown key', { tua: 0.6 }, /config "tua": unknown key/],
  ['weights not summing to 1', { weights: [0.2, 0.2, 0.2, 0.2, 0.3] }, /config "weights": must sum to 1/],
  ['negative weight', { weights: [0.6, 0.2, 0.2, 0.2, -0.2] }, /config "weights.epsilon": must be non-negative/],
  ['weights object with an unknown name', { weights: { alpha: 0.2, beta: 0.2, gamma: 0.2, delta: 0.2, zeta: 0.2 } }, /unknown weight "zeta"/],
  ['unknown preset', { preset: 'strict' }, /config "preset": must be one of/],
  ['weights and preset together', { weights: [0.2, 0.2, 0.2, 0.2, 0.2], preset: 'creative' }, /either "weights" or "preset"/],
  ['lambda out of range', { lambda: 1.5 }, /config "lambda": must be in \[0, 1\]/],
  ['lambda misspelled estimator', { lambda: 'ledoit' }, /config "lambda": must be a number in \[0, 1\] or "ledoit-wolf"/],
  ['unknown evbMode', { evbMode: 'max' }, /config "evbMode": must be one of/],
  ['vmax zero', { vmax: 0 }, /config "vmax": must be positive/],
  ['crWeights of the wrong length', { crWeights: [1, 1, 1] }, /line 1.*crWeights.*3 entries but the trajectories have m = 2/],
  ['confIndex beyond m', { confIndex: 5 }, /line 1.*confIndex.*only m = 2/],
];

describe('ecr score rejects bad configuration with exit 2', () => {
  it.each(badConfigs)('%s', (_name, config, message) => {
    const r = scoreText([good], config);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
  });

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
    await expect(scoreRecords([{ steps: [[0.1, 0.2], [0.3, 0.4]] }, { steps: [[0.1, 2], [0.3, 0.4]] }])).rejects.toThrow(InputError);
    await expect(scoreRecords([{ steps: [[0.1, 0.2], [0.3, 0.4]] }, { steps: [[0.1, 2], [0.3, 0.4]] }])).rejects.toThrow(/record 1.*"steps\[0\]\[1\]"/);
  });

  it('scoreBatch validates packed arrays: NaN, range, negative policy, lengths, expected without realized', async () => {
    const base = { n: 1, t: 2, m: 2 };
    await expect(scoreBatch({ ...base, steps: Float64Array.of(0.1, NaN, 0.2, 0.3) })).rejects.toThrow(/record 0, field "steps": not a finite number/);
    await expect(scoreBatch({ ...base, steps: Float64Array.of(0.1, 0.2, 1.2, 0.3) })).rejects.toThrow(/record 0, field "steps": outside \[0, 1\]/);
    await expect(scoreBatch({ ...base, steps: Float64Array.of(0.1, 0.2, 0.3) })).rejects.toThrow(/field "steps": length 3, expected 4/);
    await expect(scoreBatch({ ...base, steps: Float64Array.of(0.1, 0.2, 0.2, 0.3), a: 2, policy: Float64Array.of(1, 0, -1, 2) })).rejects.toThrow(/field "policy": negative/);
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
