/**
 * Audit logs from gateways that used the client's `x-request-id` as the group hold several
 * requests in one group: the same candidate ids again, and one `selected` per request.
 * `ecr calibrate` and `ecr maturity` refuse such input (exit 2) with one line naming the group,
 * the id and both lines (rows for Arrow), rather than computing lift over a mixture.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { tableFromArrays, tableToIPC } from 'apache-arrow';
import { describe, expect, it } from 'vitest';
import { formatAuditLogLine } from '../src/core/audit-line.js';
import { weightedCci, type MetricVector } from '../src/calibration/labelled-input.js';
import { resolveConfig } from '../src/core/config.js';
import { runCli } from './helpers/cli.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'ecr-cal-merged-'));
const weights = resolveConfig({}).weights;

/** One audit-log line as the gateway writes it, with a CCI the default weights produce. */
function line(group: string, id: number, selected: boolean, c: number): string {
  const m: MetricVector = [1 - c, 0.5 * (1 - c), c, c, 0.2 * (1 - c)];
  const CCI = weightedCci(m, weights);
  return formatAuditLogLine({
    time: '2026-01-01T00:00:00.000Z',
    group,
    id,
    EVB: m[0],
    CR: m[1],
    TS: m[2],
    ES: m[3],
    PD: m[4],
    CCI,
    admissible: CCI >= 0.65,
    selected,
    reason: 'best-admissible',
    tau: 0.65,
    correct: selected,
  });
}

/** Three prompts sent with `x-request-id: fixed-id`: candidates 0, 1, 2 of each, one selected per request. */
const merged = [0, 1, 2].flatMap((req) => [0, 1, 2].map((id) => line('fixed-id', id, id === req, 0.9 - 0.1 * id)));
/** Two requests per group as before, plus others that are fine. */
const fine = ['r1', 'r2', 'r3', 'r4'].flatMap((g) => [0, 1, 2].map((id) => line(g, id, id === 0, 0.9 - 0.1 * id)));

const write = (name: string, text: string | Uint8Array) => {
  const p = path.join(dir, name);
  writeFileSync(p, text);
  return p;
};

describe('merged groups in an audit log', () => {
  it('a repeated (group, id): both commands exit 2 naming the group, the id and both lines', () => {
    const file = write('merged.jsonl', [...fine, ...merged].join(''));
    for (const cmd of ['calibrate', 'maturity']) {
      const r = runCli([cmd, file]);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      // Line 13 is the first request's candidate 0; line 16 the second request's.
      expect(r.stderr).toContain('line 16, id "0", field "id": group "fixed-id" has id 0 twice (lines 13 and 16); a (group, id) pair must be unique');
      expect(r.stderr).toMatch(/x-request-id merged every request that sent the same one into one group/);
    }
  });

  it('two selected records in one group: exit 2 naming both lines', () => {
    // Distinct ids, as a gateway numbering candidates across requests would write them.
    const twoSelected = [line('g', 0, true, 0.9), line('g', 1, false, 0.8), line('g', 2, true, 0.85), line('g', 3, false, 0.7)];
    const file = write('two-selected.jsonl', [...fine, ...twoSelected].join(''));
    for (const cmd of ['calibrate', 'maturity']) {
      const r = runCli([cmd, file]);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toContain('line 15, id "2", field "selected": group "g" has a second selected record (lines 13 and 15); selection picks one per group');
    }
  });

  it('a non-boolean "selected" is bad input, named', () => {
    const bad = JSON.parse(fine[0]);
    bad.selected = 'yes';
    const r = runCli(['calibrate', write('bad-selected.jsonl', JSON.stringify(bad) + '\n')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('line 1, id "0", field "selected": must be true or false, got "yes"');
  });

  it('an Arrow file names rows', () => {
    const rows = [...fine, ...merged].map((l) => JSON.parse(l));
    const col = (k: string) => Float64Array.from(rows.map((o) => o[k]));
    const table = tableFromArrays({
      group: rows.map((o) => o.group as string),
      id: Float64Array.from(rows.map((o) => o.id)),
      EVB: col('EVB'),
      CR: col('CR'),
      TS: col('TS'),
      ES: col('ES'),
      PD: col('PD'),
      CCI: col('CCI'),
    });
    const r = runCli(['maturity', write('merged.arrow', tableToIPC(table, 'file'))]);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toContain('row 16, id "0", column "id": group "fixed-id" has id 0 twice (rows 13 and 16)');
  });

  it('the same ids in different groups, and one selected per group, are fine', () => {
    const r = runCli(['calibrate', write('fine.jsonl', fine.join('')), '--bootstrap', '20']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^records 12, groups 4, labelled 12$/m);
  });
});
