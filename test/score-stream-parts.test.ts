/**
 * The parts `ecr score` streams through: the byte line splitter (chunk boundaries, BOM, CRLF,
 * the cap), the off-heap group interning, the typed-array selector, and the result writer's
 * refusal to print a non-finite number (issue 8, items 6, 8, 10 and 15).
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Readable } from 'node:stream';
import { OverlongLine, readLines } from '../src/engine/io/lines.js';
import { fdOfPath } from '../src/engine/io/input.js';
import { GroupKeys } from '../src/engine/group-keys.js';
import { GroupSelector } from '../src/core/select.js';
import { NonFiniteResultError, SelectedFlags, resultPrefix } from '../src/core/result-line.js';
import { allocMetrics } from '../src/core/batch.js';
import type { CheckedRecord } from '../src/engine/record.js';
import type { WindowScores } from '../src/engine/window-scorer.js';

async function lines(chunks: (string | Buffer)[], cap?: number): Promise<(string | number)[]> {
  const out: (string | number)[] = [];
  const source = Readable.from(chunks.map((c) => (typeof c === 'string' ? Buffer.from(c) : c)));
  for await (const l of readLines(source, cap)) out.push(l instanceof OverlongLine ? -l.bytes : l);
  return out;
}

/** Splits bytes at the given cut points. */
const cut = (bytes: Buffer, at: number[]) => [...at, bytes.length].map((end, k) => bytes.subarray(k === 0 ? 0 : at[k - 1], end));

describe('readLines', () => {
  const text = '\ufeff{"a":"é☃"}\r\n\n{"b":1}\r\nlast';
  const expected = ['{"a":"é☃"}', '', '{"b":1}', 'last'];

  it('gives the same lines wherever the chunks are cut (inside the BOM, a UTF-8 character or a CRLF)', async () => {
    const bytes = Buffer.from(text);
    await fc.assert(
      fc.asyncProperty(fc.uniqueArray(fc.integer({ min: 1, max: bytes.length - 1 }), { maxLength: 6 }), async (points) => {
        expect(
          await lines(
            cut(
              bytes,
              points.sort((a, b) => a - b),
            ),
          ),
        ).toEqual(expected);
      }),
    );
    // Explicit cuts inside the three BOM bytes, the two bytes of é and the CR LF pair.
    expect(await lines(cut(bytes, [1, 2]))).toEqual(expected);
    expect(await lines(cut(bytes, [9]))).toEqual(expected);
    expect(await lines(cut(bytes, [Buffer.from('\ufeff{"a":"é☃"}\r').length]))).toEqual(expected);
  });

  it('drops a BOM only at the very start', async () => {
    expect(await lines(['x\n\ufeffy\n'])).toEqual(['x', '\ufeffy']);
  });

  it('reports a line over the cap with its length and goes on with the next line, in any chunking', async () => {
    const long = 'y'.repeat(50);
    const bytes = Buffer.from(`ok\n${long}\nafter\n${long}`);
    await fc.assert(
      fc.asyncProperty(fc.uniqueArray(fc.integer({ min: 1, max: bytes.length - 1 }), { maxLength: 8 }), async (points) => {
        expect(
          await lines(
            cut(
              bytes,
              points.sort((a, b) => a - b),
            ),
            10,
          ),
        ).toEqual(['ok', -50, 'after', -50]);
      }),
    );
    // A line exactly at the cap is kept.
    expect(await lines(['0123456789\n'], 10)).toEqual(['0123456789']);
  });
});

describe('fdOfPath', () => {
  it('recognizes the paths that name an open descriptor, and only those', () => {
    expect(['/dev/stdin', '/dev/stdout', '/dev/stderr', '/dev/fd/1', '/dev/fd/63', '/proc/self/fd/2'].map(fdOfPath)).toEqual([0, 1, 2, 1, 63, 2]);
    expect(['/dev/null', '/dev/fd/', '/dev/fd/1x', 'dev/stdout', '/tmp/dev/stdout', '/proc/1/fd/1'].map(fdOfPath)).toEqual([
      null,
      null,
      null,
      null,
      null,
      null,
    ]);
  });
});

