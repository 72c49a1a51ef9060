/**
 * A file that is not JSONL where JSONL is read (issue 18, item 16): a Parquet or Arrow file, a
 * compressed file, UTF-16 text, named .jsonl or piped in. Every reader of JSONL (ecr score,
 * convert, calibrate, maturity, the queue's submitter and worker) says in one line what the file
 * is and what the command takes, exit 2, instead of twenty lines of "invalid JSON" quoting binary.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { InputError } from '../src/core/errors.js';
import { scoreShard } from '../src/queue/shard-worker.js';
import { SHARD_JOB_FORMAT, type ShardJob } from '../src/queue/shard-job.js';
import { notJsonlError } from '../src/engine/jsonl/not-jsonl.js';
import { CLI, ROOT, runCli } from './helpers/cli.js';
import { FIXTURE_DIR } from './helpers/fixtures.js';

const POLARS = path.join(FIXTURE_DIR, 'polars');
const dir = mkdtempSync(path.join(os.tmpdir(), 'ecr-not-jsonl-'));
const records = path.join(POLARS, 'records.jsonl');

/** The same records as Parquet (made by ecr convert), Arrow and gzip, each under a .jsonl name. */
function disguised(): { parquet: string; arrow: string; gzip: string } {
  const pq = path.join(dir, 'real.parquet');
  const r = runCli(['convert', records, pq]);
  expect(r.code, r.stderr).toBe(0);
  const parquet = path.join(dir, 'parquet.jsonl'),
    arrow = path.join(dir, 'arrow.jsonl'),
    gzip = path.join(dir, 'records.jsonl.gz');
  copyFileSync(pq, parquet);
  copyFileSync(path.join(POLARS, 'records.arrow'), arrow);
  writeFileSync(gzip, gzipSync(readFileSync(records)));
  return { parquet, arrow, gzip };
}
const files = disguised();

/** One line on stderr, exit 2, nothing on stdout, no stack. */
function expectOneLine(r: { code: number; stdout: string; stderr: string }, ...parts: string[]): void {
  expect(r.code, r.stderr).toBe(2);
  expect(r.stdout).toBe('');
  expect(r.stderr.trim().split('\n'), r.stderr).toHaveLength(1);
  expect(r.stderr).not.toContain('invalid JSON');
  for (const p of parts) expect(r.stderr).toContain(p);
}

describe('what a file is, from its first bytes', () => {
  const b = (...x: number[]) => Uint8Array.from(x);
  const text = (s: string) => new TextEncoder().encode(s);
  it.each([
    ['Parquet', text('PAR1\x15\x04\x15\x80'), 'x.jsonl is a Parquet file, not JSONL; to read it as Parquet, name it .parquet or pass --format parquet'],
    ['Arrow file', text('ARROW1\0\0'), 'x.jsonl is an Arrow IPC file, not JSONL; to read it as Arrow IPC, name it .arrow'],
    ['Arrow stream', b(0xff, 0xff, 0xff, 0xff, 0x10, 1, 0, 0), 'x.jsonl is an Arrow IPC stream, not JSONL; to read it as Arrow IPC'],
    [
      'gzip',
      b(0x1f, 0x8b, 8, 0, 0, 0, 0, 0),
      'x.jsonl is gzip-compressed, not JSONL; JSONL is read uncompressed: decompress it first (gzip -dc x.jsonl > x.jsonl)',
    ],
    ['zstd', b(0x28, 0xb5, 0x2f, 0xfd, 0x24, 0, 0, 0), 'zstd-compressed'],
    ['xz', b(0xfd, 0x37, 0x7a, 0x58, 0x5a, 0, 0, 4), 'xz-compressed'],
    ['UTF-16', b(0xff, 0xfe, 0x7b, 0), 'x.jsonl is UTF-16 text, not JSONL; JSONL is UTF-8'],
  ])('%s', (_name, head, message) => {
    const err = notJsonlError(head, 'x.jsonl');
    expect(err).toBeInstanceOf(InputError);
    expect(err!.message).toContain(message);
  });

  it('JSONL starts are never mistaken: an object, whitespace, a blank line, a byte-order mark, a short file', () => {
    for (const s of ['{"steps":[[0,1],[1,0]]}\n', '  {"a":1}', '\n\n{"a":1}', '\ufeff{"a":1}', '{}', '', '[{"a":1}]']) {
      expect(notJsonlError(new TextEncoder().encode(s).subarray(0, 8), 'x.jsonl'), JSON.stringify(s)).toBeNull();
    }
  });

  it('the queue says it reads JSONL files only, and how to convert', () => {
    expect(notJsonlError(new TextEncoder().encode('PAR1xxxx'), 'in/x.parquet', 'queue')!.message).toBe(
      'in/x.parquet is a Parquet file, not JSONL; ecr score --queue reads JSONL files only: score it without --queue, or convert it first (ecr convert in/x.parquet x.jsonl)',
    );
  });
});

