/**
 * The progress line of `ecr score` (issue 12, item 5): records, records/s, ETA when the input's
 * size is known, and the backend, on a terminal only. A pipe or a file on stderr gets nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Progress } from '../src/engine/io/progress.js';
import { CLI, runCli } from './helpers/cli.js';

function fakeStream(isTTY: boolean) {
  const written: string[] = [];
  return {
    written,
    stream: {
      isTTY,
      write: (s: string) => {
        written.push(s);
        return true;
      },
    } as unknown as NodeJS.WriteStream,
  };
}

describe('Progress', () => {
  it('writes nothing at all when the stream is not a terminal', () => {
    for (const isTTY of [false, undefined]) {
      const f = fakeStream(isTTY as boolean);
      const p = new Progress('ecr score', f.stream);
      p.update(10, { bytesDone: 10, bytesTotal: 100, backend: 'cpu' });
      p.update(20);
      p.done(20, { backend: 'cpu' });
      expect(f.written).toEqual([]);
    }
  });

  it('on a terminal shows records, rate, percentage, ETA and backend, then a final line', () => {
    const f = fakeStream(true);
    const p = new Progress('ecr score', f.stream);
    p.update(1000, { bytesDone: 250, bytesTotal: 1000, backend: 'cpu' });
    expect(f.written[0]).toMatch(/^\recr score: 1,000 records \([\d,]+\/s\), 25%, ETA \d+ s, backend cpu$/);
    p.update(2000, { bytesDone: 500, bytesTotal: 1000 }); // within 250 ms of the last: throttled
    expect(f.written).toHaveLength(1);
    p.done(4000, { backend: 'cpu' });
    expect(f.written.slice(1).join('')).toMatch(/^\recr score: 4,000 records in [\d.]+ s \([\d,]+\/s\), backend cpu *\n$/);
  });

  it('leaves the ETA out when the input size is unknown (a pipe)', () => {
    const f = fakeStream(true);
    new Progress('ecr score', f.stream).update(5, { bytesDone: 100, bytesTotal: null, backend: 'webgpu' });
    expect(f.written[0]).toMatch(/^\recr score: 5 records \([\d,]+\/s\), backend webgpu$/);
  });
});

describe('ecr score on a terminal and off it', () => {
  let tmp: string;
  let input: string;
  beforeAll(() => {
    tmp = mkdtempSync(path.join(os.tmpdir(), 'ecr-progress-'));
    input = path.join(tmp, 'in.jsonl');
    writeFileSync(input, Array.from({ length: 3000 }, (_, i) => `{"group":${i % 7},"steps":[[0.${i % 10},0.5],[0.25,0.${(i * 7) % 10}]]}`).join('\n') + '\n');
  });
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  it('shows percentage, ETA and the backend on a pseudo-terminal, and nothing when stderr is a pipe', () => {
    const out = path.join(tmp, 'out.jsonl');
    // `script` runs the command on a pseudo-terminal, as an interactive user would.
    const tty = spawnSync('script', ['-qec', `${process.execPath} ${CLI} score ${input} --backend cpu --window 500 --out ${out}`, '/dev/null'], {
      encoding: 'utf8',
    });
    expect(tty.status).toBe(0);
    expect(tty.stdout).toMatch(/ecr score: 500 records \([\d,]+\/s\), \d+%, ETA \d+ s, backend cpu/);
    expect(tty.stdout).toMatch(/ecr score: 3,000 records in [\d.]+ s \([\d,]+\/s\), backend cpu/);
    const piped = runCli(['score', input, '--backend', 'cpu', '--window', '500', '--out', out]);
    expect(piped.code).toBe(0);
    expect(piped.stderr).toBe('');
  });
});
