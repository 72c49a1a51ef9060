/** `ecr calibrate` and `ecr maturity` end to end: the shipped data set, the saved config, exit codes, bad input. */
import { describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ROOT, runCli } from './helpers/cli.js';
import { generateCalibrationData } from '../src/testing/synthetic-calibration.js';
import { resolveConfig } from '../src/core/config.js';
import { LoopbackServer } from '../src/testing/loopback-server.js';
import { CLI } from './helpers/cli.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'ecr-calcli-'));
const DATA = path.join(ROOT, 'data', 'calibration-synthetic.jsonl');
const noStack = (stderr: string) => expect(stderr).not.toMatch(/^\s+at /m);
const write = (name: string, text: string) => {
  const p = path.join(tmp, name);
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

describe('the shipped data set', () => {
  it('is what its documented generator produces', () => {
    expect(readFileSync(DATA, 'utf8')).toBe(generateCalibrationData());
  });
});

describe('ecr calibrate', () => {
  const out = path.join(tmp, 'calibrated.json');
  const r = runCli(['calibrate', DATA, '--out', out, '--backend', 'cpu', '--bootstrap', '200']);

  it('reports tau with an interval, discrimination and the selection lift on the shipped data', () => {
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/tau for 0\.75 admission: 0\.\d+ 95% CI \[0\.\d+, 0\.\d+\] \(admits 0\.750\)/);
    expect(r.stdout).toMatch(/AUROC 0\.\d+, PRR 0\.\d+ \(input config/);
    expect(r.stdout).toMatch(/selection lift: over first 0\.\d+ \[/);
  });

  it('saves a configuration that ecr score accepts and that makes it print pCorrect', () => {
    const saved = JSON.parse(readFileSync(out, 'utf8'));
    expect(() => resolveConfig(saved)).not.toThrow();
    expect(saved.calibration.method).toBe('isotonic');
    expect(saved.provenance.sha256).toBe(createHash('sha256').update(readFileSync(DATA)).digest('hex'));
    expect(saved.provenance.records).toBe(880);
    expect(saved.provenance.groups).toBe(220);
    const s = runCli(['score', DATA, '--config', out, '--backend', 'cpu']);
    expect(s.code).toBe(0);
    const rows = s.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(Object.keys(rows[0])).toEqual(['id', 'group', 'EVB', 'CR', 'TS', 'ES', 'PD', 'CCI', 'admissible', 'pCorrect', 'selected']);
    for (const row of rows) {
      expect(row.pCorrect).toBeGreaterThanOrEqual(0);
      expect(row.pCorrect).toBeLessThanOrEqual(1);
    }
    // Isotonic: a higher CCI never gets a lower probability.
    const sorted = [...rows].sort((a, b) => a.CCI - b.CCI);
    for (let i = 1; i < sorted.length; i++) expect(sorted[i].pCorrect).toBeGreaterThanOrEqual(sorted[i - 1].pCorrect);
    expect(rows.filter((x) => x.admissible).every((x) => x.CCI >= saved.tau)).toBe(true);
  });

  it('saves a configuration that ecr run accepts (against the loopback server)', async () => {
    const server = await LoopbackServer.start({ latencyMs: 1 });
    try {
      // Asynchronous: the server runs in this process and must keep answering.
      const res = await new Promise<{ code: number; stdout: string }>((resolve) =>
        execFile(
          process.execPath,
          [
            CLI,
            'run',
            'What is 2 + 2?',
            '--config',
            out,
            '--base-url',
            server.url,
            '--model',
            'm',
            '-k',
            '2',
            '--fixed-k',
            '--horizon',
            '1',
            '--seed',
            '1',
            '--json',
          ],
          { cwd: ROOT, timeout: 60_000 },
          (err, stdout) => resolve({ code: err ? -1 : 0, stdout }),
        ),
      );
      expect(res.code).toBe(0);
      const saved = JSON.parse(readFileSync(out, 'utf8'));
      expect(JSON.parse(res.stdout).stats.scoring.weights).toEqual(saved.weights);
    } finally {
      await server.close();
    }
  });

  it('reads ecr score output (scored records) with labels joined', () => {
    const scored = runCli(['score', DATA, '--backend', 'cpu']).stdout.trim().split('\n');
    const labels = readFileSync(DATA, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l).meta.correct);
    const joined = write('scored.jsonl', scored.map((l, i) => JSON.stringify({ ...JSON.parse(l), correct: labels[i] })).join('\n') + '\n');
    const c = runCli(['calibrate', joined, '--bootstrap', '200']);
    expect(c.code).toBe(0);
    const auroc = (s: string) => /AUROC (\S+), PRR/.exec(s)![1];
    expect(auroc(c.stdout)).toBe(auroc(r.stdout));
  });

  it('without labels gives tau and its interval only, and says why', () => {
    const unlabelled = write('unlabelled.jsonl', [traj('a', 'q1', stable), traj('b', 'q1', shaky), traj('c', 'q2', stable), traj('d', 'q2', shaky)].join('\n'));
    const c = runCli(['calibrate', unlabelled, '--bootstrap', '100']);
    expect(c.code).toBe(0);
    expect(c.stdout).toMatch(/labels: no record has a "correct" label/);
    expect(c.stdout).toMatch(/chosen: tau .* \(target-admission\)/);
  });

  it('takes labels from the field --labels names', () => {
    const f = write(
      'ok-field.jsonl',
      [
        traj('a', 'q1', stable, { ok: true }),
        traj('b', 'q1', shaky, { ok: false }),
        traj('c', 'q2', stable, { ok: true }),
        traj('d', 'q2', shaky, { ok: false }),
      ].join('\n'),
    );
    const c = runCli(['calibrate', f, '--labels', 'ok', '--bootstrap', '50', '--holdout', '0.5']);
    expect(c.code).toBe(0);
    expect(c.stdout).toMatch(/labelled 4/);
  });
});

describe('ecr calibrate: bad input', () => {
  it('no records: exit 2 and says so', () => {
    const r = runCli(['calibrate', write('empty.jsonl', '\n\n')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/has no records/);
    expect(r.stdout).toBe('');
    noStack(r.stderr);
  });

  it('a single group: tau without an interval, no held-out split, and says why', () => {
    const f = write('one-group.jsonl', [traj('a', 'q', stable, { correct: true }), traj('b', 'q', shaky, { correct: false })].join('\n'));
    const r = runCli(['calibrate', f]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/95% CI undefined: the bootstrap resamples groups and the input has one/);
    expect(r.stdout).toMatch(/labels: one group only: the held-out split and the bootstrap need at least two groups/);
  });

  it('all labels equal: AUROC undefined, said, no crash', () => {
    const f = write(
      'all-true.jsonl',
      ['q1', 'q2', 'q3', 'q4'].flatMap((g) => [traj(`${g}a`, g, stable, { correct: true }), traj(`${g}b`, g, shaky, { correct: true })]).join('\n'),
    );
    const r = runCli(['calibrate', f, '--bootstrap', '50', '--holdout', '0.5']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/AUROC is undefined: all 8 labels are true/);
    noStack(r.stderr);
  });

  it('all labels false: warns, takes the target-admission tau and saves no probability map', () => {
    const f = write(
      'all-false.jsonl',
      ['q1', 'q2', 'q3', 'q4'].flatMap((g) => [traj(`${g}a`, g, stable, { correct: false }), traj(`${g}b`, g, shaky, { correct: false })]).join('\n'),
    );
    const out = path.join(tmp, 'all-false.json');
    const r = runCli(['calibrate', f, '--bootstrap', '50', '--holdout', '0.5', '--out', out]);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(
      /^ecr calibrate: warning: one label class on the fitting groups \(all 4 labels are false\): the f1 objective and the probability map are undefined; tau falls back to the target admission/,
    );
    expect(r.stdout).toMatch(/calibration: none \(one label class on the fitting groups; no map saved\)/);
    const tauAdm = /tau for 0\.75 admission: (\S+)/.exec(r.stdout)![1];
    expect(r.stdout).toContain(`chosen: tau ${tauAdm} (target-admission)`);
    const saved = JSON.parse(readFileSync(out, 'utf8'));
    expect(saved.calibration).toBeUndefined();
    expect(saved.tau.toFixed(4)).toBe(tauAdm);
    const s = runCli(['score', write('plain.jsonl', traj('a', 'q1', stable)), '--config', out, '--backend', 'cpu']);
    expect(s.code, s.stderr).toBe(0);
    expect(JSON.parse(s.stdout).pCorrect).toBeUndefined();
  });

  it('non-boolean labels: exit 2 naming the line and field', () => {
    const f = write('bad-label.jsonl', [traj('a', 'q1', stable, { correct: true }), traj('b', 'q1', shaky, { meta: { correct: 'yes' } })].join('\n'));
    const r = runCli(['calibrate', f]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('line 2, id "b", field "meta.correct": label must be true or false, got "yes"');
    noStack(r.stderr);
    const g = write('bad-label-num.jsonl', traj('a', 'q1', stable, { correct: 1 }));
    expect(runCli(['calibrate', g]).stderr).toContain('field "correct": label must be true or false, got 1');
  });

  it('mixed trajectories and scored records, a scored CCI that the config does not produce, bad flags', () => {
    const mixed = write('mixed.jsonl', [traj('a', 'q1', stable), JSON.stringify({ id: 'b', EVB: 0.4, CR: 0, TS: 1, ES: 1, PD: 0, CCI: 0.92 })].join('\n'));
    expect(runCli(['calibrate', mixed]).stderr).toMatch(/line 2.*earlier lines are trajectories/);
    const wrong = write('wrong-cci.jsonl', JSON.stringify({ id: 'b', EVB: 0.4, CR: 0, TS: 1, ES: 1, PD: 0, CCI: 0.5 }));
    const w = runCli(['calibrate', wrong]);
    expect(w.code).toBe(2);
    expect(w.stderr).toMatch(/line 1, id "b", field "CCI".*pass the --config the records were scored with/);
    expect(runCli(['calibrate', DATA, '--objective', 'accuracy']).code).toBe(2);
    expect(runCli(['calibrate', DATA, '--labels', 'steps']).stderr).toMatch(/--labels needs a field name other than the record's own fields/);
    expect(runCli(['calibrate', DATA, '--target-admission', '1.5']).stderr).toMatch(/--target-admission must be a number in \(0, 1\]/);
  });
});

describe('ecr maturity', () => {
  it('exit 3 when a check fails (M1 under the default identity shrinkage), with the floor stated and the floor-free verdict', () => {
    const r = runCli(['maturity', DATA, '--backend', 'cpu']);
    expect(r.code).toBe(3);
    expect(r.stdout).toMatch(/^M1 +FAIL/m);
    expect(r.stdout).toMatch(/EVB has a floor of lambda = 0.4/);
    expect(r.stdout).toMatch(/^M1-floor-free +PASS/m);
    for (const id of ['M2', 'M3', 'M4']) expect(r.stdout).toMatch(new RegExp(`^${id} +PASS`, 'm'));
    expect(r.stdout).toMatch(/proxy for BERTScore/);
  });

  it('exit 0 when every applicable check passes; NOT-APPLICABLE says why', () => {
    const cfg = write('scaled.json', '{"shrinkTarget": "scaled-identity"}');
    const r = runCli(['maturity', DATA, '--config', cfg, '--backend', 'cpu']);
    expect(r.code).toBe(0);
    const scored = write('scored-only.jsonl', runCli(['score', DATA, '--config', cfg, '--backend', 'cpu']).stdout);
    const s = runCli(['maturity', scored, '--config', cfg]);
    expect(s.code).toBe(0);
    expect(s.stdout).toMatch(/^M3 +NOT-APPLICABLE .*\n.*needs the evaluative vectors/m);
    expect(s.stdout).toMatch(/^M2 +NOT-APPLICABLE .*\n.*no record carries "dialogue" and "turn"/m);
  });

  it('M4 fails when the answers to paraphrases point apart (6 prompts, its least sample), and a failure outranks too little data', () => {
    const cfg = write('scaled2.json', '{"shrinkTarget": "scaled-identity"}');
    const f = write(
      'paraphrases.jsonl',
      [1, 2, 3, 4, 5, 6]
        .flatMap((v) => [
          traj(`a${v}`, `p${v}a`, stable, {
            variant: v,
            embeddings: [
              [1, 0],
              [1, 0],
              [1, 0],
            ],
          }),
          traj(`b${v}`, `p${v}b`, stable, {
            variant: v,
            embeddings: [
              [1, 1],
              [1, 1],
              [1, 1],
            ],
          }),
        ])
        .join('\n'),
    );
    const r = runCli(['maturity', f, '--config', cfg]);
    expect(r.code).toBe(3);
    expect(r.stdout).toMatch(/^M4 +FAIL/m);
    expect(r.stdout).toContain('0.7071');
    expect(r.stdout).toMatch(/^M1 +INSUFFICIENT-DATA/m);
  });

  it('a handful of records: INSUFFICIENT-DATA rather than PASS or FAIL, exit 4, and --json says so', () => {
    const cfg = write('scaled3.json', '{"shrinkTarget": "scaled-identity"}');
    const f = write('handful.jsonl', [traj('a', 'q1', stable), traj('b', 'q1', shaky), traj('c', 'q2', stable), traj('d', 'q2', shaky)].join('\n'));
    const r = runCli(['maturity', f, '--config', cfg]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(4);
    expect(r.stdout).toMatch(/^M1 +INSUFFICIENT-DATA/m);
    expect(r.stdout).toMatch(/^M3 +INSUFFICIENT-DATA/m);
    expect(r.stdout).toContain('insufficient data: 4 records, M1 needs at least 59');
    expect(r.stdout).toContain('insufficient data: 4 trajectories, M3 needs at least 30 (10 per component for m = 3');
    expect(r.stdout).not.toMatch(/: (ok|no)\)/); // no per-value verdict either
    const j = runCli(['maturity', f, '--config', cfg, '--json']);
    expect(j.code).toBe(4);
    const out = JSON.parse(j.stdout);
    expect(out.exitCode).toBe(4);
    expect(out.input).toMatchObject({ file: 'handful.jsonl', records: 4, groups: 2 });
    const m3 = out.checks.find((c: { id: string }) => c.id === 'M3');
    expect(m3).toMatchObject({ verdict: 'INSUFFICIENT-DATA', sample: { size: 4, minimum: 30, unit: 'trajectories' } });
    expect(out.checks.find((c: { id: string }) => c.id === 'M2').verdict).toBe('NOT-APPLICABLE');
  });

  it('exit 2 for bad input', () => {
    const r = runCli(['maturity', write('bad-turn.jsonl', traj('a', 'q', stable, { dialogue: 'd', turn: 1.5 }))]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('line 1, id "a", field "turn": must be an integer, got 1.5');
    noStack(r.stderr);
    expect(runCli(['maturity', write('dialogue-only.jsonl', traj('a', 'q', stable, { dialogue: 'd' }))]).stderr).toMatch(/"dialogue" and "turn" go together/);
    expect(runCli(['maturity', path.join(tmp, 'missing.jsonl')]).code).toBe(2);
  });
});
