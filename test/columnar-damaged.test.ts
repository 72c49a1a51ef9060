/**
 * Damaged Parquet and Arrow files (issue 18, item 11): a corrupt Parquet page used to crash the
 * process with "RuntimeError: unreachable" (a panic of parquet-wasm's decoder, thrown where no
 * caller could catch it), exit 1, leaving the temporary --out file behind. Every decoder failure
 * is now one line, exit 2, naming the file, the row group (or record batch) and the column, and
 * no temporary file is left. Run through the built CLI, where Parquet decodes in a worker thread.
 */
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as arrow from 'apache-arrow';
import { parquetMetadata } from 'hyparquet';
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { CLI, ROOT, runCli } from './helpers/cli.js';
import { FIXTURE_DIR } from './helpers/fixtures.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'ecr-damaged-'));
const records = path.join(FIXTURE_DIR, 'polars', 'records.jsonl');

/** The 48 fixture records as Parquet in row groups of 20 rows (3 groups), snappy pages. */
async function parquetFile(): Promise<Buffer> {
  const pw = await import('parquet-wasm/node');
  const arrows = path.join(dir, 'records.arrows');
  expect(runCli(['convert', records, arrows]).code).toBe(0);
  const props = new pw.WriterPropertiesBuilder().setMaxRowGroupSize(20).setCompression(pw.Compression.SNAPPY).build();
  return Buffer.from(pw.writeParquet(pw.Table.fromIPCStream(readFileSync(arrows)), props));
}

/** Where column `name`'s data page starts in row group `group` (0-based). */
function dataPageOffset(bytes: Buffer, group: number, name: string): number {
  const md = parquetMetadata(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length) as ArrayBuffer);
  const chunk = md.row_groups[group].columns.find((c) => c.meta_data!.path_in_schema[0] === name)!;
  return Number(chunk.meta_data!.data_page_offset);
}

/** Exit 2, one line with every part, no stack, nothing on stdout, nothing left in `out`'s folder but the inputs. */
function expectRefused(r: { code: number; stdout: string; stderr: string }, parts: string[], folder: string, inputs: string[]): void {
  expect(r.code, r.stderr).toBe(2);
  expect(r.stderr.trim().split('\n'), r.stderr).toHaveLength(1);
  for (const p of parts) expect(r.stderr).toContain(p);
  expect(r.stderr).not.toMatch(/RuntimeError|wasm:\/\/|^\s+at /m);
  expect(r.stdout).toBe('');
  expect(readdirSync(folder).sort()).toEqual([...inputs].sort());
}