describe('GroupKeys', () => {
  it('numbers groups densely in order of first appearance, with "1" and 1 distinct, as a Map of typed keys would', () => {
    const key = fc.oneof(
      fc.string({ maxLength: 6 }),
      fc.string({ unit: 'grapheme', maxLength: 3 }),
      fc.integer({ min: -5, max: 5 }),
      fc.double({ noNaN: true, noDefaultInfinity: true }),
      fc.constant(null),
    );
    fc.assert(
      fc.property(fc.array(key, { maxLength: 300 }), (keys) => {
        const g = new GroupKeys();
        const ref = new Map<string, number>();
        const refKeys: (string | number | null)[] = [];
        for (const k of keys) {
          // JSON prints -0 as 0, so they are one group, as in a Map.
          const id = k === null ? 'none' : `${typeof k}:${Object.is(k, -0) ? 0 : k}`;
          if (!ref.has(id)) {
            ref.set(id, ref.size);
            refKeys.push(Object.is(k, -0) ? 0 : k);
          }
          expect(g.indexOf(k)).toBe(ref.get(id));
        }
        expect(g.size).toBe(ref.size);
        expect(g.keys).toEqual(refKeys);
      }),
    );
  });

  it('indexOfEncoded (a key as tag + UTF-8 bytes, at any offset) agrees with indexOf, repeats and mixed calls included', () => {
    const enc = new TextEncoder();
    const key = fc.oneof(fc.constantFrom('a', 'ab', 'b', '1', ''), fc.string({ maxLength: 4 }), fc.integer({ min: -3, max: 3 }), fc.constant(null));
    fc.assert(
      fc.property(fc.array(fc.tuple(key, fc.boolean(), fc.nat(3)), { maxLength: 200 }), (calls) => {
        const viaBytes = new GroupKeys(),
          viaKeys = new GroupKeys();
        for (const [k, encoded, pad] of calls) {
          const expected = viaKeys.indexOf(k);
          let got: number;
          if (encoded) {
            const body = k === null ? new Uint8Array(0) : new Uint8Array([typeof k === 'string' ? 0x73 : 0x6e, ...enc.encode(String(k))]);
            const bytes = new Uint8Array(pad + body.length + 2).fill(0x73);
            bytes.set(body, pad);
            got = viaBytes.indexOfEncoded(bytes, pad, pad + body.length);
          } else got = viaBytes.indexOf(k);
          expect(got).toBe(expected);
        }
        expect(viaBytes.keys).toEqual(viaKeys.keys);
      }),
    );
  });

  it('stays exact through many table and arena growths', () => {
    const g = new GroupKeys();
    const key = (i: number) => (i % 3 === 0 ? i : i % 3 === 1 ? `g${i}` : `${i}`);
    const wrong: number[] = [];
    for (let i = 0; i < 200_000; i++) if (g.indexOf(key(i)) !== i) wrong.push(i);
    for (let i = 0; i < 200_000; i++) if (g.indexOf(key(i)) !== i || g.keyOf(i) !== key(i)) wrong.push(i);
    expect(wrong).toEqual([]);
    expect(g.size).toBe(200_000);
  });
});

