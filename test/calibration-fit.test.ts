/** The held-out split, the maturity checks' numbers (PCA, drift, EVB floor) and the audit-log round trip. */
import { describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Matrix, SingularValueDecomposition } from 'ml-matrix';
import { resolveConfig } from '../src/core/config.js';
import { runCalibration, DEFAULT_CALIBRATE_OPTIONS, type CalibrateOptions } from '../src/calibration/calibrate.js';
import { readCalibrationSet, type CalibrationRecord, type CalibrationSet, type MetricVector } from '../src/calibration/labelled-input.js';
import { dialogueDrift, explainedVarianceRatios, runMaturity } from '../src/calibration/maturity.js';
import { formatAuditLogLine } from '../src/core/audit-line.js';
import { pCorrectOf } from '../src/core/probability-map.js';
import { parseObjective } from '../src/calibration/tau-search.js';
import { auroc, seededRandom } from '../src/calibration/statistics.js';
import { scoreRecords } from '../src/engine/score-records.js';
import { ROOT } from './helpers/cli.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'ecr-calfit-'));
const provenance = { file: 'x', sha256: '0'.repeat(64), records: 0, groups: 0, labelled: 0, date: '2026-01-01' };

/** Metrics whose CCI under equal weights is exactly c. */
const metricsFor = (c: number): MetricVector => [1 - c, 1 - c, c, c, 1 - c];

function setOf(groups: [number, boolean][][]): CalibrationSet {
  const records: CalibrationRecord[] = [];
  groups.forEach((members, g) =>
    members.forEach(([c, label], k) =>
      records.push({
        line: records.length + 1,
        id: `${g}/${k}`,
        group: g,
        groupIndex: g,
        metrics: metricsFor(c),
        baseScore: Number.NaN,
        label,
      }),
    ),
  );
  return { kind: 'scored', file: 'test', sha256: '0'.repeat(64), records, groupCount: groups.length, labelled: records.length, labelField: 'correct' };
}

