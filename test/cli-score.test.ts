/** `ecr score` end to end: fixtures through the CLI, streaming windows, mixed shapes, stdin. */
import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { CLI, runCli } from './helpers/cli.js';
import { loadFixtures, selectionAmbiguous } from './helpers/fixtures.js';
import { webGpuGate } from './webgpu-gate.js';

const fixtures = loadFixtures();
const tmp = mkdtempSync(path.join(os.tmpdir(), 'ecr-cli-'));
const parse = (out: string) =>
  out
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
const gpu = await webGpuGate();

/** Backends under test through the CLI, each with its tolerance (float64 1e-9, float32 1e-5). */
const CLI_BACKENDS: [string, number][] = [['cpu-reference', 1e-9], ['cpu', 1e-9], ...(gpu.available ? [['webgpu', 1e-5] as [string, number]] : [])];

describe.each(CLI_BACKENDS)('ecr score --backend %s', (backend, tol) => {
  it.each(fixtures.map((f) => [f.name, f] as const))('%s matches the golden output within the tolerance', (_n, fx) => {
    const r = runCli(['score', fx.inputPath, '--config', fx.configPath, '--backend', backend]);
    if (backend !== 'webgpu') expect(r.stderr).toBe(''); // Dawn prints adapter warnings of its own
    expect(r.code).toBe(0);
    const rows = parse(r.stdout);
    expect(rows).toHaveLength(fx.expected.length);
    rows.forEach((row, i) => {
      const e = fx.expected[i];
      expect(Object.keys(row)).toEqual(['id', 'group', 'EVB', 'CR', 'TS', 'ES', 'PD', 'CCI', 'admissible', 'selected']);
      expect(row.id).toBe(e.id);
      expect(row.group).toBe(e.group);
      for (const k of ['EVB', 'CR', 'TS', 'ES', 'PD', 'CCI'] as const) expect(Math.abs(row[k] - e[k]), `${k} ${e.id}`).toBeLessThanOrEqual(tol);
      if (!selectionAmbiguous(fx, i, tol)) {
        expect(row.admissible).toBe(e.admissible);
        expect(row.selected).toBe(e.selected);
      }
    });
  });
});

describe('streaming', () => {
  const fx = fixtures.find((f) => f.name === 'proxy-default')!;

  it('gives the same output with tiny windows (results spilled to disk) as with one window', () => {
    const whole = runCli(['score', fx.inputPath, '--backend', 'cpu']);
    const windowed = runCli(['score', fx.inputPath, '--backend', 'cpu', '--window', '7']);
    expect(windowed.code).toBe(0);
    expect(windowed.stdout).toBe(whole.stdout);
  });

  it('reads stdin and writes --out', () => {
    const out = path.join(tmp, 'out.jsonl');
    const r = runCli(['score', '-', '--out', out, '--config', fx.configPath], readFileSync(fx.inputPath, 'utf8'));
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('');
    expect(parse(readFileSync(out, 'utf8')).map((x) => x.id)).toEqual(fx.expected.map((e) => e.id));
  });

  it('scores mixed shapes in one file, keeps input order, and selects across shapes within a group', () => {
    // Interleave records of three fixtures (three shapes), all in one group per source group name.
    const sources = ['proxy-default', 'embeddings-policy', 'ties-quantized'].map((n) => fixtures.find((f) => f.name === n)!);
    const lines: string[] = [];
    const expectedIds: string[] = [];
    for (let i = 0; i < 60; i++) {
      const src = sources[i % 3];
      const raw = readFileSync(src.inputPath, 'utf8').trim().split('\n')[i];
      const rec = JSON.parse(raw);
      rec.group = `mixed-${i % 4}`;
      lines.push(JSON.stringify(rec));
      expectedIds.push(rec.id);
    }
    lines.splice(10, 0, ''); // blank lines are skipped
    const text = lines.join('\n') + '\n';
    const one = runCli(['score', '-', '--backend', 'cpu-reference'], text);
    const windowed = runCli(['score', '-', '--backend', 'cpu', '--window', '5'], text);
    expect(one.code).toBe(0);
    const rows = parse(one.stdout);
    expect(rows.map((r) => r.id)).toEqual(expectedIds);
    // exactly one selected per group, and it is the best admissible (or best overall)
    for (let g = 0; g < 4; g++) {
      const members = rows.filter((r) => r.group === `mixed-${g}`);
      expect(members.filter((r) => r.selected)).toHaveLength(1);
      const adm = members.filter((r) => r.admissible);
      const pool = adm.length ? adm : members;
      const best = Math.max(...pool.map((r) => r.CCI));
      expect(members.find((r) => r.selected).CCI).toBe(best);
    }
    const w = parse(windowed.stdout);
    w.forEach((r, i) => {
      expect(r.id).toBe(rows[i].id);
      expect(Math.abs(r.CCI - rows[i].CCI)).toBeLessThanOrEqual(1e-9);
      expect(r.selected).toBe(rows[i].selected);
    });
  });

  it('defaults id to the line number and group to one shared group (null)', () => {
    const r = runCli(['score', '-'], '{"steps":[[0.1,0.2],[0.1,0.2]]}\n\n{"steps":[[0.9,0.1],[0.1,0.9]]}\n');
    const rows = parse(r.stdout);
    expect(rows.map((x) => x.id)).toEqual([1, 3]);
    expect(rows.map((x) => x.group)).toEqual([null, null]);
    expect(rows.filter((x) => x.selected)).toHaveLength(1);
  });

  it('uses baseScore among admissible candidates and records nothing selected twice', () => {
    const text = [
      '{"id":"a","group":"g","steps":[[0.5,0.5],[0.5,0.5]],"baseScore":0.1}',
      '{"id":"b","group":"g","steps":[[0.5,0.5],[0.5,0.5]],"baseScore":0.9}',
      '{"id":"c","group":"g","steps":[[0.9,0.0],[0.0,0.9]],"baseScore":5}',
    ].join('\n');
    const rows = parse(runCli(['score', '-', '--backend', 'cpu'], text).stdout);
    expect(rows.map((x) => x.admissible)).toEqual([true, true, false]);
    expect(rows.map((x) => x.selected)).toEqual([false, true, false]);
  });

  it('shows a progress line on stderr when stderr is a terminal, and none otherwise', () => {
    const fx = fixtures.find((f) => f.name === 'proxy-default')!;
    const out = path.join(tmp, 'progress.jsonl');
    // `script` runs the command on a pseudo-terminal, as an interactive user would.
    const tty = spawnSync('script', ['-qec', `${process.execPath} ${CLI} score ${fx.inputPath} --out ${out}`, '/dev/null'], { encoding: 'utf8' });
    expect(tty.status).toBe(0);
    expect(tty.stdout).toMatch(/ecr score: 400 records in [0-9.]+ s/);
    const piped = runCli(['score', fx.inputPath, '--out', out]);
    expect(piped.stderr).toBe('');
  });

  it('writes full-precision numbers that round-trip', () => {
    const r = runCli(['score', fixtures[3].inputPath, '--config', fixtures[3].configPath, '--backend', 'cpu-reference']);
    expect(r.stdout).toContain('0.7693658714184581');
  });
});