describe('every command that reads JSONL', () => {
  it('ecr score: a Parquet file named .jsonl, with --out (no temporary file left)', () => {
    const out = path.join(dir, 'out.jsonl');
    expectOneLine(runCli(['score', files.parquet, '--backend', 'cpu', '--out', out]), `${files.parquet} is a Parquet file, not JSONL`, 'pass --format parquet');
    expect(readdirSync(dir).filter((f) => f.startsWith('.out.') || f === 'out.jsonl')).toEqual([]);
    // --format parquet reads the same file as what it is.
    expect(runCli(['score', files.parquet, '--backend', 'cpu', '--format', 'parquet']).code).toBe(0);
  });

  it('ecr score: an Arrow file named .jsonl, and JSONL in, Parquet out (the columnar path reading JSONL)', () => {
    expectOneLine(runCli(['score', files.arrow, '--backend', 'cpu']), 'is an Arrow IPC file, not JSONL');
    expectOneLine(
      runCli(['score', files.gzip, '--backend', 'cpu', '--out', path.join(dir, 'o.parquet')]),
      'is gzip-compressed, not JSONL',
      `gzip -dc ${files.gzip} > records.jsonl`,
    );
  });

  it('ecr score and ecr convert on stdin', () => {
    const parquet = spawnSync(process.execPath, [CLI, 'score', '-', '--backend', 'cpu'], { input: readFileSync(files.parquet), cwd: ROOT, encoding: 'utf8' });
    expectOneLine(
      { code: parquet.status ?? -1, stdout: parquet.stdout, stderr: parquet.stderr },
      'stdin is a Parquet file, not JSONL; Parquet is read from its footer, so save it to a file named .parquet',
    );
    const gz = spawnSync(process.execPath, [CLI, 'convert', '-', path.join(dir, 'c.parquet')], {
      input: readFileSync(files.gzip),
      cwd: ROOT,
      encoding: 'utf8',
    });
    expectOneLine(
      { code: gz.status ?? -1, stdout: gz.stdout, stderr: gz.stderr },
      'ecr convert: stdin is gzip-compressed, not JSONL; JSONL is read uncompressed: decompress it first (pipe it through gzip -dc)',
    );
  });

  it('ecr convert, ecr calibrate and ecr maturity', () => {
    expectOneLine(runCli(['convert', files.parquet, path.join(dir, 'c.arrow')]), 'ecr convert: ', 'is a Parquet file, not JSONL');
    expectOneLine(runCli(['calibrate', files.parquet]), 'ecr calibrate: ', 'is a Parquet file, not JSONL');
    expectOneLine(runCli(['maturity', files.arrow]), 'ecr maturity: ', 'is an Arrow IPC file, not JSONL');
  });

  it('ecr score --queue refuses before anything is queued (no Redis needed to say so)', () => {
    const out = mkdtempSync(path.join(dir, 'q-'));
    const real = path.join(dir, 'real.parquet');
    expectOneLine(
      runCli(['score', '--queue', 'redis://127.0.0.1:1', real, '--out', out]),
      `${real} is a Parquet file, not JSONL; ecr score --queue reads JSONL files only`,
    );
  });

  it('the queue worker checks the first shard of an input (a file replaced after planning)', async () => {
    const work = mkdtempSync(path.join(dir, 'w-'));
    const config = path.join(work, 'config.json');
    writeFileSync(config, '{}');
    const { size, mtimeMs } = statSync(files.parquet);
    const job = {
      format: SHARD_JOB_FORMAT,
      run: 'r',
      inputName: 'logs.jsonl',
      inputIndex: 0,
      input: files.parquet,
      start: 0,
      end: size,
      firstLine: 1,
      records: 48,
      output: path.join(work, 'shard.jsonl'),
      config,
      window: 8192,
      lineCap: 1 << 20,
      index: 0,
      count: 1,
      inputSize: size,
      inputMtimeMs: mtimeMs,
      backend: null,
      compact: null,
    } satisfies ShardJob;
    await expect(scoreShard(job, 'cpu', {}, 0)).rejects.toThrow(/^logs\.jsonl is a Parquet file, not JSONL; ecr score --queue reads JSONL files only/);
    expect(readdirSync(work)).toEqual(['config.json']);
  });
});
