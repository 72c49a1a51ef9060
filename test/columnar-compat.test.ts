/**
 * Columnar files as other tools write them (issue 18, items 14 and 15): Polars' IPC files (utf8_view
 * strings, large lists, int64 numbers; uncompressed, zstd and LZ4 with checksums; committed in
 * test/fixtures/polars/, made by make-fixtures.cjs there), LZ4 frames as pyarrow writes them (no
 * checksums, linked blocks), and every integer and float width in every number column. Each
 * scores exactly as its JSONL twin; values out of range get the JSONL path's words; a damaged
 * compressed body is an input error.
 */
import { existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as arrow from 'apache-arrow';
import * as flatbuffers from 'flatbuffers';
import { Field as FbField } from 'apache-arrow/fb/field';
import { FloatingPoint as FbFloatingPoint } from 'apache-arrow/fb/floating-point';
import { ListView as FbListView } from 'apache-arrow/fb/list-view';
import { Message as FbMessage } from 'apache-arrow/fb/message';
import { MessageHeader as FbMessageHeader } from 'apache-arrow/fb/message-header';
import { MetadataVersion as FbMetadataVersion } from 'apache-arrow/fb/metadata-version';
import { Precision as FbPrecision } from 'apache-arrow/fb/precision';
import { Schema as FbSchema } from 'apache-arrow/fb/schema';
import { Type as FbType } from 'apache-arrow/fb/type';
import lz4js from 'lz4js';
import { describe, expect, it } from 'vitest';
import { main as convert } from '../src/cli/convert.js';
import { main as score } from '../src/cli/score.js';
import { decodeLz4Frames, xxh32 } from '../src/engine/columnar/lz4-frame.js';
import { runCli } from './helpers/cli.js';
import { FIXTURE_DIR } from './helpers/fixtures.js';

const { Field, List, makeData, RecordBatch, Table } = arrow;
const POLARS = path.join(FIXTURE_DIR, 'polars');
const tmp = () => mkdtempSync(path.join(os.tmpdir(), 'ecr-compat-'));

async function scoreFile(input: string, out: string, extra: string[] = []): Promise<string> {
  expect(await score([input, '--backend', 'cpu', '--out', out, ...extra])).toBe(0);
  return readFileSync(out, 'utf8');
}

/** The rows of a results or records file (Arrow or Parquet), 64-bit integers as numbers. */
async function rowsOf(file: string): Promise<Record<string, unknown>[]> {
  const bytes = readFileSync(file);
  const table = file.endsWith('.parquet')
    ? arrow.tableFromIPC((await import('parquet-wasm/node')).readParquet(bytes).intoIPCStream())
    : arrow.tableFromIPC(bytes);
  return table.toArray().map((r) => JSON.parse(JSON.stringify(r.toJSON(), (_k, v) => (typeof v === 'bigint' ? Number(v) : v))));
}

describe('Polars IPC files (utf8_view strings, large lists, int64 numbers)', () => {
  const files = ['records.arrow', 'records.zstd.arrow', 'records.lz4.arrow'];

  it('the fixtures are what Polars writes: utf8_view, large lists, int64, several batches, compressed bodies', () => {
    const table = arrow.tableFromIPC(readFileSync(path.join(POLARS, 'records.arrow')));
    expect(table.schema.fields.map((f) => `${f.name}: ${f.type}`)).toEqual([
      'id: Utf8View',
      'group: Utf8View',
      'steps: LargeList<LargeList<Float64>>',
      'embeddings: LargeList<LargeList<Int64>>',
      'expected: LargeList<Int64>',
      'realized: LargeList<Int64>',
      'baseScore: Int64',
    ]);
    expect(table.batches.length).toBeGreaterThan(3); // more than the file ring's slots
    expect(String(arrow.tableFromIPC(readFileSync(path.join(POLARS, 'int-steps.arrow'))).schema.fields[2].type)).toBe('LargeList<LargeList<Int64>>');
    // Their record batch bodies are frames of the codec (zstd's and LZ4's magic numbers), one per buffer.
    const frames = (file: string, magic: number[]) =>
      readFileSync(path.join(POLARS, file)).toString('latin1').split(Buffer.from(magic).toString('latin1')).length - 1;
    expect(frames('records.zstd.arrow', [0x28, 0xb5, 0x2f, 0xfd])).toBeGreaterThan(20);
    expect(frames('records.lz4.arrow', [0x04, 0x22, 0x4d, 0x18])).toBeGreaterThan(20);
    expect(frames('records.arrow', [0x28, 0xb5, 0x2f, 0xfd]) + frames('records.arrow', [0x04, 0x22, 0x4d, 0x18])).toBe(0);
  });

  it.each(files)('%s scores as its JSONL twin, through the file ring (score) and the plain reader (convert)', async (file) => {
    const dir = tmp();
    const input = path.join(POLARS, file);
    const ref = await scoreFile(path.join(POLARS, 'records.jsonl'), path.join(dir, 'ref.jsonl'));
    expect(await scoreFile(input, path.join(dir, 'out.jsonl'))).toBe(ref);
    // Results in columnar files keep every id, long ones (in utf8_view's data buffers) included.
    const refRows = ref
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    for (const out of ['res.arrow', 'res.parquet']) {
      await scoreFile(input, path.join(dir, out));
      expect(await rowsOf(path.join(dir, out)), out).toEqual(refRows);
    }
    // convert reads without the ring; its JSONL is the records' own.
    expect(await convert([input, path.join(dir, 'records.jsonl')])).toBe(0);
    const twin = path.join(dir, 'twin.jsonl');
    expect(await convert([path.join(POLARS, 'records.jsonl'), twin])).toBe(0);
    expect(readFileSync(path.join(dir, 'records.jsonl'), 'utf8')).toBe(readFileSync(twin, 'utf8'));
    expect(refRows.some((r) => String(r.id).length > 12)).toBe(true);
  });

  it('integer steps (list<list<int64>>, as Polars reads [[0, 1]]) score as the JSONL does', async () => {
    const dir = tmp();
    const ref = await scoreFile(path.join(POLARS, 'int-steps.jsonl'), path.join(dir, 'ref.jsonl'));
    expect(await scoreFile(path.join(POLARS, 'int-steps.arrow'), path.join(dir, 'out.jsonl'))).toBe(ref);
  });

  it('a damaged zstd body is exit 2 naming the file, with no stack and no temporary file left', () => {
    const dir = tmp();
    const bytes = Buffer.from(readFileSync(path.join(POLARS, 'records.zstd.arrow')));
    // The zstd frames of the body: damage the bytes after the first frame's magic number.
    const frame = bytes.indexOf(Buffer.from([0x28, 0xb5, 0x2f, 0xfd]));
    expect(frame).toBeGreaterThan(0);
    for (let k = 4; k < 12; k++) bytes[frame + k] ^= 0xff;
    const bad = path.join(dir, 'bad.arrow');
    writeFileSync(bad, bytes);
    const r = runCli(['score', bad, '--backend', 'cpu', '--out', path.join(dir, 'out.jsonl')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(
      new RegExp(
        `^ecr score: ${bad.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: record batch 1 of 6: the Arrow data is damaged \\(a zstd frame cannot be decoded`,
      ),
    );
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(readdirSync(dir).sort()).toEqual(['bad.arrow']);
  });
});

describe('LZ4 frames', () => {
  it('xxHash32 gives the reference values', () => {
    const b = (s: string) => new TextEncoder().encode(s);
    expect(xxh32(b(''), 0, 0, 0)).toBe(0x02cc5d05);
    expect(xxh32(b('a'), 0, 1, 0)).toBe(0x550d7456);
    expect(xxh32(b('abc'), 0, 3, 0)).toBe(0x32d153ff);
    expect(xxh32(b('Nobody inspects the spammish repetition'), 0, 39, 0)).toBe(0xe2293b2f);
  });

  it('decodes a frame of linked 64 KB blocks with block and content checksums and a content size (lz4 -BD -B4 -BX --content-size)', () => {
    // The text the fixture was made from (see the generator in this test's history: the same LCG).
    let s = '',
      x = 12345;
    for (let i = 0; i < 6000; i++) {
      x = (x * 1103515245 + 12345) % 2147483648;
      s += `line ${i % 700}: ${x % 7} coherence\n`;
    }
    const frame = readFileSync(path.join(FIXTURE_DIR, 'lz4', 'linked-blocks.lz4'));
    expect(frame.length).toBeLessThan(s.length / 3);
    expect(new TextDecoder().decode(decodeLz4Frames(frame))).toBe(s);
    // Damage is found by a checksum or the block format's own bounds, never returned as data.
    for (const at of [20, 5000, frame.length - 2]) {
      const bad = Buffer.from(frame);
      bad[at] ^= 0x5a;
      expect(() => decodeLz4Frames(bad), `byte ${at}`).toThrow(/LZ4/);
    }
    expect(() => decodeLz4Frames(frame.subarray(0, 1000))).toThrow(/truncated/);
  });

  it('an Arrow file compressed as pyarrow writes it (LZ4 frames without checksums) scores as its JSONL twin', async () => {
    const dir = tmp();
    const records = readFileSync(path.join(POLARS, 'records.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { id: string; group: string; steps: number[][] });
    const jsonl = path.join(dir, 'in.jsonl');
    writeFileSync(jsonl, records.map((r) => JSON.stringify({ id: r.id, group: r.group, steps: r.steps })).join('\n') + '\n');
    const plain = arrow.tableFromIPC(readFileSync(await convertTo(jsonl, path.join(dir, 'plain.arrows'), ['--window', '10'])));
    // lz4js writes LZ4 frames as Arrow C++ does by default: no block or content checksum.
    const previous = arrow.compressionRegistry.get(arrow.CompressionType.LZ4_FRAME);
    arrow.compressionRegistry.set(arrow.CompressionType.LZ4_FRAME, { encode: (d) => lz4js.compress(d), decode: decodeLz4Frames });
    let bytes: Uint8Array;
    try {
      bytes = arrow.tableToIPC(plain, 'file', arrow.CompressionType.LZ4_FRAME);
    } finally {
      arrow.compressionRegistry.set(arrow.CompressionType.LZ4_FRAME, previous!);
    }
    expect(Buffer.from(bytes).includes(Buffer.from([0x04, 0x22, 0x4d, 0x18]))).toBe(true);
    const file = path.join(dir, 'lz4.arrow');
    writeFileSync(file, bytes);
    // The built CLI: its own codec registration, not this test's.
    const ref = runCli(['score', jsonl, '--backend', 'cpu']);
    const got = runCli(['score', file, '--backend', 'cpu']);
    expect(got.stderr).toBe('');
    expect(got.stdout).toBe(ref.stdout);
  });
});

async function convertTo(input: string, out: string, extra: string[] = []): Promise<string> {
  expect(await convert([input, out, ...extra])).toBe(0);
  return out;
}

describe('every integer and float width in the number columns (item 15)', () => {
  const STEPS = [
    [
      [0, 1, 0],
      [1, 1, 0],
    ],
    [
      [1, 0, 1],
      [0, 0, 1],
    ],
    [
      [0, 0, 0],
      [1, 1, 1],
    ],
  ];
  const EMB = [
    [
      [3, -2],
      [5, 7],
    ],
    [
      [-1, 0],
      [2, 2],
    ],
    [
      [9, 9],
      [-9, 4],
    ],
  ];
  const POLICY = [
    [
      [1, 3],
      [2, 2],
    ],
    [
      [4, 0],
      [1, 1],
    ],
    [
      [2, 5],
      [5, 2],
    ],
  ];
  const EXPECTED = [
      [1, -2],
      [0, 3],
      [4, 4],
    ],
    REALIZED = [
      [0, 1],
      [2, -3],
      [4, 1],
    ];
  const BASE = [7, 2, 9];
  const twin = () =>
    STEPS.map((steps, i) => ({
      id: `r${i + 1}`,
      group: 'g',
      steps,
      embeddings: EMB[i],
      expected: EXPECTED[i],
      realized: REALIZED[i],
      policy: POLICY[i],
      baseScore: BASE[i],
    }));

  const TYPES: [string, () => arrow.DataType, boolean][] = [
    ['int8', () => new arrow.Int8(), true],
    ['uint8', () => new arrow.Uint8(), false],
    ['int16', () => new arrow.Int16(), true],
    ['uint16', () => new arrow.Uint16(), false],
    ['int32', () => new arrow.Int32(), true],
    ['uint32', () => new arrow.Uint32(), false],
    ['int64', () => new arrow.Int64(), true],
    ['uint64', () => new arrow.Uint64(), false],
    ['float16', () => new arrow.Float16(), true],
    ['float32', () => new arrow.Float32(), true],
  ];

  // 64-bit integer builders take BigInts.
  const wide = (t: arrow.DataType): boolean =>
    (t.typeId === arrow.Type.Int && (t as arrow.Int).bitWidth === 64) || (t.children?.length > 0 && wide(t.children[0].type));
  const big = (v: unknown): unknown => (Array.isArray(v) ? v.map(big) : typeof v === 'number' ? BigInt(v) : v);
  const col = (type: arrow.DataType, values: unknown[]) => arrow.vectorFromArray((wide(type) ? big(values) : values) as never[], type as never).data[0];
  const listOf = (t: arrow.DataType) => new List(new Field('item', t, false));
  const signedOnly = (t: arrow.DataType, signed: boolean, values: unknown[]) => (signed ? col(t, values) : null);

  function batchOf(make: () => arrow.DataType, signed: boolean): arrow.RecordBatch {
    const columns: Record<string, arrow.Data> = {
      id: col(new arrow.Utf8(), ['r1', 'r2', 'r3']),
      group: col(new arrow.Utf8(), ['g', 'g', 'g']),
      steps: col(listOf(listOf(make())), STEPS),
      policy: col(listOf(listOf(make())), POLICY),
      baseScore: col(make(), BASE),
    };
    // Negative embeddings and rewards need a signed type; unsigned columns get them as float64.
    columns.embeddings = signedOnly(listOf(listOf(make())), signed, EMB) ?? col(listOf(listOf(new arrow.Float64())), EMB);
    columns.expected = signedOnly(listOf(make()), signed, EXPECTED) ?? col(listOf(new arrow.Float64()), EXPECTED);
    columns.realized = signedOnly(listOf(make()), signed, REALIZED) ?? col(listOf(new arrow.Float64()), REALIZED);
    return new RecordBatch(columns);
  }

  it.each(TYPES)('%s: scores as the JSONL twin, in Arrow and in Parquet', async (name, make, signed) => {
    const dir = tmp();
    const jsonl = path.join(dir, 'twin.jsonl');
    writeFileSync(
      jsonl,
      twin()
        .map((r) => JSON.stringify(r))
        .join('\n') + '\n',
    );
    const ref = await scoreFile(jsonl, path.join(dir, 'ref.jsonl'));
    const batch = batchOf(make, signed);
    expect(String(batch.schema.fields.find((f) => f.name === 'steps')!.type)).toContain(String(make()));
    const file = path.join(dir, `${name}.arrow`);
    writeFileSync(file, arrow.tableToIPC(new Table([batch]), 'file'));
    expect(await scoreFile(file, path.join(dir, 'a.jsonl')), name).toBe(ref);
    if (name !== 'float16') {
      // parquet-wasm writes no float16
      const pq = await convertTo(file, path.join(dir, `${name}.parquet`));
      expect(await scoreFile(pq, path.join(dir, 'p.jsonl')), `${name} parquet`).toBe(ref);
    }
  });

  it("integer values out of range get the JSONL path's messages, line for row", async () => {
    const dir = tmp();
    const cases: [string, Record<string, arrow.Data>, object][] = [
      [
        'steps int8 2',
        {
          steps: col(listOf(listOf(new arrow.Int8())), [
            [
              [0, 2],
              [1, 1],
            ],
          ]),
        },
        {
          steps: [
            [0, 2],
            [1, 1],
          ],
        },
      ],
      [
        'policy int32 negative',
        {
          steps: col(listOf(listOf(new arrow.Int8())), [
            [
              [0, 1],
              [1, 1],
            ],
          ]),
          policy: col(listOf(listOf(new arrow.Int32())), [
            [
              [1, -4],
              [1, 1],
            ],
          ]),
        },
        {
          steps: [
            [0, 1],
            [1, 1],
          ],
          policy: [
            [1, -4],
            [1, 1],
          ],
        },
      ],
      [
        'realized uint64 beyond 16',
        {
          steps: col(listOf(listOf(new arrow.Uint8())), [
            [
              [0, 1],
              [1, 1],
            ],
          ]),
          expected: col(listOf(new arrow.Uint64()), [[1n, 2n]]),
          realized: col(listOf(new arrow.Uint64()), [[1n, 17n]]),
        },
        {
          steps: [
            [0, 1],
            [1, 1],
          ],
          expected: [1, 2],
          realized: [1, 17],
        },
      ],
    ];
    for (const [name, columns, record] of cases) {
      const file = path.join(dir, 'bad.arrow'),
        jsonl = path.join(dir, 'bad.jsonl');
      writeFileSync(file, arrow.tableToIPC(new Table([new RecordBatch(columns)]), 'file'));
      writeFileSync(jsonl, JSON.stringify(record) + '\n');
      const r = runCli(['score', file, '--backend', 'cpu']),
        j = runCli(['score', jsonl, '--backend', 'cpu']);
      expect(r.code, name).toBe(2);
      expect(r.stderr, name).toBe(
        j.stderr
          .replace(/\bline 1\b/, 'row 1')
          .replace('invalid line', 'invalid row')
          .replace(/field "/g, 'column "'),
      );
    }
  });

  it('an int64 baseScore beyond 2^53 is refused with its exact digits (a float64 would round it); float64 baseScores that large are fine', async () => {
    const dir = tmp();
    const steps = col(listOf(listOf(new arrow.Float64())), [
      [
        [0, 1],
        [1, 1],
      ],
      [
        [0, 1],
        [1, 0],
      ],
    ]);
    const file = path.join(dir, 'big.arrow');
    writeFileSync(
      file,
      arrow.tableToIPC(
        new Table([new RecordBatch({ steps, baseScore: makeData({ type: new arrow.Int64(), length: 2, data: BigInt64Array.from([1n, 9007199254740993n]) }) })]),
        'file',
      ),
    );
    const r = runCli(['score', file, '--backend', 'cpu', '--out', path.join(dir, 'out.jsonl')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('row 2, id "2", column "baseScore": 9007199254740993 cannot be kept exactly as a number');
    expect(existsSync(path.join(dir, 'out.jsonl'))).toBe(false);
    const ok = path.join(dir, 'ok.arrow');
    writeFileSync(ok, arrow.tableToIPC(new Table([new RecordBatch({ steps, baseScore: col(new arrow.Float64(), [1, 1e20]) })]), 'file'));
    expect(runCli(['score', ok, '--backend', 'cpu']).code).toBe(0);
  });
});

/**
 * An Arrow IPC stream whose schema has `steps: list_view<double>` (a type apache-arrow cannot
 * decode; pyarrow writes it for pa.list_view), built from Arrow's flatbuffer schema by hand.
 */
function listViewStream(): Uint8Array {
  const b = new flatbuffers.Builder(256);
  const field = (name: string, typeType: FbType, type: number, children: number[]) => {
    const n = b.createString(name);
    const c = FbField.createChildrenVector(b, children);
    FbField.startField(b);
    FbField.addName(b, n);
    FbField.addNullable(b, true);
    FbField.addTypeType(b, typeType);
    FbField.addType(b, type);
    FbField.addChildren(b, c);
    return FbField.endField(b);
  };
  const item = field('item', FbType.FloatingPoint, FbFloatingPoint.createFloatingPoint(b, FbPrecision.DOUBLE), []);
  FbListView.startListView(b);
  const steps = field('steps', FbType.ListView, FbListView.endListView(b), [item]);
  const fields = FbSchema.createFieldsVector(b, [steps]);
  FbSchema.startSchema(b);
  FbSchema.addFields(b, fields);
  const schema = FbSchema.endSchema(b);
  FbMessage.startMessage(b);
  FbMessage.addVersion(b, FbMetadataVersion.V5);
  FbMessage.addHeaderType(b, FbMessageHeader.Schema);
  FbMessage.addHeader(b, schema);
  FbMessage.addBodyLength(b, BigInt(0));
  b.finish(FbMessage.endMessage(b));
  const meta = b.asUint8Array();
  const padded = (meta.length + 7) & ~7;
  const out = new Uint8Array(8 + padded + 8);
  const dv = new DataView(out.buffer);
  dv.setInt32(0, -1, true);
  dv.setInt32(4, padded, true);
  out.set(meta, 8);
  dv.setInt32(8 + padded, -1, true);
  return out;
}

describe('an Arrow type this reader cannot decode', () => {
  it('is named, with how to write the column instead (score and convert)', () => {
    const dir = tmp();
    const file = path.join(dir, 'list-view.arrows');
    writeFileSync(file, listViewStream());
    const advice = 'a column has the Arrow type ListView, which this reader cannot decode: write it as a list or large_list';
    const r = runCli(['score', file, '--backend', 'cpu']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`ecr score: ${file}: ${advice} (pyarrow: cast the column to pa.large_list(...); Polars writes large lists)\n`);
    const c = runCli(['convert', file, path.join(dir, 'out.jsonl')]);
    expect(c.code).toBe(2);
    expect(c.stderr).toContain(advice);
  });
});
