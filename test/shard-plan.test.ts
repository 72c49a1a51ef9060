/**
 * Shard planning for `ecr score --queue`: shards are byte ranges of the input that together cover
 * it exactly, start at the right line numbers, and never separate two members of a group, for
 * contiguous, interleaved and ungrouped records alike.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { planShards, type ShardPlan } from '../src/queue/shard-plan.js';
import { BLANK, FALLBACK, groupOfValue, scanGroup } from '../src/queue/group-scan.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'ecr-shard-plan-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;

function write(text: string | Buffer): string {
  const file = path.join(dir, `in-${files++}.jsonl`);
  writeFileSync(file, text);
  return file;
}

const line = (group: unknown, i: number) => JSON.stringify(group === undefined ? { id: `r${i}`, steps: [[0.5]] } : { id: `r${i}`, group, steps: [[0.5]] });

/** The group key of each non-blank line of each shard, as the scorer would see it. */
function groupsByShard(file: string, plan: ShardPlan): string[][] {
  const bytes = readFileSync(file);
  return plan.shards.map((s) =>
    bytes
      .subarray(s.start, s.end)
      .toString('utf8')
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => {
        const g = (JSON.parse(l) as { group?: string | number | null }).group;
        return g === undefined || g === null ? 'none' : `${typeof g}:${String(g)}`;
      }),
  );
}

function checkCovers(file: string, plan: ShardPlan): void {
  const text = readFileSync(file);
  expect(plan.bytes).toBe(text.length);
  let at = 0,
    lineNo = 1,
    records = 0;
  for (const s of plan.shards) {
    expect(s.start).toBe(at);
    expect(s.firstLine).toBe(lineNo);
    const part = text.subarray(s.start, s.end).toString('utf8');
    const lines = part.split('\n');
    expect(s.records).toBe(lines.filter((l) => l.trim() !== '').length);
    lineNo += lines.length - 1;
    at = s.end;
    records += s.records;
  }
  expect(at).toBe(text.length);
  expect(plan.records).toBe(records);
}

describe('planShards', () => {
  it('cuts contiguous groups between groups only, each shard at least shardBytes long', async () => {
    const lines: string[] = [];
    for (let g = 0; g < 40; g++) for (let k = 0; k < 1 + (g % 4); k++) lines.push(line(`q${g}`, lines.length));
    const file = write(lines.join('\n') + '\n');
    const plan = await planShards(file, 400, 1 << 20);
    checkCovers(file, plan);
    expect(plan.shards.length).toBeGreaterThan(3);
    for (const s of plan.shards.slice(0, -1)) expect(s.end - s.start).toBeGreaterThanOrEqual(400);
    const seen = new Map<string, number>();
    groupsByShard(file, plan).forEach((gs, k) =>
      gs.forEach((g) => {
        expect(seen.get(g) ?? k).toBe(k);
        seen.set(g, k);
      }),
    );
  });

  it('keeps a group that reappears later in one shard with everything between', async () => {
    const lines = ['a', 'b', 'c', 'd', 'b', 'e', 'f', 'g'].map((g, i) => line(g, i));
    const file = write(lines.join('\n') + '\n');
    const plan = await planShards(file, 1, 1 << 20);
    checkCovers(file, plan);
    expect(groupsByShard(file, plan)).toEqual([['string:a'], ['string:b', 'string:c', 'string:d', 'string:b'], ['string:e'], ['string:f'], ['string:g']]);
  });

  it('treats ungrouped records as one group, and "1" and 1 as different groups', async () => {
    const groups = [undefined, undefined, 1, '1', 1, 'x', undefined, 'y', 'z'];
    const file = write(groups.map((g, i) => line(g, i)).join('\n'));
    const plan = await planShards(file, 1, 1 << 20);
    checkCovers(file, plan);
    expect(groupsByShard(file, plan)).toEqual([['none', 'none', 'number:1', 'string:1', 'number:1', 'string:x', 'none'], ['string:y'], ['string:z']]);
  });

  it('counts blank lines, a BOM and CRLF endings into the line numbers without cutting at them', async () => {
    const text = '\uFEFF' + line('a', 0) + '\r\n\r\n' + line('a', 1) + '\n\n\n' + line('b', 2) + '\r\n' + line('c', 3) + '\n   \n';
    const file = write(text);
    const plan = await planShards(file, 1, 1 << 20);
    checkCovers(file, plan);
    expect(plan.shards.map((s) => [s.firstLine, s.records])).toEqual([
      [1, 2],
      [6, 1],
      [7, 1],
    ]);
  });

  it('leaves lines that are not valid records (bad JSON, bad group, overlong) to the scorer without constraining the cut', async () => {
    const lines = [line('a', 0), '{"group": "a", ', line('b', 1), '{"group": 1.5}', 'x'.repeat(300), line('c', 2)];
    const file = write(lines.join('\n') + '\n');
    const plan = await planShards(file, 1, 200);
    checkCovers(file, plan);
    expect(plan.shards.map((s) => s.records)).toEqual([2, 3, 1]);
  });

  it('never starts a shard at a line a single-process run would read differently (a byte-order mark after line 1)', async () => {
    // A worker's stream drops a BOM before its first line, as ecr score does for the file's first
    // line; a shard starting at such a line would accept what a single-process run rejects.
    const lines = [line('a', 0), '\uFEFF' + line('b', 1), line('c', 2)];
    const file = write(lines.join('\n') + '\n');
    const plan = await planShards(file, 1, 1 << 20);
    checkCovers(file, plan);
    expect(plan.shards.map((s) => s.firstLine)).toEqual([1, 3]);
  });

  it('plans nothing for an empty or blank input', async () => {
    expect((await planShards(write(''), 10, 1 << 20)).shards).toEqual([]);
    expect((await planShards(write('\n  \n\r\n'), 10, 1 << 20)).shards).toEqual([]);
  });

  it('never splits a group and covers the file, for any order of groups and any shard size', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.oneof(
            fc.constantFrom<unknown>(undefined, null, 0, 1, '1', 'a', 'b'),
            fc.integer({ min: 0, max: 30 }).map((n) => `g${n}`),
          ),
          { minLength: 1, maxLength: 60 },
        ),
        fc.integer({ min: 1, max: 3000 }),
        async (groups, shardBytes) => {
          const file = write(groups.map((g, i) => line(g, i)).join('\n') + '\n');
          const plan = await planShards(file, shardBytes, 1 << 20);
          checkCovers(file, plan);
          const shardOf = new Map<string, number>();
          groupsByShard(file, plan).forEach((gs, k) =>
            gs.forEach((g) => {
              expect(shardOf.get(g) ?? k).toBe(k);
              shardOf.set(g, k);
            }),
          );
        },
      ),
      { numRuns: 150 },
    );
  });
});

