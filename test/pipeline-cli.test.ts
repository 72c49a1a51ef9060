/** `ecr run` end to end: the built CLI as a child process against the loopback server. */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LoopbackServer } from '../src/testing/loopback-server.js';

const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const CLI = path.join(ROOT, 'dist', 'cli.js');

// Asynchronous on purpose: the server runs in this process and must keep answering.
function ecr(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const clean = { ...process.env };
    for (const k of ['ECR_BASE_URL', 'OPENAI_BASE_URL', 'ECR_MODEL', 'ECR_API_KEY', 'OPENAI_API_KEY', 'ECR_EMBEDDING_MODEL']) delete clean[k];
    execFile(process.execPath, [CLI, ...args], { cwd: ROOT, env: { ...clean, ...env }, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr });
    });
  });
}

let server: LoopbackServer;
beforeAll(async () => {
  server = await LoopbackServer.start({ latencyMs: 2 });
});
afterAll(async () => {
  await server.close();
});

describe('ecr run', () => {
  it('--json prints exactly one object with the response, metrics, candidates and stats', async () => {
    const r = await ecr([
      'run',
      'What is the boiling point of water?',
      '--base-url',
      server.url,
      '--model',
      'm',
      '-k',
      '3',
      '--fixed-k',
      '--horizon',
      '2',
      '--preset',
      'compliance',
      '--seed',
      '1',
      '--json',
    ]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines).toHaveLength(1);
    const out = JSON.parse(lines[0]);
    expect(Object.keys(out)).toEqual(['response', 'selectedIndex', 'admissible', 'metrics', 'candidates', 'stats']);
    expect(out.candidates).toHaveLength(3);
    expect(out.response).toBe(out.candidates[out.selectedIndex].text);
    expect(out.response).toMatch(/^\[c:[0-9a-f]+ s:0\]/);
    expect(Object.keys(out.metrics)).toEqual(['EVB', 'CR', 'TS', 'ES', 'PD', 'CCI']);
    expect(out.stats.scoring.weights).toEqual({ alpha: 0.15, beta: 0.3, gamma: 0.1, delta: 0.2, epsilon: 0.25 });
    expect(out.stats.calls.generate.requests).toBe(1);
    expect(out.stats.calls.unroll.requests).toBe(6);
    expect(out.stats.horizon).toBe(2);
  });

  it('prints the response and an audit table, and --metrics prints Prometheus text', async () => {
    const r = await ecr(['run', 'Say hello.', '--metrics'], { ECR_BASE_URL: server.url, ECR_MODEL: 'm' });
    expect(r.code).toBe(0);
    const [response] = r.stdout.split('\n');
    expect(response).toMatch(/^\[c:[0-9a-f]+ s:0\]/);
    expect(r.stdout).toMatch(/ # {2}status +EVB +CR +TS +ES +PD +CCI/);
    expect(r.stdout).toMatch(/K 1\/4 \(risk 0\.\d\d\)/);
    expect(r.stdout).toMatch(/^ecr_llm_calls_total\{kind="generate"\} 1$/m);
  });

  it('exits 2 on bad arguments', async () => {
    for (const args of [
      ['run'],
      ['run', 'a', 'b', '--base-url', server.url, '--model', 'm'],
      ['run', 'x', '-k', '0', '--base-url', server.url, '--model', 'm'],
      ['run', 'x', '--bogus'],
      ['run', 'x', '--base-url', server.url],
      ['run', 'x', '--base-url', server.url, '--model', 'm', '--preset', 'nope'],
    ]) {
      const r = await ecr(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(/^ecr run: /);
    }
  });

  it('--deadline: exit 124 with one line on stderr; with --json an error object on stdout', async () => {
    const slow = await LoopbackServer.start({ latencyMs: 5000 });
    try {
      const args = ['run', 'Say hello.', '--base-url', slow.url, '--model', 'm', '--deadline', '0.2'];
      const r = await ecr(args);
      expect(r.code).toBe(124);
      expect(r.stdout).toBe('');
      expect(r.stderr).toBe('ecr run: the request did not finish within its deadline of 200 ms\n');
      const j = await ecr([...args, '--json']);
      expect(j.code).toBe(124);
      expect(JSON.parse(j.stdout)).toEqual({
        error: {
          type: 'DeadlineExceededError',
          code: 'ECR_DEADLINE',
          message: 'the request did not finish within its deadline of 200 ms',
          exitCode: 124,
          deadlineMs: 200,
        },
      });
      expect((await ecr([...args.slice(0, -1), '0'])).code).toBe(2);
    } finally {
      await slow.close();
    }
  });

  it('a base URL without /v1 that answers 404 asks "did you mean BASE/v1?"; --json gives the error object', async () => {
    const r = await ecr(['run', 'Say hello.', '--base-url', server.rootUrl, '--model', 'm', '--json']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`HTTP 404 after 1 attempt(s) (did you mean ${server.rootUrl}/v1?)`);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    const lines = r.stdout.trim().split('\n');
    expect(lines).toHaveLength(1);
    const { error } = JSON.parse(lines[0]);
    expect(error).toMatchObject({ type: 'NoSurvivingCandidatesError', code: 'ECR_NO_SURVIVORS', exitCode: 1 });
    expect(error.failures[0]).toMatchObject({ index: 0, stage: 'generate' });
    expect(error.failures[0].message).toContain(`did you mean ${server.rootUrl}/v1?`);
  });

  it('--json turns a usage error into an error object on stdout too (exit 2)', async () => {
    const r = await ecr(['run', 'x', '--json', '--bogus']);
    expect(r.code).toBe(2);
    expect(JSON.parse(r.stdout).error).toMatchObject({ type: 'UsageError', code: 'ECR_USAGE', exitCode: 2 });
    expect(r.stderr).toMatch(/^ecr run: Unknown option '--bogus'/);
  });

  describe('the upstream key (issue 19: one meaning for --api-key across ecr run and ecr serve)', () => {
    const WARNING = 'ecr run: warning: --api-key is deprecated in ecr run; use --upstream-api-key (in ecr serve, --api-key is the key clients send)\n';
    const keysSent = async (args: string[], env: NodeJS.ProcessEnv = {}) => {
      server.clearLog();
      const r = await ecr(['run', 'Say hello.', '--base-url', server.url, '--model', 'm', '-k', '1', '--fixed-k', '--horizon', '1', '--json', ...args], env);
      return { ...r, keys: [...new Set(server.log.map((e) => e.authorization))] };
    };

    it('--upstream-api-key is sent as the bearer token, with no warning', async () => {
      const r = await keysSent(['--upstream-api-key', 'sk-new']);
      expect(r.code).toBe(0);
      expect(r.stderr).toBe('');
      expect(r.keys).toEqual(['Bearer sk-new']);
    });

    it('--api-key still works, with one warning line on stderr (stdout stays one JSON object)', async () => {
      const r = await keysSent(['--api-key', 'sk-old']);
      expect(r.code).toBe(0);
      expect(r.stderr).toBe(WARNING);
      expect(r.keys).toEqual(['Bearer sk-old']);
      expect(r.stdout.trim().split('\n')).toHaveLength(1);
    });

    it('the flag wins over ECR_API_KEY and OPENAI_API_KEY, which still apply without it', async () => {
      expect((await keysSent(['--upstream-api-key', 'sk-flag'], { ECR_API_KEY: 'sk-env' })).keys).toEqual(['Bearer sk-flag']);
      expect((await keysSent([], { ECR_API_KEY: 'sk-env', OPENAI_API_KEY: 'sk-openai' })).keys).toEqual(['Bearer sk-env']);
      expect((await keysSent([], { OPENAI_API_KEY: 'sk-openai' })).keys).toEqual(['Bearer sk-openai']);
    });

    it('both spellings at once are a usage error (exit 2)', async () => {
      const r = await ecr(['run', 'x', '--base-url', server.url, '--model', 'm', '--api-key', 'a', '--upstream-api-key', 'b']);
      expect(r.code).toBe(2);
      expect(r.stderr).toBe('ecr run: --api-key is the old name of --upstream-api-key: give only --upstream-api-key\n');
    });

    it('--help names --upstream-api-key and calls --api-key the old name', async () => {
      const r = await ecr(['run', '--help']);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/^ {2}--upstream-api-key KEY {2}bearer token \(ECR_API_KEY, OPENAI_API_KEY\); the old name --api-key still works/m);
      expect(r.stdout).not.toMatch(/^ {2}--api-key/m);
    });
  });

  it('exits 1 with a clear message when the server is unreachable after retries', async () => {
    // A port that was just free: bind, read it, close.
    const probe = await LoopbackServer.start();
    const url = probe.url;
    await probe.close();
    const r = await ecr(['run', 'Say hello.', '--base-url', url, '--model', 'm', '--retries', '1']);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(
      /^ecr run: all 1 candidate\(s\) failed; first failure \(generate\): generate call to http:\/\/127\.0\.0\.1:\d+\/v1\/chat\/completions failed after 2 attempt\(s\).*ECONNREFUSED/,
    );
    expect(r.stderr).not.toMatch(/internal error|\n\s+at /);
  });
});