describe('held-out split', () => {
  // Fitting groups: correct answers at CCI 0.8 and 0.6, wrong at 0.4: the best F1 tau is 0.6.
  // Held-out groups: correct at 0.8, wrong at 0.6 and 0.4: fitted there, tau would be 0.8.
  const fitGroup: [number, boolean][] = [
    [0.8, true],
    [0.6, true],
    [0.4, false],
  ];
  const evalGroup: [number, boolean][] = [
    [0.8, true],
    [0.6, false],
    [0.4, false],
  ];
  const set = setOf([fitGroup, fitGroup, fitGroup, fitGroup, evalGroup, evalGroup]);
  const heldOut = Uint8Array.from([0, 0, 0, 0, 1, 1]);
  const opts: CalibrateOptions = { ...DEFAULT_CALIBRATE_OPTIONS, objective: parseObjective('f1'), bootstrapReplicates: 50, heldOut };
  const config = resolveConfig({});

  it('fits tau and the probability map on the fitting groups only, and scores them on the held-out groups only', () => {
    const r = runCalibration(set, config, opts, provenance);
    const L = r.labelled!;
    expect(r.chosen.tau).toBe(0.6);
    expect(r.chosen.admission).toBeCloseTo(12 / 18, 15); // 0.8 and 0.6 of every group
    expect(r.chosen.fallback).toBe(0);
    expect(L.search.fitValue).toBe(1);
    // Held out at tau 0.6: per group TP 1, FP 1 -> F1 = 2/3, not the 1 an evaluation on fitted data would claim.
    expect(L.search.heldOutValue).toBeCloseTo(2 / 3, 12);
    expect(L.fitRecords).toBe(12);
    expect(L.heldOutRecords).toBe(6);
    // The map learnt that 0.6 is correct (fitting data); the held-out data says the opposite.
    const calibrated = resolveConfig(r.outputConfig);
    expect(pCorrectOf(calibrated, 0.6)).toBe(1);
    // Selection lift on the 2 held-out groups: ECR picks 0.8 (correct) in both.
    expect(L.lift!.groups).toBe(2);
    expect(L.lift!.selected.value).toBe(1);
  });

  it('gives the other answer when the roles are swapped (fitting on the evaluation data)', () => {
    const swapped = runCalibration(set, config, { ...opts, heldOut: heldOut.map((x) => 1 - x) }, provenance);
    expect(swapped.chosen.tau).toBeCloseTo(0.8, 12);
    expect(swapped.chosen.admission).toBeCloseTo(6 / 18, 12);
    expect(pCorrectOf(resolveConfig(swapped.outputConfig), 0.6)).toBe(0);
  });

  it.each([false, true])('labels all %s: warns, tau from the target admission, no probability map saved', (label) => {
    const oneClass = setOf(
      [0, 1, 2, 3, 4, 5].map((g) => [
        [0.9 - 0.05 * g, label],
        [0.5 - 0.05 * g, label],
        [0.3, label],
      ]),
    );
    for (const objective of ['f1', 'auroc']) {
      const r = runCalibration(oneClass, config, { ...opts, objective: parseObjective(objective), searchWeights: true }, provenance);
      // F1 is 0 (all false) or 1 at the lowest CCI (all true) everywhere: the lowest CCI is no answer.
      expect(r.chosen.tauSource).toBe('target-admission');
      expect(r.chosen.tau).toBe(r.admission.tau);
      expect(r.chosen.weights).toEqual(config.weights);
      expect(r.outputConfig.calibration).toBeUndefined();
      expect(pCorrectOf(resolveConfig(r.outputConfig), 0.9)).toBeNull();
      expect(r.labelled!.probability).toBeNull();
      expect(r.labelled!.search.fitValue).toBeNaN();
      expect(r.warnings).toEqual([expect.stringContaining(`one label class on the fitting groups (all 12 labels are ${label})`)]);
      expect(r.warnings[0]).toContain('tau falls back to the target admission');
    }
  });

  it('a fit with both classes warns of nothing', () => {
    expect(runCalibration(set, config, opts, provenance).warnings).toEqual([]);
  });

  it('weight search never looks at the held-out groups', () => {
    // On the fitting groups only TS separates correct from wrong; on the held-out groups only ES does.
    const records: CalibrationRecord[] = [];
    const add = (g: number, m: MetricVector, label: boolean) =>
      records.push({ line: records.length + 1, id: records.length, group: g, groupIndex: g, metrics: m, baseScore: Number.NaN, label });
    for (let g = 0; g < 6; g++) {
      const fit = g < 4;
      add(g, fit ? [0.5, 0.5, 0.9, 0.5, 0.5] : [0.5, 0.5, 0.5, 0.9, 0.5], true);
      add(g, fit ? [0.5, 0.5, 0.1, 0.5, 0.5] : [0.5, 0.5, 0.5, 0.1, 0.5], false);
      add(g, fit ? [0.5, 0.5, 0.5, 0.9, 0.5] : [0.5, 0.5, 0.9, 0.5, 0.5], false);
    }
    const s: CalibrationSet = { kind: 'scored', file: 't', sha256: '0'.repeat(64), records, groupCount: 6, labelled: records.length, labelField: 'correct' };
    const r = runCalibration(
      s,
      config,
      { ...opts, objective: parseObjective('auroc'), searchWeights: true, heldOut: Uint8Array.from([0, 0, 0, 0, 1, 1]) },
      provenance,
    );
    const w = r.chosen.weights;
    expect(w[2]).toBeGreaterThan(w[3]); // TS favoured: what the fitting data shows
    expect(r.labelled!.search.fitValue).toBe(1);
    expect(r.labelled!.search.heldOutValue).toBeLessThan(1);
  });
});