describe('a damaged Parquet page', () => {
  it('makes the decoder panic; ecr score and ecr convert name the file, row group and column, exit 2, and leave no temporary file', async () => {
    const good = await parquetFile();
    const md = parquetMetadata(good.buffer.slice(good.byteOffset, good.byteOffset + good.length) as ArrayBuffer);
    expect(md.row_groups.map((g) => Number(g.num_rows))).toEqual([20, 20, 8]);
    const folder = mkdtempSync(path.join(dir, 'pq-'));
    const bad = Buffer.from(good);
    // The page header of "steps" in the second row group: its first bytes garbled.
    const at = dataPageOffset(good, 1, 'steps');
    for (let k = 0; k < 4; k++) bad[at + k] ^= 0x5a;
    const file = path.join(folder, 'bad.parquet');
    writeFileSync(file, bad);
    const where = `${file}: row group 2 of 3 (rows 21-40), column "steps": the Parquet data is damaged`;
    expectRefused(runCli(['score', file, '--backend', 'cpu', '--out', path.join(folder, 'out.jsonl')]), ['ecr score: ', where], folder, ['bad.parquet']);
    expectRefused(runCli(['convert', file, path.join(folder, 'out.arrow')]), ['ecr convert: ', where], folder, ['bad.parquet']);
    // ecr calibrate and ecr maturity read Parquet through the same reader (issue 19), and say the same.
    expectRefused(runCli(['calibrate', file, '--backend', 'cpu']), ['ecr calibrate: ', where], folder, ['bad.parquet']);
    expectRefused(runCli(['maturity', file, '--backend', 'cpu']), ['ecr maturity: ', where], folder, ['bad.parquet']);
    const piped = spawnSync(process.execPath, [CLI, 'calibrate', '-', '--format', 'parquet', '--backend', 'cpu'], { input: bad, cwd: ROOT, encoding: 'utf8' });
    expectRefused(
      { code: piped.status ?? -1, stdout: piped.stdout, stderr: piped.stderr },
      ['ecr calibrate: stdin: row group 2 of 3 (rows 21-40), column "steps": the Parquet data is damaged'],
      folder,
      ['bad.parquet'],
    );
    // The undamaged file reads whole, through the same worker.
    const ok = path.join(folder, 'ok.parquet');
    writeFileSync(ok, good);
    const ref = runCli(['score', records, '--backend', 'cpu']);
    const got = runCli(['score', ok, '--backend', 'cpu']);
    expect(got.stderr).toBe('');
    expect(got.stdout).toBe(ref.stdout);
  });

  it('a truncated Parquet file and one that is no Parquet at all are refused in one line', async () => {
    const good = await parquetFile();
    const folder = mkdtempSync(path.join(dir, 'pq2-'));
    writeFileSync(path.join(folder, 'cut.parquet'), good.subarray(0, good.length >> 1));
    writeFileSync(path.join(folder, 'text.parquet'), '{"steps": [[0, 1], [1, 0]]}\n');
    const inputs = ['cut.parquet', 'text.parquet'];
    expectRefused(
      runCli(['score', path.join(folder, 'cut.parquet'), '--out', path.join(folder, 'o.jsonl')]),
      ['cut.parquet is not a Parquet file ('],
      folder,
      inputs,
    );
    expectRefused(
      runCli(['convert', path.join(folder, 'text.parquet'), path.join(folder, 'o.jsonl')]),
      ['text.parquet is not a Parquet file ('],
      folder,
      inputs,
    );
  });
});

describe('a damaged Arrow IPC file', () => {
  /** The fixture records as an Arrow file of 5 record batches. */
  function arrowFile(folder: string): Buffer {
    const file = path.join(folder, 'records.arrow');
    expect(runCli(['convert', records, file, '--window', '10']).code).toBe(0);
    const bytes = readFileSync(file);
    expect(arrow.tableFromIPC(bytes).batches).toHaveLength(5);
    return bytes;
  }

  it('truncated, a damaged footer, list offsets out of range: one line each, exit 2, no temporary file', () => {
    const folder = mkdtempSync(path.join(dir, 'ar-'));
    const good = arrowFile(folder);
    const table = arrow.tableFromIPC(good);
    const damaged: [string, Buffer, string[]][] = [];
    damaged.push(['cut.arrow', good.subarray(0, good.length >> 1), ['cut.arrow is a truncated Arrow IPC file']]);
    const footer = Buffer.from(good);
    for (let k = footer.length - 60; k < footer.length - 10; k++) footer[k] ^= 0x5a;
    damaged.push(['footer.arrow', footer, ['footer.arrow is an Arrow IPC file whose footer or schema is damaged']]);
    // The first batch's steps offsets: its outer offsets buffer overwritten with a huge value.
    const offsets = table.batches[0].getChild('steps')!.data[0].valueOffsets as Int32Array;
    const needle = Buffer.from(offsets.buffer, offsets.byteOffset, offsets.byteLength);
    const body = Buffer.from(good);
    const pos = body.indexOf(needle);
    expect(pos).toBeGreaterThan(0);
    body.writeInt32LE(0x7fffff00, pos + 4 * 3);
    damaged.push(['offsets.arrow', body, ['row 3, column "steps": the list offsets point outside the column\'s values (the file is damaged)']]);
    const names = ['records.arrow', ...damaged.map(([n]) => n)];
    for (const [name, bytes] of damaged) writeFileSync(path.join(folder, name), bytes);
    for (const [name, , parts] of damaged) {
      const file = path.join(folder, name);
      expectRefused(runCli(['score', file, '--backend', 'cpu', '--out', path.join(folder, 'out.jsonl')]), parts, folder, names);
      expectRefused(runCli(['convert', file, path.join(folder, 'out.parquet')]), parts, folder, names);
    }
  });
});
