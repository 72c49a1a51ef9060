/**
 * What a user sees when the WebGPU backend opens its adapter: Dawn's own stderr lines (the Vulkan
 * loader probe, the "artificially reduced" limits) stay off the terminal unless ECR_DEBUG=webgpu,
 * the CLI names the chosen adapter in exactly one line, and forcing an adapter that is not there
 * is a typed, one-line BackendUnavailableError. Runs the compiled CLI (npm test builds first).
 *
 * A Node parent's spawn gives the child a socket as stderr, which no capture can reopen
 * (src/backends/webgpu/device/native-stderr.ts), so the CLI runs here with stderr as a terminal would give it to the
 * process: a real pipe (through sh), or a file opened for appending.
 */
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BackendUnavailableError } from '../src/core/errors.js';
import { vulkanLoaderPresent } from '../src/backends/webgpu/device/adapter.js';
import { resolveConfig } from '../src/core/config.js';
import { webGpuOptionsFromEnv } from '../src/cli/backend-env.js';
import { dawnMessages } from '../src/backends/webgpu/device/native-stderr.js';
import { newBackend, webGpuGate } from './webgpu-gate.js';

const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const CLI = path.join(ROOT, 'dist', 'cli.js');
const gate = await webGpuGate();
const SLOW = 600_000; // a loaded machine starts Dawn slowly; nothing here depends on speed
const BENCH = [CLI, 'bench', '--backend', 'webgpu', '--n', '1000', '--reps', '1', '--warmup', '0', '--json'];

function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const { ECR_DEBUG: _drop, ...base } = process.env;
  return { ...base, ...extra };
}