describe('maturity numbers', () => {
  it('M1 decides from 59 records on (the least sample whose maximum bounds a 95th percentile), not below', () => {
    const scaled = resolveConfig({ shrinkTarget: 'scaled-identity' });
    const m1 = (n: number) =>
      runMaturity(setOf([Array.from({ length: n }, () => [0.9, true] as [number, boolean])]), scaled).checks.find((c) => c.id === 'M1')!;
    const few = m1(58);
    expect(few.verdict).toBe('INSUFFICIENT-DATA');
    expect(few.sample).toEqual({ size: 58, minimum: 59, unit: 'records' });
    expect(few.measurements).toHaveLength(3); // measured all the same, for information
    expect(m1(59).verdict).toBe('PASS');
    expect(runMaturity(setOf([[[0.9, true]]]), scaled).exitCode).toBe(4);
  });

  it('M3: explained variance equals the squared singular values of the centred data, computed directly', () => {
    const rnd = seededRandom(11);
    const rows = Array.from({ length: 300 }, () => {
      const z = rnd();
      return [z, 0.9 * z + 0.1 * rnd(), 0.5 * rnd(), 0.2 * rnd(), 0.9 - 0.8 * z];
    });
    const ratios = explainedVarianceRatios(rows, 5);
    const x = new Matrix(rows);
    const means = x.mean('column');
    const centred = x.clone().subRowVector(means);
    const s = new SingularValueDecomposition(centred, { autoTranspose: true }).diagonal.map((v) => v * v).sort((a, b) => b - a);
    const total = s.reduce((a, b) => a + b, 0);
    expect(ratios).toHaveLength(5);
    ratios.forEach((r, i) => expect(Math.abs(r - s[i] / total)).toBeLessThan(1e-10));
    expect(ratios[0]).toBeGreaterThan(0.6); // the rows were built around one factor
  });

  it('M2: drift is the distance of consecutive turn states over sqrt(m)', () => {
    const rec = (turn: number, row: number[]): CalibrationRecord => ({
      line: turn,
      id: turn,
      group: turn,
      groupIndex: turn,
      metrics: [0, 0, 1, 1, 0],
      baseScore: Number.NaN,
      label: null,
      dialogue: 'd',
      turn,
      steps: [row, row],
    });
    const records = [rec(2, [0.5, 0.6]), rec(1, [0.2, 0.2]), rec(3, [0.5, 0.6])];
    const drift = dialogueDrift(records, new Set([0, 1, 2]));
    expect(drift).toHaveLength(2);
    expect(drift[0]).toBeCloseTo(0.5 / Math.SQRT2, 15); // |(0.3, 0.4)| = 0.5
    expect(drift[1]).toBe(0);
  });

  it('M1: the floor-free value is tr(S)/m, which scaled-identity shrinkage reports as EVB itself', async () => {
    const file = path.join(ROOT, 'data', 'calibration-synthetic.jsonl');
    const identity = resolveConfig({});
    const scaled = resolveConfig({ shrinkTarget: 'scaled-identity' });
    const a = runMaturity(await readCalibrationSet(file, { config: identity, backend: 'cpu' }), identity);
    const b = runMaturity(await readCalibrationSet(file, { config: scaled, backend: 'cpu' }), scaled);
    const m1 = a.checks.find((c) => c.id === 'M1')!;
    const free = a.checks.find((c) => c.id === 'M1-floor-free')!;
    const plain = b.checks.find((c) => c.id === 'M1')!;
    expect(m1.verdict).toBe('FAIL');
    expect(m1.note).toMatch(/floor of lambda = 0.4/);
    expect(m1.note).toMatch(/cannot pass/);
    expect(free.verdict).toBe('PASS');
    expect(Math.abs(free.measurements[0].value - plain.measurements[0].value)).toBeLessThan(1e-12);
    expect(Math.abs(free.measurements[2].value - plain.measurements[2].value)).toBeLessThan(1e-12);
    expect(b.checks.some((c) => c.id === 'M1-floor-free')).toBe(false);
    expect(a.exitCode).toBe(3);
    expect(b.exitCode).toBe(0);
  });
});

