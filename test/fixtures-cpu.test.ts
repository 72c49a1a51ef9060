/**
 * Golden fixtures through the library (packed batch and object API) for both CPU backends.
 * The float64 paths must agree within 1e-9 and reproduce every admissible/selected flag.
 */
import { describe, expect, it } from 'vitest';
import { scoreBatch } from '../src/engine/score-batch.js';
import { scoreRecords } from '../src/engine/score-records.js';
import { loadFixtures, fixtureBatch, plainRecord, selectionAmbiguous, expectMatchesFixture } from './helpers/fixtures.js';

const TOL = 1e-9;
const fixtures = loadFixtures();

describe.each(['cpu-reference', 'cpu'] as const)('fixtures on %s', (backend) => {
  it('has all seven fixtures', () => {
    expect(fixtures.map((f) => f.name)).toEqual([
      'embeddings-policy',
      'ledoit-wolf',
      'max-abs-change-weighted-cr',
      'paper-worked-example',
      'proxy-default',
      'scaled-identity',
      'ties-quantized',
    ]);
  });

  it.each(fixtures.map((f) => [f.name, f] as const))('%s via scoreBatch', async (_name, fx) => {
    const { batch, groupNames, ids } = fixtureBatch(fx);
    const res = await scoreBatch(batch, fx.config, { backend, groupNames, ids });
    expect(res.backend).toBe(backend);
    expectMatchesFixture(res, fx, TOL);
    // Every group's audit names the selected candidate and lists all members.
    res.groups.forEach((g) => {
      const audit = res.audit(g.group);
      expect(audit.candidates).toHaveLength(g.size);
      expect(audit.selectedId).toBe(ids[g.selectedIndex]);
      expect(audit.tau).toBe(fx.tau);
      expect(audit.reason).toBe(g.admissibleCount > 0 ? 'best-admissible' : 'fallback');
    });
  });

  it.each(fixtures.map((f) => [f.name, f] as const))('%s via scoreRecords (object API)', async (_name, fx) => {
    const res = await scoreRecords(fx.records.map(plainRecord), fx.config, { backend });
    expect(res.results.map((r) => String(r.id))).toEqual(fx.expected.map((e) => e.id));
    res.results.forEach((r, i) => {
      expect(Math.abs(r.CCI - fx.expected[i].CCI)).toBeLessThanOrEqual(TOL);
      if (!selectionAmbiguous(fx, i, TOL)) expect(r.selected).toBe(fx.expected[i].selected);
    });
    expect(res.audits.length).toBe(new Set(fx.expected.map((e) => e.group)).size);
  });
});
