/**
 * `ecr serve --audit-log FILE` (ECR-SPEC 8.1): one line per scored candidate, in the spec's key
 * order, nothing from the prompt unless --log-prompts, and readable by `ecr calibrate` and
 * `ecr maturity` as it is.
 */
import { mkdtempSync, readFileSync, renameSync, writeFileSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import OpenAI from 'openai';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { applyProbabilityMap } from '../src/core/probability-map.js';
import { LoopbackServer } from '../src/testing/loopback-server.js';
import { resolveServeConfig } from '../src/server/config.js';
import { startGateway } from '../src/server/app.js';
import { runCli } from './helpers/cli.js';

const PROMPT = 'Which river flows through Vienna? (audit-log test)';
const SPEC_ORDER = [
  'time',
  'group',
  'requestId',
  'id',
  'EVB',
  'CR',
  'TS',
  'ES',
  'PD',
  'CCI',
  'admissible',
  'selected',
  'reason',
  'tau',
  'pCorrect',
  'messages',
];
type Started = Awaited<ReturnType<typeof startGateway>>;

let upstream: LoopbackServer;
let dir: string;
const gateways: Started[] = [];

async function gateway(args: string[]): Promise<Started> {
  const config = resolveServeConfig(['--upstream', upstream.url, '--port', '0', '--log-level', 'silent', '--retries', '0', ...args], {});
  if (config === 'help') throw new Error('unexpected help');
  const g = await startGateway(config);
  gateways.push(g);
  return g;
}

async function ask(g: Started, content: string, ecr: Record<string, unknown> = {}, headers: Record<string, string> = {}) {
  const client = new OpenAI({ baseURL: `${g.url}/v1`, apiKey: 'sk-unused', maxRetries: 0 });
  const { response } = await client.chat.completions
    .create(
      {
        model: 'ecr/loop',
        messages: [{ role: 'user', content }],
        ecr: { k: 3, horizon: 1, fixedK: true, ...ecr },
      } as OpenAI.ChatCompletionCreateParamsNonStreaming,
      { headers },
    )
    .withResponse();
  return { requestId: response.headers.get('x-request-id')!, cci: Number(response.headers.get('x-ecr-cci')) };
}

const readLines = (file: string) =>
  readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);

async function closeAll() {
  for (const g of gateways.splice(0)) {
    g.app.server.closeAllConnections();
    await g.app.close();
  }
}

beforeAll(async () => {
  upstream = await LoopbackServer.start();
  dir = mkdtempSync(path.join(os.tmpdir(), 'ecr-audit-'));
});
afterAll(async () => {
  await upstream.close();
});
afterEach(closeAll);

