/** Loads the golden fixtures (copied from ../shared/fixtures so the project stands alone). */
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkRecord, type CheckedRecord, type TrajectoryRecord } from '../../src/engine/record.js';
import { ShapeBucket } from '../../src/engine/shape-buckets.js';
import { GroupKeys } from '../../src/engine/group-keys.js';
import { expect } from 'vitest';
import type { Batch } from '../../src/core/batch.js';
import type { BatchResult } from '../../src/engine/score-batch.js';

export const FIXTURE_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures');

export interface ExpectedRow {
  id: string;
  group: string;
  EVB: number;
  CR: number;
  TS: number;
  ES: number;
  PD: number;
  CCI: number;
  admissible: boolean;
  selected: boolean;
}

export interface Fixture {
  name: string;
  inputPath: string;
  configPath: string;
  config: Record<string, unknown>;
  records: CheckedRecord[];
  expected: ExpectedRow[];
  tau: number;
}

const jsonl = (file: string) =>
  readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l));

/** Fixtures beyond the shared ones' shapes (T = 24, m = 40, d = 1024, A = 64), from cpu-reference (generate.mjs there). */
export const LARGE_SHAPE_FIXTURE_DIR = path.join(FIXTURE_DIR, 'large-shapes');

export function loadFixtures(dir = FIXTURE_DIR): Fixture[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.input.jsonl'))
    .sort()
    .map((f) => {
      const name = f.replace('.input.jsonl', '');
      const inputPath = path.join(dir, f);
      const configPath = path.join(dir, `${name}.config.json`);
      const config = JSON.parse(readFileSync(configPath, 'utf8'));
      const records = jsonl(inputPath).map((r, i) => checkRecord(r, { line: i + 1 }, i + 1));
      return { name, inputPath, configPath, config, records, expected: jsonl(path.join(dir, `${name}.expected.jsonl`)), tau: config.tau ?? 0.65 };
    });
}

/** Packs a fixture (all fixtures have one shape per file) into a Batch with group indices. */
export function fixtureBatch(fx: Fixture): { batch: Batch; groupNames: string[]; ids: string[] } {
  const keys = new GroupKeys();
  const bucket = ShapeBucket.of(fx.records[0], fx.records.length);
  fx.records.forEach((r, i) => bucket.addRecord(r, i));
  const groups = Int32Array.from(fx.records, (r) => keys.indexOf(r.group));
  const baseScore = Float64Array.from(fx.records, (r) => r.baseScore ?? Number.NaN);
  return { batch: { ...bucket.toBatch(), groups, baseScore }, groupNames: keys.keys.map(String), ids: fx.records.map((r) => String(r.id)) };
}

/**
 * True when a selection flag may legitimately differ at tolerance `tol`: the CCI is within 2 tol
 * of tau, or of another CCI in its group (the rule of ../shared/tools/compare-scores.py).
 */
export function selectionAmbiguous(fx: Fixture, i: number, tol: number): boolean {
  const e = fx.expected[i];
  if (Math.abs(e.CCI - fx.tau) <= 2 * tol) return true;
  return fx.expected.filter((o) => o.group === e.group && Math.abs(o.CCI - e.CCI) <= 2 * tol).length > 1;
}

/** Back to the plain JSON form a caller of the object API would pass. */
export function plainRecord(r: CheckedRecord): TrajectoryRecord {
  const { id, group, steps, embeddings, expected, realized, policy, baseScore } = r;
  return {
    id,
    steps,
    ...(group !== null ? { group } : {}),
    ...(embeddings ? { embeddings } : {}),
    ...(expected ? { expected, realized } : {}),
    ...(policy ? { policy } : {}),
    ...(baseScore !== undefined ? { baseScore } : {}),
  };
}

/** Asserts a batch result against a fixture's golden rows: metrics within `tol`, flags unless ambiguous. */
export function expectMatchesFixture(res: BatchResult, fx: Fixture, tol: number): void {
  fx.expected.forEach((e, i) => {
    expect(Math.abs(res.metrics.evb[i] - e.EVB), `EVB ${e.id}`).toBeLessThanOrEqual(tol);
    expect(Math.abs(res.metrics.cr[i] - e.CR), `CR ${e.id}`).toBeLessThanOrEqual(tol);
    expect(Math.abs(res.metrics.ts[i] - e.TS), `TS ${e.id}`).toBeLessThanOrEqual(tol);
    expect(Math.abs(res.metrics.es[i] - e.ES), `ES ${e.id}`).toBeLessThanOrEqual(tol);
    expect(Math.abs(res.metrics.pd[i] - e.PD), `PD ${e.id}`).toBeLessThanOrEqual(tol);
    expect(Math.abs(res.metrics.cci[i] - e.CCI), `CCI ${e.id}`).toBeLessThanOrEqual(tol);
    if (!selectionAmbiguous(fx, i, tol)) {
      expect(res.admissible[i] === 1, `admissible ${e.id}`).toBe(e.admissible);
      expect(res.selected[i] === 1, `selected ${e.id}`).toBe(e.selected);
    }
  });
}
