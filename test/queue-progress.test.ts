/**
 * The submitter's progress line: shards, records, rate, ETA and workers on a terminal; nothing at
 * all on a stream that is not one.
 */
import { describe, expect, it } from 'vitest';
import { QueueProgress, describeProgress } from '../src/queue/progress.js';

function fakeStream(isTTY: boolean): NodeJS.WriteStream & { text: string } {
  const s = {
    isTTY,
    text: '',
    write(chunk: string) {
      s.text += chunk;
      return true;
    },
  };
  return s as unknown as NodeJS.WriteStream & { text: string };
}

describe('describeProgress', () => {
  it('gives shards, records, the rate over the elapsed time, the ETA at that rate and the workers', () => {
    expect(describeProgress({ shardsDone: 2, shards: 8, recordsDone: 50_000, records: 200_000, workers: 2 }, 10_000)).toBe(
      'ecr score: 2/8 shards, 50,000/200,000 records, 5,000 records/s, ETA 30 s, 2 workers',
    );
    expect(describeProgress({ shardsDone: 1, shards: 100, recordsDone: 1_000, records: 1_000_000, workers: 1 }, 10_000)).toBe(
      'ecr score: 1/100 shards, 1,000/1,000,000 records, 100 records/s, ETA 2 h 47 min, 1 worker',
    );
  });

  it('has no ETA before the first shard is done, and no worker count before it is known', () => {
    expect(describeProgress({ shardsDone: 0, shards: 4, recordsDone: 0, records: 400, workers: null }, 3_000)).toBe(
      'ecr score: 0/4 shards, 0/400 records, 0 records/s, ETA ?',
    );
  });
});

describe('QueueProgress', () => {
  it('writes nothing when stderr is not a terminal', async () => {
    const out = fakeStream(false);
    const p = new QueueProgress(4, 400, out);
    p.shardDone(100);
    await new Promise((r) => setTimeout(r, 400));
    p.finish(true);
    expect(out.text).toBe('');
  });

  it('keeps one line on a terminal, erases it at the end and leaves a summary', async () => {
    const out = fakeStream(true);
    const p = new QueueProgress(4, 400, out);
    p.shardDone(100);
    while (!out.text.includes('1/4 shards')) await new Promise((r) => setTimeout(r, 20));
    // eslint-disable-next-line no-control-regex -- the terminal's erase-line sequence is what is checked
    expect(out.text).toMatch(/^\r\x1b\[2Kecr score: 1\/4 shards, 100\/400 records, [\d,]+ records\/s, ETA /);
    expect(out.text).not.toContain('\n');
    p.finish(true);
    // eslint-disable-next-line no-control-regex -- as above
    expect(out.text).toMatch(/\r\x1b\[2Kecr score: 400 records in 4 shards, \d+\.\d s \([\d,]+ records\/s\)\n$/);
  });
});
