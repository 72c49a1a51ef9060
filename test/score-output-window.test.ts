/**
 * formatWindow (the parse workers' result-line writer, issue 12 item 3) against resultPrefix,
 * the line-by-line writer: byte-identical lines for every kind of number a metric can be.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { allocMetrics } from '../src/core/batch.js';
import { formatWindow, resultHead, resultPrefix } from '../src/core/result-line.js';

describe('formatWindow', () => {
  it('writes the same bytes as resultPrefix (shortest round-trip numbers, exponents, -0, integers)', () => {
    const value = fc.oneof(
      fc.double({ noNaN: true, noDefaultInfinity: true }),
      fc.double({ min: 0, max: 1, noNaN: true }),
      fc.constantFrom(0, -0, 1, 0.25, 1e-7, 1.5e-300, 1e21, 123456789012345680000),
    );
    const rec = fc.record({
      id: fc.oneof(fc.string(), fc.integer()),
      group: fc.oneof(fc.string(), fc.integer(), fc.constant(null)),
      v: fc.array(value, { minLength: 6, maxLength: 6 }),
      adm: fc.boolean(),
    });
    fc.assert(
      fc.property(fc.array(rec, { maxLength: 30 }), (rows) => {
        const n = rows.length;
        const metrics = allocMetrics(n);
        const admissible = new Uint8Array(n);
        const keys = ['evb', 'cr', 'ts', 'es', 'pd', 'cci'] as const;
        rows.forEach((r, j) => {
          keys.forEach((k, i) => {
            metrics[k][j] = r.v[i];
          });
          admissible[j] = r.adm ? 1 : 0;
        });
        const heads = rows.map((r) => resultHead(r.id, r.group));
        const headEnds = new Uint32Array(n + 1);
        heads.forEach((h, j) => {
          headEnds[j + 1] = headEnds[j] + h.length;
        });
        const expected = rows.map((r, j) => resultPrefix(r.id, r.group, metrics, admissible, j, j + 1) + '\n').join('');
        expect(formatWindow({ heads: heads.join(''), headEnds, metrics, admissible }, undefined)).toBe(expected);
      }),
      { numRuns: 300 },
    );
  });
});
