/** The `ecr run` wait note: written only to a terminal, rewritten in place, erased at the end. */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { startWaitNote } from '../src/engine/io/wait-note.js';
import { waitNote } from '../src/cli/run.js';

const CLEAR = '\r\x1b[2K';

function sink() {
  const chunks: string[] = [];
  return {
    chunks,
    write: (c: string) => {
      chunks.push(c);
      return true;
    },
  };
}

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe('wait note', () => {
  it('writes nothing when the stream is not a terminal', () => {
    const out = sink();
    const stop = startWaitNote(out, false, () => 'waiting');
    vi.advanceTimersByTime(10_000);
    stop();
    expect(out.chunks).toEqual([]);
  });

  it('on a terminal: quiet at first, then one line rewritten in place, erased by stop', () => {
    const out = sink();
    const stop = startWaitNote(out, true, (ms) => `waiting ${Math.floor(ms / 1000)} s`, { delayMs: 1000, intervalMs: 1000 });
    vi.advanceTimersByTime(999);
    expect(out.chunks).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(out.chunks).toEqual([`${CLEAR}waiting 1 s`]);
    vi.advanceTimersByTime(2000);
    expect(out.chunks).toEqual([`${CLEAR}waiting 1 s`, `${CLEAR}waiting 2 s`, `${CLEAR}waiting 3 s`]);
    expect(out.chunks.join('')).not.toContain('\n');
    stop();
    stop();
    expect(out.chunks.at(-1)).toBe(CLEAR);
    expect(out.chunks).toHaveLength(4);
    vi.advanceTimersByTime(5000);
    expect(out.chunks).toHaveLength(4);
  });

  it('a wait that ends before the first note leaves the terminal untouched', () => {
    const out = sink();
    const stop = startWaitNote(out, true, () => 'waiting');
    vi.advanceTimersByTime(500);
    stop();
    vi.advanceTimersByTime(5000);
    expect(out.chunks).toEqual([]);
  });

  it('says what is awaited, for how long, against which deadline, and how many calls are done', () => {
    expect(waitNote('http://127.0.0.1:8080/v1', 3400, 5, 30_000)).toBe('ecr run: waiting for http://127.0.0.1:8080/v1, 3 s of 30 s, 5 call(s) done');
    expect(waitNote('http://h/v1', 12_000, 0)).toBe('ecr run: waiting for http://h/v1, 12 s, 0 call(s) done');
  });
});
