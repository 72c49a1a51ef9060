/** The paper's worked example (section 6) and the bundled demo that shows it. */
import { describe, expect, it } from 'vitest';
import { scoreRecords } from '../src/engine/score-records.js';
import { runCli } from './helpers/cli.js';

const A = [
  [0.8, 0.85, 1.0, 0.5],
  [0.75, 0.9, 1.0, 0.8],
  [0.8, 0.88, 1.0, 1.0],
];
const B = [
  [0.95, 0.6, 0.0, 0.0],
  [0.85, 0.5, 0.0, 0.2],
  [0.92, 0.4, 0.0, 0.0],
];

describe("the paper's worked example", () => {
  it.each(['cpu-reference', 'cpu'] as const)('on %s: CR 1 for both, CCI_A 0.769, CCI_B 0.637, A admissible and selected', async (backend) => {
    const res = await scoreRecords(
      [
        { id: 'A', steps: A },
        { id: 'B', steps: B },
      ],
      { lambda: 0, tau: 0.65 },
      { backend },
    );
    const [a, b] = res.results;
    // Largest-first ranks with lower-index ties give CR = 1 for both (the reference's argsort gave CR_B = 0).
    expect(a.CR).toBe(1);
    expect(b.CR).toBe(1);
    expect(a.CCI).toBeCloseTo(0.769, 3);
    expect(b.CCI).toBeCloseTo(0.637, 3);
    expect([a.admissible, a.selected, b.admissible, b.selected]).toEqual([true, true, false, false]);
    expect(res.audits[0]).toMatchObject({ selectedId: 'A', reason: 'best-admissible', tau: 0.65 });
  });

  it('with tau above both CCIs, A is still chosen, as a recorded fallback', async () => {
    const res = await scoreRecords(
      [
        { id: 'A', steps: A },
        { id: 'B', steps: B },
      ],
      { lambda: 0, tau: 0.9 },
      { backend: 'cpu' },
    );
    expect(res.audits[0]).toMatchObject({ selectedId: 'A', reason: 'fallback' });
    expect(res.results.map((r) => r.admissible)).toEqual([false, false]);
  });
});

describe('ecr demo (npm start)', () => {
  it('prints both tables, the selection and an audit trace', () => {
    const r = runCli(['demo']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^A +0\.016 +1\.000 +0\.871 +0\.998 +0\.006 +0\.769 +yes +<==$/m);
    expect(r.stdout).toMatch(/^B +.* 0\.637 +no$/m);
    expect(r.stdout).toMatch(/^refund-policy\/stable .* yes +<==$/m);
    expect(r.stdout).toMatch(/group "dosage-question": selected "dosage-question\/mild-drift" \(fallback/);
  });
});
