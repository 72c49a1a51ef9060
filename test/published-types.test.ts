/**
 * The published declarations (dist/index.d.ts and everything it reaches) compile in a strict
 * consumer project that has no @types/node: no NodeJS.* namespace, Buffer or node:* types in the
 * public API. Needs the build (npm test builds first).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT } from './helpers/cli.js';

const TSC = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
const dir = mkdtempSync(path.join(os.tmpdir(), 'ecr-consumer-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// A browser or bundler project: DOM and ES2022 libraries, no ambient @types packages at all.
// Type-checking our .d.ts too (skipLibCheck false) is the point.
const TSCONFIG = {
  compilerOptions: {
    strict: true,
    noEmit: true,
    skipLibCheck: false,
    types: [],
    target: 'ES2022',
    lib: ['ES2022', 'DOM'],
    module: 'NodeNext',
    moduleResolution: 'NodeNext',
  },
  files: ['main.ts'],
};

// Uses every entry point but the gateway's (the package root and its subpaths), so the declarations
// they reach are checked with their types. `ecr-engine/server` hands out a Fastify instance, whose
// types are Node's: it is checked on its own below, in the same project with Node's types allowed.
const MAIN = `import { scoreBatch, scoreRecords, InputError, type BatchResult, type RecordsResult } from 'ecr-engine';
import { EcrPipeline, OpenAICompatibleProvider } from 'ecr-engine/pipeline';
import { runCalibration, runMaturity } from 'ecr-engine/calibration';
import { RedisStore } from 'ecr-engine/cache';
import { LoopbackServer, syntheticBatch } from 'ecr-engine/testing';
const batch: Promise<BatchResult> = scoreBatch({ n: 1, t: 2, m: 1, steps: new Float64Array([0.1, 0.2]) }, { preset: 'compliance' }, { backend: 'cpu' });
const records: Promise<RecordsResult> = scoreRecords([{ id: 'a', steps: [[0.1], [0.2]] }]);
export { batch, records, EcrPipeline, OpenAICompatibleProvider, InputError, runCalibration, runMaturity, RedisStore, LoopbackServer, syntheticBatch };
`;

const SERVER = `import { startGateway, resolveServeConfig, shutdown, type ServeConfig, type BuiltGateway } from 'ecr-engine/server';
const start: (c: ServeConfig) => Promise<BuiltGateway & { url: string }> = startGateway;
export { start, resolveServeConfig, shutdown };
`;

function setUpConsumer(): void {
  writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
  writeFileSync(path.join(dir, 'tsconfig.json'), JSON.stringify(TSCONFIG, null, 2));
  writeFileSync(path.join(dir, 'main.ts'), MAIN);
  writeFileSync(path.join(dir, 'server.ts'), SERVER);
  writeFileSync(
    path.join(dir, 'tsconfig.server.json'),
    JSON.stringify({ ...TSCONFIG, compilerOptions: { ...TSCONFIG.compilerOptions, types: undefined }, files: ['server.ts'] }, null, 2),
  );
  mkdirSync(path.join(dir, 'node_modules'));
  // Resolved as an installed package would be: through package.json "exports" -> "types".
  symlinkSync(ROOT, path.join(dir, 'node_modules', 'ecr-engine'), 'dir');
}

describe('the published .d.ts', () => {
  setUpConsumer();
  // One tsc run: its diagnostics, then (--listFiles) every file in the program.
  const r = spawnSync(process.execPath, [TSC, '-p', dir, '--pretty', 'false', '--listFiles'], { encoding: 'utf8', cwd: dir });
  const lines = (r.stdout + r.stderr).split('\n').filter((l) => l.trim() !== '');

  it('compile in a strict project without @types/node', () => {
    expect(lines.filter((l) => /error TS\d+/.test(l))).toEqual([]);
    expect(r.status).toBe(0);
  });

  it('bring in no @types package (a /// <reference types> in our output would pull @types/node back in)', () => {
    expect(lines.some((f) => f.endsWith(`${path.sep}dist${path.sep}index.d.ts`))).toBe(true);
    expect(lines.filter((f) => f.includes(`node_modules${path.sep}@types${path.sep}`) || f.includes(`${path.sep}@webgpu${path.sep}`))).toEqual([]);
  });

  it("ecr-engine/server compiles in a strict project (with Node's types, which Fastify's declarations need)", () => {
    const s = spawnSync(process.execPath, [TSC, '-p', path.join(dir, 'tsconfig.server.json'), '--pretty', 'false'], { encoding: 'utf8', cwd: dir });
    expect((s.stdout + s.stderr).split('\n').filter((l) => /error TS\d+/.test(l))).toEqual([]);
    expect(s.status).toBe(0);
  });
});
