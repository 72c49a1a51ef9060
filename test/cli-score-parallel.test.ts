/**
 * Parallel JSONL parsing in `ecr score` (issue 12, item 3): the output with parse workers is
 * byte for byte the output of the single-thread path (`ecr score --threads 0`), on every fixture
 * and on a generated 100K-record file, and so are the errors, with invalid lines at known places.
 * Tiny chunks and windows make records, errors and windows cross many chunk boundaries: the runs
 * with parse workers go through the test hook (src/testing/score-limits.ts), compiled, since
 * the CLI's chunk size is fixed and the workers' script exists only in dist/.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { ROOT, runCli } from './helpers/cli.js';
import { FIXTURE_DIR, LARGE_SHAPE_FIXTURE_DIR, loadFixtures } from './helpers/fixtures.js';

type Hook = typeof import('../src/testing/score-limits.js');
const hook = (await import(pathToFileURL(path.join(ROOT, 'dist/testing/score-limits.js')).href)) as Hook;

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'ecr-parallel-'));
});
afterAll(async () => {
  rmSync(tmp, { recursive: true, force: true });
  await hook.disposeScoring();
});

/** What `ecr score` prints on stderr for the hook's error (the CLI's one line, exit 2). */
const asStderr = (run: Promise<string>) =>
  run.then(
    () => '',
    (err: Error) => `ecr score: ${err.message}\n`,
  );

const fixtures = [...loadFixtures(FIXTURE_DIR), ...loadFixtures(LARGE_SHAPE_FIXTURE_DIR)];

describe('parallel JSONL parsing gives the single-thread output', () => {
  it.each(fixtures.map((f) => [f.name, f] as const))('%s: identical bytes with 0, 1 and 3 parse threads, tiny chunks and windows', async (_name, fx) => {
    const args = ['score', fx.inputPath, '--config', fx.configPath, '--backend', 'cpu'];
    const single = runCli([...args, '--threads', '0']);
    expect(single.code).toBe(0);
    expect(single.stdout.split('\n').length).toBe(fx.records.length + 1);
    const config = JSON.parse(readFileSync(fx.configPath, 'utf8')) as unknown;
    for (const threads of [1, 3]) {
      const parallel = await hook.scoreWithLimits({ input: fx.inputPath, config, backend: 'cpu', threads, windowSize: 7, chunkBytes: 1500 });
      expect(parallel).toBe(single.stdout);
    }
  });
});

describe('a generated 100K-record file', () => {
  const N = 100_000;
  /** Lines (1-based) replaced by invalid ones, each with a substring its message must contain. */
  const BAD: [number, string, string][] = [
    [2, '{"id":"x","steps":[[0.5,1.5],[0,0]]}', 'line 2, id "x", field "steps[0][1]": 1.5 is outside [0, 1]'],
    [4_097, '{"id":"y","steps":[[0.5,0.5],[0,0]],"stpes":1}', 'line 4097, field "stpes": unknown field'],
    [31_337, '{"steps":[[0.5,0.5],[0,0]', 'line 31337: invalid JSON'],
    [50_000, '{"id":"z","steps":[[0.5,NaN],[0,0]]}', 'line 50000, id "z", field "steps[0][1]": NaN is not a finite number'],
    [77_777, '[{"steps":[[0.5,0.5],[0,0]]}]', 'line 77777, field "(record)": must be a JSON object'],
    [99_999, '{"id":"w","group":12345678901234567890,"steps":[[0,0],[1,1]]}', 'line 99999, id "w", field "group": 12345678901234567890 cannot be kept exactly'],
  ];
  let good: string;
  let bad: string;
  let manyBad: string;
  beforeAll(() => {
    let seed = 7;
    const rand = () => (seed = (seed * 1103515245 + 12345) >>> 0) / 4294967296;
    const lines: string[] = [];
    for (let i = 0; i < N; i++) {
      const t = 2 + (i % 3); // mixed shapes, so windows hold several buckets
      const steps = Array.from({ length: t }, () => `[${Array.from({ length: 4 }, () => rand().toFixed(5)).join(',')}]`).join(',');
      // Ids on most lines, the line number on some; groups of about 5 spread across windows; blank lines now and then.
      lines.push(i % 997 === 5 ? '' : `{${i % 11 === 0 ? '' : `"id":"r${i}",`}"group":${i % 2 ? `"g${i % 20011}"` : i % 20011},"steps":[${steps}]}`);
    }
    good = path.join(tmp, 'good.jsonl');
    writeFileSync(good, lines.join('\n') + '\n');
    const withErrors = [...lines];
    for (const [line, text] of BAD) withErrors[line - 1] = text;
    bad = path.join(tmp, 'bad.jsonl');
    writeFileSync(bad, withErrors.join('\n') + '\n');
    for (let k = 0; k < 25; k++) withErrors[1000 + k * 3001] = '{"steps":[[2]]}';
    manyBad = path.join(tmp, 'many-bad.jsonl');
    writeFileSync(manyBad, withErrors.join('\r\n')); // CRLF, no final newline
  });

  it('scores identically with and without parse workers (results spilled to disk)', async () => {
    const single = runCli(['score', good, '--backend', 'cpu', '--threads', '0']);
    expect(single.code).toBe(0);
    const blanks = Array.from({ length: N }, (_, i) => i).filter((i) => i % 997 === 5).length;
    expect(single.stdout.split('\n').length).toBe(N - blanks + 1);
    const parallel = await hook.scoreWithLimits({ input: good, backend: 'cpu', threads: 2, chunkBytes: 65536 });
    expect(parallel === single.stdout).toBe(true); // not toBe: a 10 MB diff would be unreadable
    // stdin, chunked to the workers as it arrives (the CLI's default chunks)
    const piped = runCli(['score', '-', '--backend', 'cpu', '--threads', '2'], readFileSync(good, 'utf8'));
    expect(piped.code).toBe(0);
    expect(piped.stdout === single.stdout).toBe(true);
  });

  it('reports the same errors, naming the right lines, with and without parse workers', async () => {
    const single = runCli(['score', bad, '--backend', 'cpu', '--threads', '0']);
    const parallel = { stderr: await asStderr(hook.scoreWithLimits({ input: bad, backend: 'cpu', threads: 2, chunkBytes: 20000 })) };
    expect(single.code).toBe(2);
    expect(single.stdout).toBe('');
    expect(single.stderr).toContain(`${BAD.length} invalid lines; nothing was written`);
    let at = -1;
    for (const [, , message] of BAD) {
      const next = single.stderr.indexOf(message);
      expect(next, message).toBeGreaterThan(at); // present, in line order
      at = next;
    }
    expect(single.stderr).toContain('hint: this looks like a JSON array');
    expect(parallel.stderr).toBe(single.stderr);
  });

  it('stops after the same 20 invalid lines, CRLF and a last line without a newline included', async () => {
    const single = runCli(['score', manyBad, '--backend', 'cpu', '--threads', '0']);
    const parallel = { stderr: await asStderr(hook.scoreWithLimits({ input: manyBad, backend: 'cpu', threads: 3, chunkBytes: 30000 })) };
    expect(single.code).toBe(2);
    expect(single.stderr).toContain('20 invalid lines; nothing was written');
    expect(single.stderr).toContain('(stopped after 20 invalid lines)');
    expect(single.stderr).toContain('line 4097, field "stpes"');
    expect(parallel.stderr).toBe(single.stderr);
  });
});
