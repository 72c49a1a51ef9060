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
    strict: true, noEmit: true, skipLibCheck: false, types: [],
    target: 'ES2022', lib: ['ES2022', 'DOM'], module: 'NodeNext', moduleResolution: 'NodeNext',
  },
  files: ['main.ts'],
};

// Uses the main entry points, so the declarations they reach are checked with their types.
const MAIN = `import { scoreBatch, scoreRecords, EcrPipeline, InputError, type BatchResult, type RecordsResult } from 'ecr-engine';
const batch: Promise<BatchResult> = scoreBatch({ n: 1, t: 2, m: 1, steps: new Float64Array([0.1, 0.2]) }, { preset: 'compliance' }, { backend: 'cpu' });
const records: Promise<RecordsResult> = scoreRecords([{ id: 'a', steps: [[0.1], [0.2]] }]);
export { batch, records, EcrPipeline, InputError };
`;

function setUpConsumer(): void {
  writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
  writeFileSync(path.join(dir, 'tsconfig.json'), JSON.stringify(TSCONFIG, null, 2));
  writeFileSync(path.join(dir, 'main.ts'), MAIN);
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
});