/** Runs node with `args`, its stderr a file opened for appending; returns status, stdout and that file's text. */
function withAppendedStderr(args: string[], env: NodeJS.ProcessEnv) {
  const dir = mkdtempSync(path.join(tmpdir(), 'ecr-stderr-test-'));
  const file = path.join(dir, 'stderr.txt');
  const fd = openSync(file, 'a');
  try {
    const r = spawnSync(process.execPath, args, { encoding: 'utf8', timeout: SLOW, env, stdio: ['ignore', 'pipe', fd] });
    return { status: r.status, stdout: r.stdout, stderr: readFileSync(file, 'utf8') };
  } finally {
    closeSync(fd);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Runs node with `args` through sh, its stderr a pipe into cat (stdout discarded); returns what came through the pipe. */
function withPipedStderr(args: string[], env: NodeJS.ProcessEnv) {
  const quoted = [process.execPath, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  const r = spawnSync('sh', ['-c', `${quoted} 2>&1 >/dev/null | cat`], { encoding: 'utf8', timeout: SLOW, env });
  return { status: r.status, stderr: r.stdout };
}

describe('native stderr capture (no device needed)', () => {
  const script = (body: string) => [
    '--input-type=module',
    '-e',
    `import { withNativeStderrCaught } from ${JSON.stringify(path.join(ROOT, 'dist/backends/webgpu/device/native-stderr.js'))}; import { writeSync } from 'node:fs'; ${body}`,
  ];
  it(
    'catches raw writes to fd 2 during the call, and fd 2 reaches the same target afterwards',
    () => {
      // writeSync(2) is a raw write(2) on descriptor 2, as Dawn's fprintf(stderr) is.
      const body = `writeSync(2, 'before\\n'); const r = withNativeStderrCaught(() => { writeSync(2, 'Warning: probe\\n    at operator() (/x/BackendVk.cpp:368)\\n'); return 42; }); writeSync(2, 'after\\n'); console.log(JSON.stringify(r));`;
      for (const run of [withAppendedStderr, withPipedStderr]) {
        const r = run(script(body), cleanEnv());
        expect(r.stderr).toBe('before\nafter\n');
        if ('stdout' in r) {
          const { result, caught } = JSON.parse(r.stdout as string);
          expect(result).toBe(42);
          expect(dawnMessages(caught)).toEqual(['probe']);
        }
      }
    },
    SLOW,
  );

  it(
    'leaves a regular file opened without O_APPEND alone (its offset could not be restored)',
    () => {
      const dir = mkdtempSync(path.join(tmpdir(), 'ecr-stderr-test-'));
      const file = path.join(dir, 'stderr.txt');
      const fd = openSync(file, 'w');
      try {
        const body = `const r = withNativeStderrCaught(() => { writeSync(2, 'through\\n'); return 1; }); writeSync(2, 'after\\n'); console.log(JSON.stringify(r));`;
        const r = spawnSync(process.execPath, script(body), { encoding: 'utf8', timeout: SLOW, stdio: ['ignore', 'pipe', fd] });
        expect(JSON.parse(r.stdout)).toEqual({ result: 1, caught: '' });
        expect(readFileSync(file, 'utf8')).toBe('through\nafter\n');
      } finally {
        closeSync(fd);
        rmSync(dir, { recursive: true, force: true });
      }
    },
    SLOW,
  );

  it('looks for the Vulkan loader where the dynamic linker would', () => {
    if (process.platform !== 'linux') return expect(vulkanLoaderPresent()).toBe(true);
    const dir = mkdtempSync(path.join(tmpdir(), 'ecr-vk-test-'));
    try {
      closeSync(openSync(path.join(dir, 'libvulkan.so.1'), 'w'));
      expect(vulkanLoaderPresent(`/nonexistent:${dir}`)).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe.skipIf(!gate.available)(`adapter discovery (${gate.available ? gate.adapter : `skipped: ${gate.reason}`})`, () => {
  it(
    'ecr bench --backend webgpu: no Dawn warnings on stderr, exactly one adapter line (pipe and appended file)',
    () => {
      for (const r of [withAppendedStderr(BENCH, cleanEnv()), withPipedStderr(BENCH, cleanEnv())]) {
        expect(r.status, r.stderr).toBe(0);
        expect(r.stderr).not.toMatch(/Warning:/);
        expect(r.stderr).not.toMatch(/^\s+at /m);
        const lines = r.stderr.split('\n').filter((l) => l !== '');
        expect(lines, r.stderr).toHaveLength(1);
        expect(lines[0]).toMatch(/^ecr: webgpu adapter: (Vulkan|Metal|D3D12|OpenGL ES) \(.+\), (software|hardware)/);
      }
    },
    SLOW,
  );

  it(
    "with ECR_DEBUG=webgpu Dawn's own lines come through (the limits Dawn reduces on every adapter)",
    () => {
      const r = withPipedStderr(BENCH, cleanEnv({ ECR_DEBUG: 'webgpu' }));
      expect(r.status, r.stderr).toBe(0);
      expect(r.stderr).toMatch(/Warning: .*artificially reduced/);
      expect(r.stderr.split('\n').filter((l) => l.startsWith('ecr: webgpu adapter: '))).toHaveLength(1);
    },
    SLOW,
  );

  it(
    'reportAdapter is called once, with the choice, at the first compute (not when the device is only probed)',
    async () => {
      const lines: string[] = [];
      const backend = newBackend({ reportAdapter: (choice) => lines.push(choice) });
      try {
        const d = await backend.describe();
        expect(lines).toEqual([]);
        const batch = { n: 2, t: 3, m: 2, steps: new Float64Array(12).fill(0.5) };
        await backend.computeMetrics(batch, resolveConfig({}));
        await backend.computeMetrics(batch, resolveConfig({}));
        expect(lines).toEqual([d.choice]);
      } finally {
        await backend.dispose();
      }
    },
    SLOW,
  );

  it(
    'a library user sees no adapter line (only the CLI asks for it)',
    () => {
      const body = `import(${JSON.stringify(path.join(ROOT, 'dist/engine/score-batch.js'))}).then(async ({ scoreBatch }) => { const r = await scoreBatch({ n: 2, t: 3, m: 2, steps: new Float64Array(12).fill(0.5) }, {}, { backend: 'webgpu' }); console.log(r.backend); (await import(${JSON.stringify(path.join(ROOT, 'dist/backends/registry.js'))})).disposeBackends(); })`;
      const r = withPipedStderr(['--input-type=module', '-e', body], cleanEnv());
      expect(r.status).toBe(0);
      expect(r.stderr).toBe('');
    },
    SLOW,
  );

  it(
    'forcing the native adapter where there is none is one line of BackendUnavailableError',
    async () => {
      // As `--adapter native` hands it down (src/cli/backend-env.ts).
      const backend = newBackend(webGpuOptionsFromEnv({}, { adapter: 'native', reportAdapter: false }));
      try {
        const d = await backend.describe();
        expect(d.kind).toBe('native'); // a machine with a GPU: it opened
        expect(d.choice).toMatch(/forced by --adapter/);
      } catch (err) {
        expect(err).toBeInstanceOf(BackendUnavailableError);
        expect((err as Error).message).not.toContain('\n');
        expect((err as Error).message).toMatch(/asked for native.*no (Vulkan|Metal|D3D12) adapter/);
      } finally {
        await backend.dispose();
      }
    },
    SLOW,
  );
});
