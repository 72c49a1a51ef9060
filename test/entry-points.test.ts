/**
 * The package's entry points, resolved through package.json "exports" as an installed package is:
 * `import 'ecr-engine'` loads scoring only (none of the gateway's, queue's, cache's, columnar or
 * chart dependencies, and not WebGPU until a GPU run), and each subpath exposes what docs/library.md
 * says it does. Needs the build (npm test builds first).
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT } from './helpers/cli.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'ecr-entry-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
mkdirSync(path.join(dir, 'node_modules'));
symlinkSync(ROOT, path.join(dir, 'node_modules', 'ecr-engine'), 'dir');
writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
// A module hook that reports every file the import loads, so the test sees ESM and CommonJS packages alike.
writeFileSync(
  path.join(dir, 'hooks.mjs'),
  `import { writeSync } from 'node:fs';
export async function load(url, context, next) { if (url.startsWith('file:')) writeSync(2, 'LOADED ' + url + '\\n'); return next(url, context); }
`,
);
writeFileSync(path.join(dir, 'register.mjs'), `import { register } from 'node:module'; register('./hooks.mjs', import.meta.url);`);

/** The packages (under node_modules) that importing `specifier` loads, and the module's export names. */
function load(specifier: string): { packages: string[]; exports: string[] } {
  const r = spawnSync(
    process.execPath,
    [
      '--import',
      './register.mjs',
      '--input-type=module',
      '-e',
      `const m = await import(${JSON.stringify(specifier)}); console.log(JSON.stringify(Object.keys(m)));`,
    ],
    { cwd: dir, encoding: 'utf8' },
  );
  expect(r.status, r.stderr).toBe(0);
  const packages = new Set<string>();
  for (const line of r.stderr.split('\n')) {
    const m = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(line.replace(/.*\/ecr-engine\//, '/'));
    if (line.startsWith('LOADED ') && m && !line.includes(`${path.sep}ecr-engine${path.sep}dist${path.sep}`)) packages.add(m[1]);
  }
  return { packages: [...packages].sort(), exports: JSON.parse(r.stdout) as string[] };
}

const HEAVY = [
  'ioredis',
  'bullmq',
  'fastify',
  'prom-client',
  'apache-arrow',
  'parquet-wasm',
  '@duckdb/node-api',
  'vega',
  'vega-lite',
  'webgpu',
  'pino',
  'openai',
];

describe('package entry points', () => {
  it('ecr-engine loads scoring only: none of the heavy dependencies', () => {
    const { packages, exports } = load('ecr-engine');
    expect(packages.filter((p) => HEAVY.includes(p))).toEqual([]);
    expect(exports).toEqual(expect.arrayContaining(['scoreBatch', 'scoreRecords', 'resolveConfig', 'InputError', 'getBackend', 'disposeBackends']));
    // Internals stay internal.
    for (const name of ['finishBatch', 'GroupSelector', 'LoopbackServer', 'EcrPipeline', 'RedisStore', 'lockKey', 'redisKey', 'sleep', 'syntheticBatch'])
      expect(exports).not.toContain(name);
  });

  it.each([
    ['ecr-engine/pipeline', ['EcrPipeline', 'OpenAICompatibleProvider', 'generateCandidates', 'selectBest', 'prometheusText']],
    ['ecr-engine/server', ['startGateway', 'buildGateway', 'resolveServeConfig', 'shutdown', 'closeOnSignal']],
    ['ecr-engine/calibration', ['runCalibration', 'runMaturity', 'renderReport', 'readCalibrationSet', 'auroc']],
    ['ecr-engine/cache', ['RedisStore']],
    ['ecr-engine/testing', ['LoopbackServer', 'syntheticBatch', 'generateCalibrationData']],
  ])('%s exposes %j', (specifier, names) => {
    expect(load(specifier).exports).toEqual(expect.arrayContaining(names));
  });

  it('a module that is not an entry point cannot be imported', () => {
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', `await import('ecr-engine/dist/engine/score-batch.js')`], {
      cwd: dir,
      encoding: 'utf8',
    });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/ERR_PACKAGE_PATH_NOT_EXPORTED/);
  });
});
