/**
 * The fast reader of simple JSONL records (src/engine/jsonl/jsonl-fast-record.ts) against the slow
 * path it stands in for, JSON.parse + checkRecord: whenever it accepts a line, the slow path
 * accepts it too with the same id, group and bit-identical steps; it never accepts a line the
 * slow path rejects (so every error message still comes from checkRecord).
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { readSimpleRecord, type FloatSink, type SimpleRecord } from '../src/engine/jsonl/jsonl-fast-record.js';
import { checkRecord, parseJsonLine } from '../src/engine/record.js';

function sink(): FloatSink {
  const s: FloatSink = {
    data: new Float64Array(4),
    length: 0,
    ensure(extra) {
      if (s.length + extra > s.data.length) {
        const d = new Float64Array((s.length + extra) * 2);
        d.set(s.data);
        s.data = d;
      }
    },
  };
  return s;
}

function fast(line: string): { id: string | undefined; group: string | null; t: number; m: number; steps: number[] } | null {
  const s = sink();
  const out: SimpleRecord = { id: undefined, group: null, t: 0, m: 0 };
  if (!readSimpleRecord(line, 0, line.length, s, out)) return null;
  return { ...out, steps: Array.from(s.data.subarray(0, s.length)) };
}

function slow(line: string) {
  try {
    const r = checkRecord(parseJsonLine(line, 1), { line: 1 }, 1, line);
    return r;
  } catch {
    return null;
  }
}

function agree(line: string): void {
  const f = fast(line);
  const s = slow(line);
  if (f === null) return; // the slow path decides
  expect(s, line).not.toBeNull();
  expect(f.id === undefined ? 1 : f.id).toBe(s!.id);
  expect(f.group).toBe(s!.group);
  expect([f.t, f.m]).toEqual([s!.t, s!.m]);
  const flat = s!.steps.flat();
  expect(f.steps.length).toBe(flat.length);
  // Bit-identical, -0 and all.
  f.steps.forEach((x, k) => expect(Object.is(x, flat[k]), `${line}: ${x} vs ${flat[k]}`).toBe(true));
  // An id given as a number or a meta field is never taken by the fast path.
}

const number = fc.oneof(
  fc.double({ min: 0, max: 1, noNaN: true }).map((x) => String(x)),
  fc.double({ min: 0, max: 1, noNaN: true }).chain((x) => fc.integer({ min: 0, max: 20 }).map((k) => x.toFixed(k))),
  fc.integer({ min: 0, max: 10 ** 9 }).chain((m) => fc.integer({ min: 0, max: 25 }).map((k) => `0.${String(m).padStart(k, '0')}`)),
  fc.constantFrom(
    '0',
    '1',
    '1.0',
    '0.5',
    '00.5',
    '-0',
    '-0.0',
    '0.',
    '.5',
    '1e-3',
    '5E-1',
    '2',
    '1.0000000000000001',
    '0.99999999999999999',
    '1.5',
    'NaN',
    '-0.25',
    '0.1234567890123456789',
    '1e400',
    ' 0.5',
  ),
);
const row = fc.array(number, { minLength: 0, maxLength: 5 });
const key = fc.oneof(
  fc.constantFrom('"a"', '"r1"', '"é☃"', '"\\u0041"', '"a\\"b"', '7', '-3', '1.5', 'null', '"\ud800"'),
  fc.string({ maxLength: 6 }).map((s) => JSON.stringify(s)),
);
const ws = fc.constantFrom('', ' ', '  ', '\t', '\r');

describe('readSimpleRecord', () => {
  it('agrees with JSON.parse + checkRecord on generated lines', () => {
    fc.assert(
      fc.property(
        fc.array(row, { minLength: 0, maxLength: 5 }),
        fc.option(key),
        fc.option(key),
        fc.boolean(),
        ws,
        fc.constantFrom('', ',"meta":1', ',"steps":[[0.5],[0.5]]', ',"baseScore":1', ',"stpes":[]', '}'),
        (rows, id, group, groupFirst, w, extra) => {
          const steps = `"steps"${w}:${w}[${rows.map((r) => `[${r.join(`${w},${w}`)}]`).join(',' + w)}]`;
          const fields = [steps];
          if (id !== null) fields.push(`"id":${w}${id}`);
          if (group !== null) (groupFirst ? fields.unshift.bind(fields) : fields.push.bind(fields))(`"group":${group}`);
          agree(`${w}{${w}${fields.join(`${w},${w}`)}${extra}${w}}${w}`);
        },
      ),
      { numRuns: 3000 },
    );
  });

  it('reads numbers of every length bit-exactly (shortest forms of random doubles, and 1 to 25 decimals)', () => {
    let seed = 1;
    const rand = () => (seed = (seed * 1103515245 + 12345) >>> 0) / 4294967296 + (seed = (seed * 1103515245 + 12345) >>> 0) / 4294967296 / 4294967296;
    const texts: string[] = [];
    for (let i = 0; i < 20_000; i++) {
      const x = rand();
      texts.push(String(x), x.toFixed(1 + (i % 20)), x.toPrecision(1 + (i % 21)), `0.${String(i).padStart(1 + (i % 25), '0')}`);
    }
    const numbers = texts.filter((t) => !/e/i.test(t));
    const line = `{"steps":[[${numbers.join(',')}],[${numbers.join(',')}]]}`;
    const f = fast(line);
    expect(f).not.toBeNull();
    const wrong = numbers.filter((t, k) => !Object.is(f!.steps[k], JSON.parse(t)));
    expect(wrong).toEqual([]);
  });

  it('reads the usual lines and gives up on the rest', () => {
    expect(fast('{"id":"a","group":"g","steps":[[0.5,0.25],[1,0]]}')).toEqual({ id: 'a', group: 'g', t: 2, m: 2, steps: [0.5, 0.25, 1, 0] });
    expect(fast('{"steps": [[0.1, 0.2], [0.3, 0.4]], "group": null}')).toEqual({ id: undefined, group: null, t: 2, m: 2, steps: [0.1, 0.2, 0.3, 0.4] });
    for (const line of [
      '{"steps":[[0.5,1.5],[0,0]]}',
      '{"steps":[[0.5],[0.5,0.5]]}',
      '{"steps":[[0.5]]}',
      '{"id":7,"steps":[[0.5],[0.5]]}',
      '{"steps":[[0.5],[0.5]],"embeddings":[[1],[1]]}',
      '{"steps":[[0.5],[0.5]]} x',
      '{"steps":[[NaN],[0.5]]}',
      '',
      '{"id":"a","id":"b","steps":[[0.5],[0.5]]}',
      '{"steps":[[1e-1],[0.5]]}',
    ])
      expect(fast(line), line).toBeNull();
    for (const line of ['{"steps":[[0.5,1.5],[0,0]]}', '{"steps":[[0.5],[0.5,0.5]]}', '{"steps":[[0.5]]}']) agree(line);
  });
});
