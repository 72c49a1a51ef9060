/**
 * Counts and their nouns agree in the calibration and maturity output, the report and the CLI's
 * progress summary: "1 trajectory in 1 group", not "1 trajectories in 1 groups".
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Progress } from '../src/engine/io/progress.js';
import { plural } from '../src/core/plural.js';
import { runCli } from './helpers/cli.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'ecr-cal-plurals-'));
const write = (name: string, text: string) => {
  const p = path.join(dir, name);
  writeFileSync(p, text);
  return p;
};
const traj = (id: string, group: string, rows: number[][], extra: Record<string, unknown> = {}) => JSON.stringify({ id, group, steps: rows, ...extra });
const stable = [
  [0.8, 0.5, 0.2],
  [0.8, 0.5, 0.2],
  [0.79, 0.5, 0.21],
];
const shaky = [
  [0.8, 0.5, 0.2],
  [0.2, 0.5, 0.8],
  [0.7, 0.1, 0.4],
];
/** Counts of 1 followed by a plural noun, the mistake looked for. */
const ONE_PLURAL = /\b1 (trajectories|records|groups|held-out groups|labelled records|scored records|knots|points|weight vectors)\b/;

describe('plural', () => {
  it('picks the noun by the count, with an irregular plural and a formatted count', () => {
    expect(plural(1, 'group')).toBe('1 group');
    expect(plural(0, 'group')).toBe('0 groups');
    expect(plural(2, 'trajectory', 'trajectories')).toBe('2 trajectories');
    expect(plural(1000, 'record', 'records', '1,000')).toBe('1,000 records');
  });
});

describe('singular counts in the output', () => {
  it('the maturity report of one trajectory says "1 trajectory in 1 group"', () => {
    const report = path.join(dir, 'one.html');
    const r = runCli(['maturity', write('one.jsonl', traj('a', 'q', stable)), '--report', report]);
    expect(r.stderr).toBe('');
    const html = readFileSync(report, 'utf8');
    expect(html).toContain('<li>1 trajectory in 1 group from <code>one.jsonl</code>');
    expect(html).not.toMatch(ONE_PLURAL);
  });

  it('ecr calibrate with one group on each side of the split: its summary and report', () => {
    const f = write(
      'two-groups.jsonl',
      [
        traj('a', 'q1', stable, { correct: true }),
        traj('b', 'q1', shaky, { correct: false }),
        traj('c', 'q2', stable, { correct: true }),
        traj('d', 'q2', shaky, { correct: false }),
      ].join('\n'),
    );
    const report = path.join(dir, 'two-groups.html');
    const r = runCli(['calibrate', f, '--holdout', '0.5', '--bootstrap', '20', '--report', report]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^split: 1 group fitted \(2 labelled records\), 1 held out \(2 records\)$/m);
    expect(r.stdout).toMatch(/^selection accuracy on 1 held-out group: /m);
    expect(r.stdout).not.toMatch(ONE_PLURAL);
    const html = readFileSync(report, 'utf8');
    expect(html).toContain('Fitted on 1 group (2 labelled records), evaluated on 1 held-out group (2 records)');
    expect(html).toContain('(held out, 1 group)');
    expect(html).not.toMatch(ONE_PLURAL);
  });

  it('the progress summary of ecr score on a terminal: "1 record in"', () => {
    const written: string[] = [];
    const stream = {
      isTTY: true,
      write: (s: string) => {
        written.push(s);
        return true;
      },
    } as unknown as NodeJS.WriteStream;
    new Progress('ecr score', stream).done(1, { backend: 'cpu' });
    expect(written.join('')).toMatch(/^\recr score: 1 record in [\d.]+ s/);
  });
});