describe('audit log', () => {
  it('lines written by formatAuditLogLine read back as scored records with the same numbers', async () => {
    const raw = path.join(ROOT, 'data', 'calibration-synthetic.jsonl');
    const config = resolveConfig({});
    const fromRaw = await readCalibrationSet(raw, { config, backend: 'cpu' });
    const trajectories = fromRaw.records.map((r) => ({ id: r.id, group: r.group as string, steps: r.steps!, embeddings: r.embeddings }));
    const scored = await scoreRecords(trajectories, config, { backend: 'cpu' });
    const lines = scored.results.map((r, i) =>
      formatAuditLogLine({
        time: '2026-12-01T00:00:00.000Z',
        group: r.group!,
        id: r.id,
        EVB: r.EVB,
        CR: r.CR,
        TS: r.TS,
        ES: r.ES,
        PD: r.PD,
        CCI: r.CCI,
        admissible: r.admissible,
        selected: r.selected,
        reason: 'best-admissible',
        tau: config.tau,
        correct: fromRaw.records[i].label!,
      }),
    );
    expect(lines[0]).not.toMatch(/steps|prompt/);
    expect(Object.keys(JSON.parse(lines[0]))).toEqual([
      'time',
      'group',
      'id',
      'EVB',
      'CR',
      'TS',
      'ES',
      'PD',
      'CCI',
      'admissible',
      'selected',
      'reason',
      'tau',
      'correct',
    ]);
    const log = path.join(tmp, 'audit.jsonl');
    writeFileSync(log, lines.join(''));
    const fromLog = await readCalibrationSet(log, { config });
    expect(fromLog.kind).toBe('scored');
    expect(fromLog.groupCount).toBe(fromRaw.groupCount);
    const cci = (s: CalibrationSet) =>
      s.records.map((r) => 0.2 * (1 - r.metrics[0]) + 0.2 * (1 - r.metrics[1]) + 0.2 * r.metrics[2] + 0.2 * r.metrics[3] + 0.2 * (1 - r.metrics[4]));
    const labels = (s: CalibrationSet) => s.records.map((r) => r.label!);
    expect(auroc(cci(fromLog), labels(fromLog)).value).toBe(auroc(cci(fromRaw), labels(fromRaw)).value);
  });
});

describe('config: calibration and provenance keys', () => {
  it('are accepted, validated, and name the bad field', () => {
    const ok = resolveConfig({ calibration: { method: 'isotonic', cci: [0.2, 0.8], p: [0.1, 0.9] } });
    expect(pCorrectOf(ok, 0.5)).toBeCloseTo(0.5, 15);
    expect(pCorrectOf(resolveConfig({}), 0.5)).toBeNull();
    expect(pCorrectOf(resolveConfig({ calibration: { method: 'platt', a: 2, b: -1 } }), 0.5)).toBeCloseTo(0.5, 15);
    expect(() => resolveConfig({ calibration: { method: 'isotonic', cci: [0.2, 0.8], p: [0.9, 0.1] } })).toThrow(
      'config "calibration.p[1]": must be non-decreasing (an isotonic map)',
    );
    expect(() => resolveConfig({ calibration: { method: 'isotonic', cci: [0.8, 0.2], p: [0.1, 0.9] } })).toThrow(
      'config "calibration.cci[1]": must be strictly increasing',
    );
    expect(() => resolveConfig({ calibration: { method: 'spline' } })).toThrow(/"method" must be "isotonic" or "platt"/);
    expect(() => resolveConfig({ calibration: { method: 'platt', a: 1, b: 0, c: 2 } })).toThrow(/unknown key "c"/);
    expect(() => resolveConfig({ provenance: { ...provenance, sha256: 'abc' } })).toThrow('config "provenance.sha256": must be 64 lowercase hex digits');
    expect(resolveConfig({ provenance }).provenance).toEqual(provenance);
    expect(() => resolveConfig({ calibrationn: {} })).toThrow(/unknown key/);
  });
});
