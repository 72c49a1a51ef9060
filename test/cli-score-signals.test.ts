/**
 * `ecr score` interrupted (issue 8, item 2): SIGINT and SIGTERM remove the temporary output
 * beside --out and the spill directory, leave an existing --out as it was, and exit 130 / 143.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { CLI, ROOT } from './helpers/cli.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'ecr-signals-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** n records of T=5, m=8 with distinct groups (deterministic values). */
function generate(n: number): string {
  const lines: string[] = [];
  for (let i = 0; i < n; i++) {
    const steps = Array.from({ length: 5 }, (_, s) => `[${Array.from({ length: 8 }, (_, k) => (((i * 31 + s * 7 + k * 3) % 97) / 97).toFixed(4)).join(',')}]`);
    lines.push(`{"id":"r${i}","group":"g${i % 1000}","steps":[${steps.join(',')}]}`);
  }
  return lines.join('\n') + '\n';
}

/** Polls the file system (not the clock) until `ready` holds; the deadline only bounds a broken run. */
async function waitFor(ready: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 6000 && !ready(); i++) await sleep(10);
  if (!ready()) throw new Error(`never saw ${what}`);
}

describe.each([
  ['SIGINT', 130],
  ['SIGTERM', 143],
] as const)('ecr score interrupted by %s', (signal, expectedCode) => {
  it(`removes the temporary output and the spill directory, keeps the old --out, exits ${expectedCode}`, async () => {
    const dir = path.join(tmp, signal);
    const tmpdir = path.join(dir, 'tmpdir'); // TMPDIR of the child: the spill directory goes here
    mkdirSync(tmpdir, { recursive: true });
    const out = path.join(dir, 'out.jsonl');
    writeFileSync(out, 'previous results\n');

    const child = spawn(process.execPath, [CLI, 'score', '-', '--backend', 'cpu', '--window', '500', '--out', out], {
      cwd: ROOT,
      env: { ...process.env, TMPDIR: tmpdir },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (c: string) => {
      stderr += c;
    });
    const exited = new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.on('exit', (code, sig) => resolve([code, sig])));
    // A large input whose end never comes: stdin stays open, so the run is still going however
    // fast or slow the machine is when the signal is sent.
    child.stdin.on('error', () => {}); // the child exits with our writes still queued
    child.stdin.write(generate(20_000));

    const tempName = `.out.jsonl.${child.pid}.tmp`;
    const spillDirs = () => readdirSync(tmpdir).filter((f) => f.startsWith('ecr-score-'));
    // mkdtemp comes before the spill file is opened: wait for the file itself, not just its directory.
    const spillFileExists = () => spillDirs().length === 1 && readdirSync(path.join(tmpdir, spillDirs()[0])).includes('results.jsonl');
    await waitFor(() => readdirSync(dir).includes(tempName) && spillFileExists(), 'the temporary output and the spill file');

    child.kill(signal);
    const [code, sig] = await exited;
    expect(stderr).toBe('');
    expect({ code, sig }).toEqual({ code: expectedCode, sig: null });
    expect(readdirSync(dir).sort()).toEqual(['out.jsonl', 'tmpdir']);
    expect(spillDirs()).toEqual([]);
    expect(readFileSync(out, 'utf8')).toBe('previous results\n');
  });
});
