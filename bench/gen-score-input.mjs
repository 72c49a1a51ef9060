#!/usr/bin/env node
/**
 * Writes a synthetic `ecr score` input: N records of T steps x m components, to stdout.
 * usage: node bench/gen-score-input.mjs N [--t 5] [--m 8] [--groups none|distinct|K|blocks:K]
 *   none      no "group" field (one shared group)
 *   distinct  every record in its own group ("g0", "g1", ...)
 *   K         K groups, round robin
 *   blocks:K  contiguous groups of K records (the candidates of one prompt together)
 * Values come from a fixed-seed generator so runs are comparable. Used for the memory figures in
 * the README (`/usr/bin/time -v node dist/cli.js score big.jsonl --backend cpu --out o.jsonl`).
 */
import { parseArgs } from 'node:util';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { t: { type: 'string', default: '5' }, m: { type: 'string', default: '8' }, groups: { type: 'string', default: 'none' } },
});
const n = Number(positionals[0] ?? 1000);
const t = Number(values.t);
const m = Number(values.m);
const groups = values.groups;
let seed = 12345;
const rand = () => (seed = (seed * 1103515245 + 12345) >>> 0) / 4294967296;

// A pool of step rows to draw from keeps generation cheap (formatting numbers dominates).
const rows = Array.from({ length: 4096 }, () => `[${Array.from({ length: m }, () => rand().toFixed(4)).join(',')}]`);
let buf = '';
for (let i = 0; i < n; i++) {
  let steps = '';
  for (let s = 0; s < t; s++) steps += (s ? ',' : '') + rows[(rand() * rows.length) | 0];
  const group =
    groups === 'none'
      ? ''
      : groups === 'distinct'
        ? `,"group":"g${i}"`
        : groups.startsWith('blocks:')
          ? `,"group":"g${Math.floor(i / Number(groups.slice(7)))}"`
          : `,"group":"g${i % Number(groups)}"`;
  buf += `{"id":"r${i}"${group},"steps":[${steps}]}\n`;
  if (buf.length > 1 << 20) {
    if (!process.stdout.write(buf)) await new Promise((r) => process.stdout.once('drain', r));
    buf = '';
  }
}
process.stdout.write(buf);
