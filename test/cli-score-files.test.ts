/**
 * `ecr score` at the edges of files and processes (issue 8, items 1-7 and 15): --out checked
 * before the input, symlinks, FIFOs, descriptors, the input refused as output, pipe inputs,
 * the line cap, empty inputs, BOMs and JSON arrays, and a mid-run write failure.
 */
import { afterAll, describe, expect, it } from 'vitest';
import {
  chmodSync,
  existsSync,
  linkSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { CLI, ROOT, runCli } from './helpers/cli.js';
import { InputError } from '../src/core/errors.js';
import { disposeScoring, scoreWithLimits } from '../src/testing/score-limits.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'ecr-files-'));
afterAll(async () => {
  rmSync(tmp, { recursive: true, force: true });
  await disposeScoring();
});

let seq = 0;
/** A fresh directory per test, so leftovers of one test cannot satisfy another. */
const freshDir = () => {
  const d = path.join(tmp, `t${seq++}`);
  mkdirSync(d);
  return d;
};

const RECORDS =
  [
    '{"id":"a","group":"g","steps":[[0.1,0.2],[0.2,0.3]]}',
    '{"id":"b","group":"g","steps":[[0.9,0.1],[0.1,0.9]]}',
    '{"id":"c","group":"h","steps":[[0.5,0.5],[0.5,0.5]]}',
  ].join('\n') + '\n';
const ids = (out: string) =>
  out
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l).id);
const noStack = (stderr: string) => expect(stderr).not.toMatch(/^\s+at /m);
const leftovers = (dir: string) => readdirSync(dir).filter((f) => f.endsWith('.tmp'));
const bash = (script: string, input?: string) => {
  const r = spawnSync('bash', ['-c', script], { input, encoding: 'utf8', cwd: ROOT, timeout: 60_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
};
const mkfifo = (p: string) => expect(spawnSync('mkfifo', [p]).status).toBe(0);

describe('--out is checked before any input is read (item 1)', () => {
  it.each([
    ['a missing directory', (d: string) => path.join(d, 'no-such-dir', 'out.jsonl'), 'does not exist'],
    ['a directory', (d: string) => d, 'is a directory'],
    [
      'a path below a regular file',
      (d: string) => {
        writeFileSync(path.join(d, 'f'), '');
        return path.join(d, 'f', 'out.jsonl');
      },
      'not a directory',
    ],
  ])('%s: exit 2 with "cannot write --out PATH: reason", no stack', (_name, outOf, reason) => {
    const d = freshDir();
    const out = outOf(d);
    const r = runCli(['score', '-', '--backend', 'cpu', '--out', out], RECORDS);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`cannot write --out ${out}: `);
    expect(r.stderr).toContain(reason);
    noStack(r.stderr);
  });

  it('an unwritable place: exit 2, permission denied', () => {
    // Root writes anywhere a mode allows nothing, but not into sysfs.
    const root = process.getuid?.() === 0;
    let out: string;
    if (root) {
      if (!existsSync('/sys/kernel')) return void expect.soft(root, 'no sysfs to test an unwritable place as root').toBe(false);
      out = '/sys/ecr-score-test.jsonl';
    } else {
      const d = freshDir();
      chmodSync(d, 0o555);
      out = path.join(d, 'out.jsonl');
    }
    const r = runCli(['score', '-', '--backend', 'cpu', '--out', out], RECORDS);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`cannot write --out ${out}: permission denied`);
  });

  it('never opens the input when --out is bad: a FIFO with no writer does not block the error', () => {
    const d = freshDir();
    const fifo = path.join(d, 'in.fifo');
    mkfifo(fifo);
    // Reading the FIFO first would wait forever for a writer (the spawn timeout would kill it).
    const r = spawnSync(process.execPath, [CLI, 'score', fifo, '--backend', 'cpu', '--out', path.join(d, 'missing', 'o.jsonl')], {
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('cannot write --out');
  });

  it('the input errors are shown when --out is fine, and no --out or temporary file is left', () => {
    const d = freshDir();
    const out = path.join(d, 'out.jsonl');
    const r = runCli(['score', '-', '--backend', 'cpu', '--out', out], RECORDS + '{"steps":[[2,0],[0,0]]}\n');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('line 4');
    expect(existsSync(out)).toBe(false);
    expect(leftovers(d)).toEqual([]);
  });

  it('a write that fails mid-run (the FIFO reader quits) is reported in one line with exit 1, not an unhandled error event', async () => {
    // A FIFO in a temporary directory rather than /dev/full: a regression that replaced the
    // target instead of streaming into it must not be able to damage a device node.
    const d = freshDir();
    const fifo = path.join(d, 'out.fifo');
    mkfifo(fifo);
    const reader = spawn('head', ['-c', '1', fifo], { stdio: ['ignore', 'ignore', 'ignore'] });
    const child = spawn(process.execPath, [CLI, 'score', '-', '--backend', 'cpu', '--out', fifo]);
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (c: string) => {
      stderr += c;
    });
    child.stdin.end(Array(20_000).fill(RECORDS.split('\n')[0]).join('\n')); // several MB of results, more than a pipe holds
    const code = await new Promise((resolve) => child.on('exit', resolve));
    reader.kill();
    expect(code).toBe(1);
    expect(stderr.trim()).toBe(`ecr score: cannot write --out ${fifo}: the reader closed the pipe (EPIPE)`);
  });
});

describe('--out naming the input is refused (item 3)', () => {
  const setup = () => {
    const d = freshDir();
    const input = path.join(d, 'in.jsonl');
    writeFileSync(input, RECORDS);
    return { d, input };
  };
  it.each([
    ['the same path', (_d: string, input: string) => input],
    [
      'a symlink to it',
      (d: string, input: string) => {
        const l = path.join(d, 'link.jsonl');
        symlinkSync(input, l);
        return l;
      },
    ],
    [
      'a hard link to it',
      (d: string, input: string) => {
        const l = path.join(d, 'hard.jsonl');
        linkSync(input, l);
        return l;
      },
    ],
    ['another spelling of the path', (d: string) => path.join(d, '.', 'sub', '..', 'in.jsonl')],
  ])('%s: exit 2 and the input is unchanged', (_name, outOf) => {
    const { d, input } = setup();
    mkdirSync(path.join(d, 'sub'));
    const out = outOf(d, input);
    const r = runCli(['score', input, '--backend', 'cpu', '--out', out]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`cannot write --out ${out}: it is the input file`);
    expect(readFileSync(input, 'utf8')).toBe(RECORDS);
    expect(leftovers(d)).toEqual([]);
  });

  it('stdin redirected from the --out file', () => {
    const { input } = setup();
    const r = bash(`"${process.execPath}" "${CLI}" score - --backend cpu --out "${input}" < "${input}"`);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('it is the input file');
    expect(readFileSync(input, 'utf8')).toBe(RECORDS);
  });
});

describe('--out through links, FIFOs and descriptors (item 4)', () => {
  it('keeps the mode of the file it replaces', () => {
    const d = freshDir();
    const out = path.join(d, 'out.jsonl');
    writeFileSync(out, 'old\n');
    chmodSync(out, 0o640);
    expect(runCli(['score', '-', '--backend', 'cpu', '--out', out], RECORDS).code).toBe(0);
    expect(ids(readFileSync(out, 'utf8'))).toEqual(['a', 'b', 'c']);
    expect(statSync(out).mode & 0o777).toBe(0o640);
  });

  it('follows a symlink: the target is replaced (its mode kept), the link stays a link', () => {
    const d = freshDir();
    mkdirSync(path.join(d, 'real'));
    const target = path.join(d, 'real', 'results.jsonl');
    writeFileSync(target, 'old\n');
    chmodSync(target, 0o600);
    const link = path.join(d, 'out.jsonl');
    symlinkSync(path.join('real', 'results.jsonl'), link);
    expect(runCli(['score', '-', '--backend', 'cpu', '--out', link], RECORDS).code).toBe(0);
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
    expect(ids(readFileSync(target, 'utf8'))).toEqual(['a', 'b', 'c']);
    expect(statSync(target).mode & 0o777).toBe(0o600);
    expect(leftovers(d)).toEqual([]);
    expect(leftovers(path.join(d, 'real'))).toEqual([]);
  });

  it('follows a dangling symlink and creates its target', () => {
    const d = freshDir();
    const link = path.join(d, 'out.jsonl');
    symlinkSync('made.jsonl', link);
    expect(runCli(['score', '-', '--backend', 'cpu', '--out', link], RECORDS).code).toBe(0);
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
    expect(ids(readFileSync(path.join(d, 'made.jsonl'), 'utf8'))).toEqual(['a', 'b', 'c']);
  });

  it('streams into a FIFO', async () => {
    const d = freshDir();
    const fifo = path.join(d, 'out.fifo');
    mkfifo(fifo);
    const reader = spawn('cat', [fifo]);
    let got = '';
    reader.stdout.setEncoding('utf8').on('data', (c: string) => {
      got += c;
    });
    const closed = new Promise((resolve) => reader.on('close', resolve));
    const r = spawn(process.execPath, [CLI, 'score', '-', '--backend', 'cpu', '--out', fifo]);
    r.stdin.end(RECORDS);
    const code = await new Promise((resolve) => r.on('exit', resolve));
    if (code !== 0) reader.kill(); // a reader left waiting would outlive the test
    await closed;
    expect(code).toBe(0);
    expect(ids(got)).toEqual(['a', 'b', 'c']);
    expect(lstatSync(fifo).isFIFO()).toBe(true);
  });

  it('writes to a descriptor path through the open descriptor: a shell append keeps what was there', () => {
    // /dev/fd/1 takes the same path as /dev/stdout (see fdOfPath's test) and, should that path
    // regress to replacing the file, points into /proc, where nothing can be created.
    const d = freshDir();
    const log = path.join(d, 'log.jsonl');
    writeFileSync(log, '{"before":true}\n');
    const r = bash(`"${process.execPath}" "${CLI}" score - --backend cpu --out /dev/fd/1 >> "${log}"`, RECORDS);
    expect(r.code).toBe(0);
    const lines = readFileSync(log, 'utf8').trim().split('\n');
    expect(lines[0]).toBe('{"before":true}');
    expect(lines.slice(1).map((l) => JSON.parse(l).id)).toEqual(['a', 'b', 'c']);
    const direct = runCli(['score', '-', '--backend', 'cpu', '--out', '/proc/self/fd/1'], RECORDS);
    expect(ids(direct.stdout)).toEqual(['a', 'b', 'c']);
  });
});

describe('inputs that are pipes (item 5)', () => {
  const expected = ids(runCli(['score', '-', '--backend', 'cpu'], RECORDS).stdout);

  it('process substitution <(cat f)', () => {
    const d = freshDir();
    const f = path.join(d, 'in.jsonl');
    writeFileSync(f, RECORDS);
    const r = bash(`"${process.execPath}" "${CLI}" score <(cat "${f}") --backend cpu`);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(ids(r.stdout)).toEqual(expected);
  });

  it('/dev/stdin', () => {
    const r = runCli(['score', '/dev/stdin', '--backend', 'cpu'], RECORDS);
    expect(r.code).toBe(0);
    expect(ids(r.stdout)).toEqual(expected);
  });

  it('a named FIFO', () => {
    const d = freshDir();
    const fifo = path.join(d, 'in.fifo');
    mkfifo(fifo);
    const src = path.join(d, 'in.jsonl');
    writeFileSync(src, RECORDS);
    // `timeout` ends the writer should the CLI never open the FIFO.
    const r = bash(`timeout 30 sh -c 'cat "${src}" > "${fifo}"' & "${process.execPath}" "${CLI}" score "${fifo}" --backend cpu; s=$?; wait; exit $s`);
    expect(r.code).toBe(0);
    expect(ids(r.stdout)).toEqual(expected);
  });

  it('a directory is still refused with exit 2', () => {
    const r = runCli(['score', freshDir(), '--backend', 'cpu']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('is a directory');
  });
});

describe('the line-length cap (item 6)', () => {
  it('reports a line over the cap as an input error naming the line, and keeps reading the next lines', async () => {
    // The test hook lowers the 64 MiB cap so the test need not write 64 MiB.
    const row = `[${Array(100).fill('0.5').join(',')}]`;
    const long = `{"id":"long","steps":[${row},${row}]}`;
    const text = `${RECORDS}${long}\n{"steps":[[7],[0]]}\n`;
    const input = path.join(freshDir(), 'in.jsonl');
    writeFileSync(input, text);
    const failure = await scoreWithLimits({ input, backend: 'cpu', lineCap: 300 }).then(
      () => null,
      (err: unknown) => err,
    );
    expect(failure).toBeInstanceOf(InputError);
    expect((failure as Error).message).toContain(`line 4: the line is ${long.length} bytes, longer than the 300-byte limit`);
    expect((failure as Error).message).toContain('line 5'); // the line after the long one was read and checked
    // The same input under the default cap is only wrong on line 5.
    const ok = runCli(['score', '-', '--backend', 'cpu'], text);
    expect(ok.stderr).not.toContain('line 4');
  });

  it('finds a real line of 64 MiB + 1 byte through a pipe, without holding it', () => {
    const text = RECORDS + 'x'.repeat(64 * 1024 * 1024 + 1) + '\n';
    const r = runCli(['score', '-', '--backend', 'cpu'], text);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('line 4: the line is 67108865 bytes, longer than the 64 MiB limit');
    noStack(r.stderr);
  });

  it('the CLI takes no line cap from the environment (ECR_MAX_LINE_BYTES is gone; the test hook sets it)', () => {
    const r = runCli(['score', '-', '--backend', 'cpu'], RECORDS, { ECR_MAX_LINE_BYTES: '10', ECR_JSONL_CHUNK_BYTES: 'lots' });
    expect(r.code).toBe(0);
    expect(ids(r.stdout)).toEqual(['a', 'b', 'c']);
  });
});

describe('empty input (item 7)', () => {
  it.each([
    ['an empty file', ''],
    ['whitespace and blank lines only', '  \n\n\t\r\n   '],
  ])('%s: one warning line, exit 0, an empty --out', (_name, text) => {
    const d = freshDir();
    const input = path.join(d, 'in.jsonl');
    writeFileSync(input, text);
    const out = path.join(d, 'out.jsonl');
    const r = runCli(['score', input, '--backend', 'cpu', '--out', out]);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe(`ecr score: warning: no records in ${input} (empty or blank lines only); wrote an empty ${out}\n`);
    expect(readFileSync(out, 'utf8')).toBe('');
  });

  it('empty stdin: the warning, nothing on stdout', () => {
    const r = runCli(['score', '-', '--backend', 'cpu'], '');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe('ecr score: warning: no records in stdin (empty or blank lines only)\n');
  });
});

describe('byte-order marks and JSON arrays (item 15)', () => {
  it('skips a UTF-8 BOM before the first JSONL line', () => {
    const r = runCli(['score', '-', '--backend', 'cpu'], '\ufeff' + RECORDS);
    expect(r.code).toBe(0);
    expect(ids(r.stdout)).toEqual(['a', 'b', 'c']);
  });

  it('skips a BOM at the start of a --config file', () => {
    const d = freshDir();
    const cfg = path.join(d, 'c.json');
    writeFileSync(cfg, '\ufeff{"tau": 0.99}');
    const r = runCli(['score', '-', '--backend', 'cpu', '--config', cfg], RECORDS);
    expect(r.code).toBe(0);
    expect(
      r.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l).admissible),
    ).toEqual([false, false, false]);
  });

  it.each([
    ['on one line', `[${RECORDS.trim().split('\n').join(',')}]\n`, 'line 1'],
    [
      'over several lines',
      `[\n${RECORDS.trim()
        .split('\n')
        .map((l) => `  ${l}`)
        .join(',\n')}\n]\n`,
      'line 1',
    ],
  ])('a JSON array %s gets a hint that one record per line is expected', (_name, text, where) => {
    const r = runCli(['score', '-', '--backend', 'cpu'], text);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(where);
    expect(r.stderr).toContain('hint: this looks like a JSON array; ecr score reads JSONL, one JSON object per line');
  });

  it('gives no array hint for other invalid lines', () => {
    const r = runCli(['score', '-', '--backend', 'cpu'], '{"steps": [[0.1],[0.2]]\n');
    expect(r.code).toBe(2);
    expect(r.stderr).not.toContain('hint');
  });
});

describe('bad-input cases of these items (test/bad-inputs/, run here on cpu; the shared table runs every backend)', () => {
  const CASES = ['bom-jsonl', 'bom-config', 'json-array-one-line', 'json-array-multi-line', 'empty-input', 'blank-lines-only'];
  it.each(CASES)('%s', (name) => {
    const c = JSON.parse(readFileSync(path.join(ROOT, 'test', 'bad-inputs', `${name}.json`), 'utf8'));
    const d = freshDir();
    const input = path.join(d, 'input.jsonl');
    writeFileSync(input, c.inputBase64 !== undefined ? Buffer.from(c.inputBase64, 'base64') : c.input);
    const args = ['score', input, '--backend', 'cpu', ...(c.args ?? [])];
    if (c.config !== undefined) {
      writeFileSync(path.join(d, 'config.json'), c.config);
      args.push('--config', path.join(d, 'config.json'));
    }
    const r = runCli(args);
    expect(r.code, r.stderr).toBe(c.exit);
    for (const s of c.stderr) expect(r.stderr).toContain(s);
    noStack(r.stderr);
    if (c.exit === 2) expect(r.stdout).toBe('');
    if (c.stdout !== undefined) expect(r.stdout).toBe(c.stdout);
  });
});