describe('GroupSelector', () => {
  it('selects as the rule says (best admissible base score, else best CCI, ties to the lower index), in any offer order', () => {
    const candidate = fc.record({
      group: fc.integer({ min: 0, max: 40 }),
      cci: fc.constantFrom(0.2, 0.5, 0.65, 0.7, 0.9),
      base: fc.constantFrom(Number.NaN, 0, 1, 2),
    });
    fc.assert(
      fc.property(fc.array(candidate, { minLength: 1, maxLength: 120 }), fc.integer(), (cands, seed) => {
        const tau = 0.65;
        const order = cands.map((_, i) => i).sort((a, b) => ((a * 7919 + seed) % 101) - ((b * 7919 + seed) % 101) || a - b);
        const sel = new GroupSelector(tau);
        for (const i of order) sel.offer(cands[i].group, i, cands[i].cci, cands[i].base);
        const expected: number[] = [];
        for (let g = 0; g < sel.groupCount; g++) {
          const members = cands.map((c, i) => ({ ...c, i })).filter((c) => c.group === g);
          const r = sel.result(g);
          if (members.length === 0) {
            expect(r.selectedIndex).toBe(-1);
            continue;
          }
          const adm = members.filter((c) => c.cci >= tau);
          const score = (c: (typeof members)[number]) => (adm.length ? (Number.isNaN(c.base) ? c.cci : c.base) : c.cci);
          const pool = adm.length ? adm : members;
          const best = pool.reduce((a, b) => (score(b) > score(a) || (score(b) === score(a) && b.i < a.i) ? b : a));
          expect(r).toEqual({
            group: g,
            selectedIndex: best.i,
            reason: adm.length ? 'best-admissible' : 'fallback',
            size: members.length,
            admissibleCount: adm.length,
          });
          expected.push(best.i);
        }
        expect(Array.from(sel.selectedIndices())).toEqual(expected.sort((a, b) => a - b));
      }),
    );
  });

  it('SelectedFlags marks exactly the selected indices, in input order', () => {
    const flags = new SelectedFlags(Uint32Array.from([1, 4]));
    expect([0, 1, 2, 3, 4, 5].map((i) => flags.finish(`{"i":${i}`))).toEqual([
      '{"i":0,"selected":false}\n',
      '{"i":1,"selected":true}\n',
      '{"i":2,"selected":false}\n',
      '{"i":3,"selected":false}\n',
      '{"i":4,"selected":true}\n',
      '{"i":5,"selected":false}\n',
    ]);
  });
});

describe('resultPrefix never prints a non-finite number', () => {
  const record: CheckedRecord = { id: 'x7', group: 'q', t: 2, m: 1, steps: [[0.1], [0.2]] };
  const windowWith = (metric: 'evb' | 'cr' | 'ts' | 'es' | 'pd' | 'cci', value: number): WindowScores => {
    const metrics = allocMetrics(2);
    for (const k of ['evb', 'cr', 'ts', 'es', 'pd', 'cci'] as const) metrics[k].fill(0.5);
    metrics[metric][1] = value;
    return { metrics, admissible: new Uint8Array(2), backends: [] };
  };

  const prefixOf = (w: WindowScores, j: number, line: number) => resultPrefix(record.id, record.group, w.metrics, w.admissible, j, line);

  it('writes finite metrics as JSON', () => {
    const line = prefixOf(windowWith('cci', 0.25), 1, 7) + ',"selected":false}';
    expect(JSON.parse(line)).toEqual({ id: 'x7', group: 'q', EVB: 0.5, CR: 0.5, TS: 0.5, ES: 0.5, PD: 0.5, CCI: 0.25, admissible: false, selected: false });
  });

  it.each([
    ['cci', 'CCI', Number.NaN],
    ['es', 'ES', Number.NaN],
    ['ts', 'TS', Number.POSITIVE_INFINITY],
    ['evb', 'EVB', Number.NEGATIVE_INFINITY],
  ] as const)('a backend %s of %s is an internal error naming the record', (metric, name, value) => {
    const w = windowWith(metric, value);
    expect(() => resultPrefix(record.id, record.group, w.metrics, w.admissible, 1, 7)).toThrow(NonFiniteResultError);
    expect(() => resultPrefix(record.id, record.group, w.metrics, w.admissible, 1, 7)).toThrow(`the backend computed ${name} = ${value} for line 7, id "x7"`);
    expect(() => resultPrefix(record.id, record.group, w.metrics, w.admissible, 0, 6)).not.toThrow(); // the neighbouring record is fine
  });

  it('is not fooled by finite values whose sum overflows', () => {
    const w = windowWith('evb', 1e308);
    w.metrics.cr[1] = 1e308;
    expect(resultPrefix(record.id, record.group, w.metrics, w.admissible, 1, 7)).toContain('"EVB":1e+308,"CR":1e+308');
  });
});