describe('ecr serve --audit-log', () => {
  it('writes one line per candidate, grouped by request id, with the selected one matching the response', async () => {
    const file = path.join(dir, 'audit.jsonl');
    const g = await gateway(['--audit-log', file]);
    const a = await ask(g, PROMPT);
    const b = await ask(g, `${PROMPT} again`);
    await closeAll(); // flushes the asynchronous writer
    const lines = readLines(file);
    expect(lines).toHaveLength(6);
    for (const l of lines) {
      expect(Object.keys(l)).toEqual(SPEC_ORDER.filter((k) => k in l));
      expect(l.pCorrect).toBeUndefined();
      expect(l.reason).toBe('best-admissible');
      expect(typeof l.tau).toBe('number');
      expect(Number.isNaN(Date.parse(l.time as string))).toBe(false);
    }
    for (const r of [a, b]) {
      const mine = lines.filter((l) => l.group === r.requestId);
      expect(mine.every((l) => l.requestId === r.requestId)).toBe(true);
      expect(mine.map((l) => l.id)).toEqual([0, 1, 2]);
      const selected = mine.filter((l) => l.selected);
      expect(selected).toHaveLength(1);
      expect(selected[0].CCI).toBe(r.cci);
      expect(Math.max(...mine.map((l) => l.CCI as number))).toBe(r.cci);
    }
    // Nothing from the prompt or the answers.
    const text = readFileSync(file, 'utf8');
    expect(text).not.toContain('Vienna');
    expect(text).not.toContain('messages');
    expect(text).not.toContain('The answer');
  });

  it("groups by the server's own request id: a client's x-request-id is echoed and kept as requestId, never the group", async () => {
    const file = path.join(dir, 'client-ids.jsonl');
    const g = await gateway(['--audit-log', file]);
    const answers = [];
    for (const q of ['first', 'second', 'third']) answers.push(await ask(g, `${PROMPT} ${q}`, {}, { 'x-request-id': 'fixed-id' }));
    await closeAll();
    expect(answers.map((a) => a.requestId)).toEqual(['fixed-id', 'fixed-id', 'fixed-id']); // the header echoes the client's id
    const lines = readLines(file);
    expect(lines).toHaveLength(9);
    expect(lines.every((l) => l.requestId === 'fixed-id')).toBe(true);
    const groups = new Set(lines.map((l) => l.group));
    expect(groups.size).toBe(3);
    for (const group of groups) {
      expect(group).toMatch(/^req_[0-9a-f]{32}$/);
      expect(lines.filter((l) => l.group === group && l.selected)).toHaveLength(1);
    }
  });

  it('appends across restarts, and puts the messages on each line only with --log-prompts', async () => {
    const file = path.join(dir, 'prompts.jsonl');
    writeFileSync(file, '');
    await ask(await gateway(['--audit-log', file]), PROMPT);
    await closeAll();
    await ask(await gateway(['--audit-log', file, '--log-prompts']), PROMPT);
    await closeAll();
    const lines = readLines(file);
    expect(lines).toHaveLength(6);
    expect(lines.slice(0, 3).every((l) => l.messages === undefined)).toBe(true);
    expect(lines.slice(3).map((l) => l.messages)).toEqual([0, 1, 2].map(() => [{ role: 'user', content: PROMPT }]));
  });

  it("writes pCorrect from the server's calibration map, but not for a request with its own weights", async () => {
    const file = path.join(dir, 'calibrated.jsonl');
    const calibration = { method: 'platt', a: 6, b: -4 } as const;
    const cfg = path.join(dir, 'serve-config.json');
    writeFileSync(cfg, JSON.stringify({ scoring: { calibration } }));
    const g = await gateway(['--audit-log', file, '--config', cfg]);
    const own = await ask(g, PROMPT);
    const weighted = await ask(g, `${PROMPT} weighted`, { weights: { alpha: 0.3, beta: 0.1, gamma: 0.2, delta: 0.2, epsilon: 0.2 } });
    await closeAll();
    const lines = readLines(file);
    const mine = lines.filter((l) => l.group === own.requestId);
    expect(mine).toHaveLength(3);
    for (const l of mine) expect(l.pCorrect).toBeCloseTo(applyProbabilityMap(calibration, l.CCI as number), 12);
    const theirs = lines.filter((l) => l.group === weighted.requestId);
    expect(theirs).toHaveLength(3);
    for (const l of theirs) expect(l.pCorrect).toBeUndefined();
  });

  it('serves with the configuration ecr calibrate wrote, as --config on its own: its tau and calibration map apply', async () => {
    const saved = path.join(dir, 'calibrated.json');
    const cal = runCli(['calibrate', 'data/calibration-synthetic.jsonl', '--bootstrap', '20', '--backend', 'cpu', '--out', saved]);
    expect(cal.code, cal.stderr).toBe(0);
    const config = JSON.parse(readFileSync(saved, 'utf8'));
    const file = path.join(dir, 'with-calibrated.jsonl');
    const g = await gateway(['--audit-log', file, '--config', saved]);
    await ask(g, PROMPT);
    await closeAll();
    const lines = readLines(file);
    expect(lines).toHaveLength(3);
    for (const l of lines) {
      expect(l.tau).toBe(config.tau);
      expect(l.pCorrect).toBeCloseTo(applyProbabilityMap(config.calibration, l.CCI as number), 12);
    }
    // A file mixing server settings with bare scoring keys is still refused, naming the key.
    const mixed = path.join(dir, 'mixed.json');
    writeFileSync(mixed, JSON.stringify({ port: 0, tau: 0.5 }));
    await expect(gateway(['--config', mixed])).rejects.toThrow(/unknown key "tau"/);
  });

  it('reopens the file by name after rotation', async () => {
    const file = path.join(dir, 'rotated.jsonl');
    const g = await gateway(['--audit-log', file]);
    await ask(g, PROMPT);
    await g.gateway.auditLog!.flush();
    renameSync(file, `${file}.1`);
    g.gateway.auditLog!.reopen();
    await ask(g, `${PROMPT} after rotation`);
    await closeAll();
    const before = readLines(`${file}.1`),
      after = readLines(file);
    expect(before.length + after.length).toBe(6);
    expect(after).toHaveLength(3);
  });

  it('refuses to start when the file cannot be written', async () => {
    const bad = path.join(dir, 'no-such-dir', 'audit.jsonl');
    await expect(gateway(['--audit-log', bad])).rejects.toThrow(/cannot write --audit-log .*no-such-dir.*ENOENT/);
    const r = runCli(['serve', '--upstream', upstream.url, '--port', '0', '--audit-log', bad]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/cannot write --audit-log/);
    expect(r.stderr).not.toMatch(/^\s+at /m);
    expect(existsSync(bad)).toBe(false);
  });

  it('is read by ecr calibrate and ecr maturity as it is', async () => {
    const file = path.join(dir, 'for-calibrate.jsonl');
    const g = await gateway(['--audit-log', file]);
    for (let i = 0; i < 4; i++) await ask(g, `${PROMPT} ${i}`, {}, i < 2 ? { 'x-request-id': 'same-client-id' } : {});
    await closeAll();
    const cal = runCli(['calibrate', file, '--bootstrap', '50']);
    expect(cal.stderr).toBe('');
    expect(cal.code).toBe(0);
    expect(cal.stdout).toMatch(/^records 12, groups 4, labelled 0$/m);
    // Read, not rejected (exit 2): 12 records are too few for M1's 95th percentile (exit 4, no
    // verdict), and the checks that need evaluative vectors or dialogue keys say why they do not apply.
    const mat = runCli(['maturity', file]);
    expect(mat.stderr).toBe('');
    expect(mat.code).toBe(4);
    expect(mat.stdout).toMatch(/^M1-floor-free\s+INSUFFICIENT-DATA/m);
    expect(mat.stdout).toMatch(/^M3\s+NOT-APPLICABLE/m);
  });
});
