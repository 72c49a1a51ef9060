/**
 * `meta` through ecr convert (issue 18, item 1): a struct or list `meta` (as pyarrow and Polars
 * write one) used to vanish from the JSONL that `ecr convert` wrote. `meta` of any Arrow type now
 * becomes JSON, in every format pair and back, with nothing rounded: 64-bit integers and decimals
 * keep their digits both ways (JSONL -> columnar keeps meta's text as written).
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as arrow from 'apache-arrow';
import { describe, expect, it } from 'vitest';
import { main as convert } from '../src/cli/convert.js';
import { main as score } from '../src/cli/score.js';
import { jsonTextAt } from '../src/engine/columnar/json-text.js';
import { runCli } from './helpers/cli.js';

const { Field, makeData, RecordBatch, Table } = arrow;
const tmp = () => mkdtempSync(path.join(os.tmpdir(), 'ecr-meta-'));
const STEPS = [
  [0, 1],
  [1, 0],
];
const col = (type: arrow.DataType, values: unknown[]) => arrow.vectorFromArray(values as never[], type as never).data[0];
const steps = (n: number) =>
  col(
    new arrow.List(new Field('item', new arrow.List(new Field('item', new arrow.Float64(), false)), false)),
    Array.from({ length: n }, () => STEPS),
  );

async function pq(batch: arrow.RecordBatch): Promise<Uint8Array> {
  const pw = await import('parquet-wasm/node');
  return pw.writeParquet(pw.Table.fromIPCStream(arrow.tableToIPC(new Table([batch]), 'stream')));
}

async function convertOk(...args: string[]): Promise<void> {
  expect(await convert(args), args.join(' ')).toBe(0);
}

describe('meta of any Arrow type becomes JSON in ecr convert', () => {
  it('a struct<src: string, n: int64> meta (as pyarrow writes it), from Arrow and from Parquet: every line has it, n with all its digits', async () => {
    const dir = tmp();
    const meta = col(new arrow.Struct([new Field('src', new arrow.Utf8(), true), new Field('n', new arrow.Int64(), true)]), [
      { src: 'web', n: 9007199254740993n },
      null,
      { src: null, n: -7n },
    ]);
    const batch = new RecordBatch({ id: col(new arrow.Utf8(), ['a', 'b', 'c']), steps: steps(3), meta });
    const expected =
      [
        '{"id":"a","steps":[[0,1],[1,0]],"meta":{"src":"web","n":9007199254740993}}',
        '{"id":"b","steps":[[0,1],[1,0]]}',
        '{"id":"c","steps":[[0,1],[1,0]],"meta":{"src":null,"n":-7}}',
      ].join('\n') + '\n';
    const ar = path.join(dir, 'm.arrow'),
      pqFile = path.join(dir, 'm.parquet');
    writeFileSync(ar, arrow.tableToIPC(new Table([batch]), 'file'));
    writeFileSync(pqFile, await pq(batch));
    for (const input of [ar, pqFile]) {
      const out = path.join(dir, `${path.basename(input)}.jsonl`);
      await convertOk(input, out);
      expect(readFileSync(out, 'utf8'), input).toBe(expected);
      // And back: JSONL -> Parquet -> Arrow -> JSONL is the same text.
      const p2 = path.join(dir, 'back.parquet'),
        a2 = path.join(dir, 'back.arrows'),
        j2 = path.join(dir, 'back.jsonl');
      await convertOk(out, p2);
      await convertOk(p2, a2);
      await convertOk(a2, j2);
      expect(readFileSync(j2, 'utf8'), `${input} and back`).toBe(expected);
    }
    // Columnar to columnar keeps the struct itself.
    const p3 = path.join(dir, 'struct.parquet');
    await convertOk(ar, p3);
    const pw = await import('parquet-wasm/node');
    expect(String(arrow.tableFromIPC(pw.readParquet(readFileSync(p3)).intoIPCStream()).schema.fields.find((f) => f.name === 'meta')!.type)).toBe(
      'Struct<{src:Utf8, n:Int64}>',
    );
    // Scoring ignores meta whatever its type.
    expect(await score([ar, '--backend', 'cpu', '--out', path.join(dir, 'scores.jsonl')])).toBe(0);
  });

  it('JSONL meta keeps its digits in every format pair: integers beyond 2^53 and decimals beyond 17 digits', async () => {
    const dir = tmp();
    const lines = [
      '{"id":1,"steps":[[0,1],[1,0]],"meta":{"big":12345678901234567891,"neg":-9007199254740993,"pi":3.14159265358979323846264,"list":[1,2.50,{"x":[]}]}}',
      '{"id":2,"steps":[[0,1],[1,0]],"meta":"text, not JSON"}',
      '{"id":3,"steps":[[0,1],[1,0]],"meta":[true,null,"s"]}',
      '{"id":4,"steps":[[0,1],[1,0]]}',
    ];
    const src = path.join(dir, 'in.jsonl');
    writeFileSync(src, lines.join('\n') + '\n');
    const ref = path.join(dir, 'ref.jsonl');
    await convertOk(src, ref);
    expect(readFileSync(ref, 'utf8')).toBe(lines.join('\n') + '\n');
    const chains = [['a.parquet'], ['a.arrow'], ['a.arrows'], ['b.parquet', 'b.arrow'], ['c.arrow', 'c.parquet', 'c.arrows']];
    for (const chain of chains) {
      let from = src;
      for (const step of chain) {
        const to = path.join(dir, step);
        await convertOk(from, to);
        from = to;
      }
      const back = path.join(dir, `${chain.join('-')}.jsonl`);
      await convertOk(from, back);
      expect(readFileSync(back, 'utf8'), chain.join(' -> ')).toBe(lines.join('\n') + '\n');
    }
  });

  it('a NaN inside a float meta has no JSON form: exit 2 naming the row and the path, as a JSONL line would', () => {
    const dir = tmp();
    const meta = col(new arrow.Struct([new Field('x', new arrow.Float64(), true)]), [{ x: 1.5 }, { x: Number.NaN }]);
    const file = path.join(dir, 'nan.arrow');
    writeFileSync(file, arrow.tableToIPC(new Table([new RecordBatch({ id: col(new arrow.Utf8(), ['a', 'b']), steps: steps(2), meta })]), 'file'));
    const r = runCli(['convert', file, path.join(dir, 'out.jsonl')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      'ecr convert: row 2, id "b", column "meta.x": NaN is not a finite number, which JSON cannot hold (meta is not scored, but is carried as JSON)\n',
    );
  });
});

describe('JSON text of each Arrow type', () => {
  const F = <T extends arrow.DataType>(n: string, t: T, nullable = true) => new Field(n, t, nullable);
  const at = { row: 1 };
  const texts = (d: arrow.Data) => Array.from({ length: d.length }, (_, i) => jsonTextAt(d, i, 'meta', at));
  it.each([
    ['int8 and uint64 (exact)', col(new arrow.Int8(), [-128, null]), ['-128', 'null']],
    ['uint64', makeData({ type: new arrow.Uint64(), length: 1, data: BigUint64Array.from([18446744073709551615n]) }), ['18446744073709551615']],
    ['float32 (shortest for its width)', col(new arrow.Float32(), [0.1, 1e30]), ['0.1', '1e+30']],
    ['float16', col(new arrow.Float16(), [0.5, 0.1]), ['0.5', '0.1']],
    ['bool', col(new arrow.Bool(), [true, false, null]), ['true', 'false', 'null']],
    ['utf8_view', col(new arrow.Utf8View(), ['short', 'a string longer than twelve bytes']), ['"short"', '"a string longer than twelve bytes"']],
    ['binary (base64)', col(new arrow.Binary(), [Uint8Array.from([0, 1, 255])]), ['"AAH/"']],
    ['dictionary', col(new arrow.Dictionary(new arrow.Utf8(), new arrow.Int32()), ['p', 'q', 'p']), ['"p"', '"q"', '"p"']],
    ['list<int32> with a null', col(new arrow.List(F('item', new arrow.Int32())), [[1, null], []]), ['[1,null]', '[]']],
    [
      'map<utf8, int64>',
      col(
        new arrow.Map_(
          F('entries', new arrow.Struct<{ key: arrow.Utf8; value: arrow.Int64 }>([F('key', new arrow.Utf8(), false), F('value', new arrow.Int64())]), false),
        ),
        [
          new Map([
            ['a', 1n],
            ['b', null],
          ]),
        ],
      ),
      ['{"a":1,"b":null}'],
    ],
    [
      'timestamp[ns, UTC] (every digit)',
      makeData({ type: new arrow.TimestampNanosecond('UTC'), length: 2, data: BigInt64Array.from([1700000000123456789n, -1n]) }),
      ['"2023-11-14T22:13:20.123456789Z"', '"1969-12-31T23:59:59.999999999Z"'],
    ],
    [
      'timestamp[us] without a zone',
      makeData({ type: new arrow.TimestampMicrosecond(), length: 1, data: BigInt64Array.from([1500000n]) }),
      ['"1970-01-01T00:00:01.500000"'],
    ],
    ['date32', col(new arrow.DateDay(), [new Date(Date.UTC(2024, 1, 29))]), ['"2024-02-29"']],
    ['time64[ns]', makeData({ type: new arrow.TimeNanosecond(), length: 1, data: BigInt64Array.from([3723000000001n]) }), ['"01:02:03.000000001"']],
    ['duration[ms]', makeData({ type: new arrow.DurationMillisecond(), length: 1, data: BigInt64Array.from([-1500n]) }), ['-1500']],
    [
      'decimal128(10, 3)',
      makeData({ type: new arrow.Decimal(3, 10, 128), length: 2, data: Uint32Array.from([12345, 0, 0, 0, 0xfffffffb, 0xffffffff, 0xffffffff, 0xffffffff]) }),
      ['12.345', '-0.005'],
    ],
  ] as [string, arrow.Data, string[]][])('%s', (_name, d, expected) => {
    expect(texts(d)).toEqual(expected);
  });
});
