/**
 * The table of bad inputs: every file in test/bad-inputs/ is one case (its format is below), run
 * through the built CLI as a user runs it, `node dist/cli.js score FILE --backend B [--config C]
 * [...args]`, once per backend. Each run must exit with the case's code, print every expected
 * substring on stderr, print no stack trace, and write nothing to stdout when it refuses (exit 2).
 *
 * Case file: {"description", "input" | "inputBase64", "config"?, "args"?, "exit", "stderr": [...],
 * "stdout"?, "backends"?}. The runs go through a pool of two child processes (the CI machine has
 * two cores), all started before the first assertion, so the table costs about a second per six
 * runs, not one process at a time.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { CLI, ROOT } from './helpers/cli.js';
import { webGpuGate } from './webgpu-gate.js';

const BACKENDS = ['cpu', 'cpu-reference', 'webgpu'] as const;
type BackendName = (typeof BACKENDS)[number];

interface BadInputCase {
  name: string;
  description: string;
  input: Buffer;
  config?: string;
  args: string[];
  exit: number;
  stderr: string[];
  stdout?: string;
  backends: BackendName[];
}

const CASE_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), 'bad-inputs');
const CASE_KEYS = new Set(['description', 'input', 'inputBase64', 'config', 'args', 'exit', 'stderr', 'stdout', 'backends']);

/** Reads and checks one case file: a malformed case must fail loudly, not pass vacuously. */
function loadCase(file: string): BadInputCase {
  const name = path.basename(file, '.json');
  const raw = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  const bad = (why: string): never => {
    throw new Error(`test/bad-inputs/${name}.json: ${why}`);
  };
  for (const k of Object.keys(raw)) if (!CASE_KEYS.has(k)) bad(`unknown key "${k}"`);
  if (typeof raw.description !== 'string' || raw.description === '') bad('"description" must be a non-empty string');
  if ((raw.input === undefined) === (raw.inputBase64 === undefined)) bad('give exactly one of "input" and "inputBase64"');
  if (raw.input !== undefined && typeof raw.input !== 'string') bad('"input" must be a string');
  if (raw.inputBase64 !== undefined && typeof raw.inputBase64 !== 'string') bad('"inputBase64" must be a string');
  if (raw.config !== undefined && typeof raw.config !== 'string') bad('"config" must be the config file\'s text');
  const isStrings = (v: unknown): v is string[] => Array.isArray(v) && v.every((s) => typeof s === 'string');
  if (raw.args !== undefined && !isStrings(raw.args)) bad('"args" must be an array of strings');
  if (!Number.isInteger(raw.exit)) bad('"exit" must be an integer');
  if (!isStrings(raw.stderr)) bad('"stderr" must be an array of strings');
  if (raw.exit !== 0 && (raw.stderr as string[]).length === 0) bad('a failing case must name at least one stderr substring');
  if (raw.stdout !== undefined && typeof raw.stdout !== 'string') bad('"stdout" must be a string');
  if (
    raw.backends !== undefined &&
    (!isStrings(raw.backends) || raw.backends.length === 0 || raw.backends.some((b) => !(BACKENDS as readonly string[]).includes(b)))
  ) {
    bad(`"backends" must be a non-empty subset of ${BACKENDS.join(', ')}`);
  }
  return {
    name,
    description: raw.description as string,
    input: raw.input !== undefined ? Buffer.from(raw.input as string, 'utf8') : Buffer.from(raw.inputBase64 as string, 'base64'),
    config: raw.config as string | undefined,
    args: (raw.args as string[] | undefined) ?? [],
    exit: raw.exit as number,
    stderr: raw.stderr as string[],
    stdout: raw.stdout as string | undefined,
    backends: (raw.backends as BackendName[] | undefined) ?? [...BACKENDS],
  };
}

const cases = readdirSync(CASE_DIR)
  .filter((f) => f.endsWith('.json'))
  .sort()
  .map((f) => loadCase(path.join(CASE_DIR, f)));

interface RunResult {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
}

function runScore(args: string[]): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, 'score', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') }));
  });
}

/** Runs `jobs` with at most `width` in flight; results in input order. */
async function pool<T>(jobs: (() => Promise<T>)[], width: number): Promise<T[]> {
  const results: T[] = new Array(jobs.length);
  let next = 0;
  const worker = async () => {
    while (next < jobs.length) {
      const i = next++;
      results[i] = await jobs[i]();
    }
  };
  await Promise.all(Array.from({ length: Math.min(width, jobs.length) }, worker));
  return results;
}

/**
 * Dawn prints its own native warnings with a C++ frame ("    at operator() (.../BackendVk.cpp:368)")
 * when it opens an adapter; those are not stack traces of ours, so they are dropped before the
 * check. A JavaScript frame ("    at fn (file.js:1:2)") still fails it.
 */
function withoutNativeFrames(stderr: string): string {
  return stderr
    .split('\n')
    .filter((l) => !/^\s+at .*\.(cpp|cc|h|mm):\d+\)?$/.test(l))
    .join('\n');
}

const runs = new Map<string, RunResult>();
let gpu = { available: false, reason: '' };

beforeAll(async () => {
  gpu = await webGpuGate(); // throws under ECR_REQUIRE_WEBGPU=1 when no adapter opens
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ecr-bad-inputs-'));
  const jobs: (() => Promise<void>)[] = [];
  for (const c of cases) {
    const input = path.join(dir, `${c.name}.jsonl`);
    writeFileSync(input, c.input);
    const configArgs: string[] = [];
    if (c.config !== undefined) {
      const config = path.join(dir, `${c.name}.config.json`);
      writeFileSync(config, c.config);
      configArgs.push('--config', config);
    }
    for (const backend of c.backends) {
      if (backend === 'webgpu' && !gpu.available) continue;
      jobs.push(async () => {
        runs.set(`${c.name}/${backend}`, await runScore([input, '--backend', backend, ...configArgs, ...c.args]));
      });
    }
  }
  await pool(jobs, 2);
}, 180_000);

describe('bad inputs (test/bad-inputs/*.json) through `ecr score` on every backend', () => {
  it('the table is there and covers every backend', () => {
    expect(cases.length).toBeGreaterThan(40);
    for (const b of BACKENDS) expect(cases.some((c) => c.backends.includes(b))).toBe(true);
  });

  for (const c of cases) {
    for (const backend of c.backends) {
      it(`${c.name} [${backend}]: ${c.description}`, (ctx) => {
        if (backend === 'webgpu' && !gpu.available) {
          ctx.skip();
          return;
        }
        const r = runs.get(`${c.name}/${backend}`)!;
        const context = `stderr:\n${r.stderr}\nstdout:\n${r.stdout.slice(0, 2000)}`;
        expect(r.signal, context).toBeNull();
        expect(r.code, context).toBe(c.exit);
        for (const s of c.stderr) expect(r.stderr, context).toContain(s);
        expect(withoutNativeFrames(r.stderr), 'a stack trace on stderr').not.toMatch(/^\s+at /m);
        // The lenient reading of NaN tokens marks them internally; no marker may reach the user.
        expect(r.stderr + r.stdout).not.toContain('\u0000');
        expect(r.stderr + r.stdout).not.toMatch(/\\u0000|ecr:(NaN|-?Infinity)/);
        if (c.stdout !== undefined) expect(r.stdout, context).toBe(c.stdout);
        if (c.exit === 2) expect(r.stdout, 'nothing is written for a refused input').toBe('');
      });
    }
  }
});