describe('scanGroup (the planner reads groups without parsing whole records)', () => {
  /** What the planner keys a line by: the scan, or a parse where the scan defers. */
  const planned = (text: string) => {
    const b = Buffer.from(text, 'utf8');
    const v = scanGroup(b, 0, b.length);
    if (v === BLANK) return 'blank';
    if (v !== FALLBACK) return v;
    if (text.trim() === '') return 'blank';
    try {
      return groupOfValue(JSON.parse(text));
    } catch {
      return undefined;
    }
  };
  const parsed = (text: string) => {
    if (text.trim() === '') return 'blank';
    try {
      return groupOfValue(JSON.parse(text));
    } catch {
      return undefined;
    }
  };
  const oneLine = (v: unknown, tabs: boolean) => (tabs ? JSON.stringify(v, null, '\t').replace(/\n/g, ' ') : JSON.stringify(v));

  it('agrees with JSON.parse on every line that is valid JSON', () => {
    const groupValue = fc.oneof(
      fc.string(),
      fc.string({ unit: 'binary' }),
      fc.integer(),
      fc.double(),
      fc.constant(null),
      fc.jsonValue(),
      fc.constantFrom('a"b', 'c\\d', '\u2028', 'é', ''),
    );
    const key = fc.oneof(fc.constantFrom('group', 'steps', 'id', 'meta', 'grou', 'groups', 'gr"oup', 'group\\'), fc.string());
    fc.assert(
      fc.property(fc.array(fc.tuple(key, fc.oneof(groupValue, fc.jsonValue())), { maxLength: 6 }), fc.boolean(), fc.boolean(), (entries, tabs, escapeKey) => {
        // Built as text so that repeated keys stay repeated (JSON.parse keeps the last).
        const body = entries.map(([k, v]) => `${JSON.stringify(k)}:${oneLine(v ?? null, tabs)}`).join(tabs ? ' ,\t' : ',');
        let text = `${tabs ? ' \t' : ''}{${body}}${tabs ? '\r' : ''}`;
        if (escapeKey) text = text.replace(/"group"/g, '"gr\\u006fup"');
        expect(planned(text)).toStrictEqual(parsed(text));
      }),
      { numRuns: 2000 },
    );
  });

  it('agrees on any JSON value as a line, and on blank lines', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        const text = JSON.stringify(v);
        expect(planned(text)).toStrictEqual(parsed(text));
      }),
      { numRuns: 500 },
    );
    for (const text of [
      '',
      '   ',
      '\t\r',
      '\u00a0',
      '\uFEFF',
      '\uFEFF{"group": 1}',
      '{"group": 1} x',
      '{"group": 1}}',
      '{"group":-0}',
      '{"group": 9007199254740993}',
      '{"group": 1e2}',
      '{"a": "}", "group": "{"}',
    ]) {
      expect(planned(text), JSON.stringify(text)).toStrictEqual(parsed(text));
    }
  });
});
