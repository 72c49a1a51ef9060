/**
 * The one cache-namespace check (src/cache/namespace.ts) and the four places a namespace comes in:
 * each keeps its own error type and the name it gives the value, around one wording.
 */
import { describe, expect, it } from 'vitest';
import { checkCacheNamespace } from '../src/cache/namespace.js';
import { redisKey } from '../src/cache/redis-keys.js';
import { FunctionProvider } from '../src/llm/function-provider.js';
import { EcrPipeline } from '../src/pipeline/pipeline.js';
import { parseEcrSettings } from '../src/server/request-settings.js';
import { runCli } from './helpers/cli.js';

const RULE = 'must be 1 to 64 letters, digits, "_", "-" or ".", got "a:b"';

describe('checkCacheNamespace', () => {
  it('returns a namespace, and hands anything else to the caller with the shared wording', () => {
    for (const ok of ['a', 'tenant-1.prod_x', 'x'.repeat(64)]) expect(checkCacheNamespace(ok, () => new Error('no'))).toBe(ok);
    for (const bad of ['', 'a:b', 'x'.repeat(65), 'é', 7, null, {}]) {
      let problem = '';
      expect(() => checkCacheNamespace(bad, (p) => new TypeError((problem = p)))).toThrow(TypeError);
      expect(problem).toBe(`must be 1 to 64 letters, digits, "_", "-" or ".", got ${JSON.stringify(bad)}`);
    }
  });

  it('RunOptions.cache.namespace: an ECR_PIPELINE_OPTION error naming cache.namespace, before any call', async () => {
    let calls = 0;
    const p = new EcrPipeline({
      provider: new FunctionProvider(async () => {
        calls++;
        return 'x';
      }),
      adaptiveK: false,
      backend: 'cpu',
    });
    await expect(p.run('q', { cache: { namespace: 'a:b' } })).rejects.toMatchObject({ code: 'ECR_PIPELINE_OPTION', message: `cache.namespace ${RULE}` });
    expect(calls).toBe(0);
  });

  it('the gateway: a 400 naming the parameter', () => {
    expect(() => parseEcrSettings({ cache: { namespace: 'a:b' } }, { maxK: 8, maxHorizon: 4 })).toThrow(`ecr.cache.namespace: ${RULE}`);
    expect(parseEcrSettings({ cache: { namespace: 'a.b' } }, { maxK: 8, maxHorizon: 4 }).cache).toEqual({ namespace: 'a.b' });
  });

  it('redisKey: a TypeError of its own', () => {
    expect(() => redisKey('steps', 'a'.repeat(64), 'a:b')).toThrow(new TypeError('redisKey: bad namespace "a:b"'));
    expect(redisKey('steps', 'a'.repeat(64), 'ns')).toBe(`ecr:v1:ns:steps:${'a'.repeat(64)}`);
  });

  it('ecr run --cache-namespace: a usage error (exit 2) naming the flag', () => {
    const r = runCli(['run', '--cache-namespace', 'a:b', 'q']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`ecr run: --cache-namespace ${RULE}\n`);
  });
});
