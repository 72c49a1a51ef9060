/**
 * Backend options passed down explicitly (issue 19): the registry keeps one instance per backend
 * and distinct options, the CLI maps its flags and ECR_WEBGPU_* / ECR_DEBUG to options (parsed
 * when a webgpu backend is made, as when the backend read them itself), and a WebGpuBackend's
 * insides are reached through webgpu/internals.ts only.
 */
import { afterAll, describe, expect, it, vi } from 'vitest';
import { chooseBackend, disposeBackends, getBackend, type BackendOptions } from '../src/backends/registry.js';
import { optionsKey } from '../src/backends/options.js';
import type { CpuBackend } from '../src/backends/cpu/index.js';
import { WebGpuBackend } from '../src/backends/webgpu/index.js';
import { internalsOf } from '../src/backends/webgpu/internals.js';
import { adapterFlag, backendOptionsFromEnv, webGpuDebug, webGpuOptionsFromEnv } from '../src/cli/backend-env.js';
import { UsageError } from '../src/core/errors.js';
import { scoreBatch } from '../src/engine/score-batch.js';
import { runCli } from './helpers/cli.js';

afterAll(() => disposeBackends());

describe('the registry: one instance per backend and distinct options', () => {
  it('equal options written afresh share an instance; other options get their own', async () => {
    const a = await getBackend('cpu', { cpu: { threads: 1, sharedThreshold: 10 } });
    expect(await getBackend('cpu', { cpu: { sharedThreshold: 10, threads: 1 } })).toBe(a);
    expect(await getBackend('cpu', { cpu: { threads: 2, sharedThreshold: 10 } })).not.toBe(a);
    expect(await getBackend('cpu')).not.toBe(a);
    expect(await getBackend('cpu', {})).toBe(await getBackend('cpu'));
    expect((a as CpuBackend).threads).toBe(1);
  });

  it("only the named backend's options count, and a webgpu function is not called for the cpu", async () => {
    const webgpu = vi.fn(() => {
      throw new UsageError('not wanted');
    });
    const cpu = await getBackend('cpu', { cpu: { threads: 1 }, webgpu });
    expect(cpu).toBe(await getBackend('cpu', { cpu: { threads: 1 } }));
    expect(await getBackend('cpu-reference', { cpu: { threads: 1 } })).toBe(await getBackend('cpu-reference'));
    expect(webgpu).not.toHaveBeenCalled();
  });

  it("offload is the cpu backend's own option", async () => {
    expect(((await getBackend('cpu', { cpu: { offload: true } })) as CpuBackend).offload).toBe(true);
    expect(((await getBackend('cpu')) as CpuBackend).offload).toBe(false);
  });

  it('webgpu options that fail when made fail getBackend, and `auto` stays on the cpu with one warning', async () => {
    const options: BackendOptions = {
      webgpu: () => {
        throw new UsageError('ECR_WEBGPU_KERNEL must be one of auto, got "x"');
      },
    };
    await expect(getBackend('webgpu', options)).rejects.toThrow(/ECR_WEBGPU_KERNEL must be one of/);
    const write = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      expect(await chooseBackend('auto', { n: 4_000_000, t: 5, m: 8 }, options)).toBe('cpu');
      expect(write.mock.calls.map((c) => String(c[0]))).toEqual([
        'ecr: auto backend: using cpu, WebGPU unavailable (ECR_WEBGPU_KERNEL must be one of auto, got "x")\n',
      ]);
    } finally {
      write.mockRestore();
    }
  });

  it('options that are not an object are a UsageError', async () => {
    await expect(getBackend('cpu', null as unknown as BackendOptions)).rejects.toThrow(/backend options must be an object, got null/);
    await expect(getBackend('cpu', 'fast' as unknown as BackendOptions)).rejects.toBeInstanceOf(UsageError);
  });

  it('scoreBatch scores on the instance of its backendOptions', async () => {
    const backend = (await getBackend('cpu', { cpu: { threads: 1, copyThreshold: 3 } })) as CpuBackend;
    backend.lastRun = { threads: -1, copiedInputs: false, copiedOutputs: false, offloaded: false };
    const res = await scoreBatch(
      { n: 2, t: 3, m: 2, steps: new Float64Array(12).fill(0.5) },
      {},
      { backend: 'cpu', backendOptions: { cpu: { copyThreshold: 3, threads: 1 } } },
    );
    expect(res.backend).toBe('cpu');
    expect(backend.lastRun.threads).toBe(1);
  });

  it('optionsKey: plain values by value whatever the key order, functions by identity', () => {
    const f = () => {};
    expect(optionsKey({ a: 1, b: { c: 'x', d: undefined } })).toBe(optionsKey({ b: { c: 'x' }, a: 1 }));
    expect(optionsKey({ f })).toBe(optionsKey({ f }));
    expect(optionsKey({ f })).not.toBe(optionsKey({ f: () => {} }));
    expect(optionsKey(undefined)).toBe(optionsKey({}).slice(0, 0));
  });
});

describe("the CLI's backend options (src/cli/backend-env.ts)", () => {
  it('maps ECR_WEBGPU_* and ECR_DEBUG to webgpu options; unset or empty variables leave the defaults', () => {
    expect(webGpuOptionsFromEnv({}, { reportAdapter: false })).toEqual({ compact: undefined, disableRobustness: undefined, kernel: undefined, debug: false });
    expect(webGpuOptionsFromEnv({ ECR_WEBGPU_ADAPTER: '', ECR_DEBUG: '' }, { reportAdapter: false }).adapter).toBeUndefined();
    const o = webGpuOptionsFromEnv(
      { ECR_WEBGPU_COMPACT: 'unorm16', ECR_WEBGPU_UNSAFE_FAST: '0', ECR_WEBGPU_KERNEL: 'staged', ECR_DEBUG: 'net, WebGPU' },
      { reportAdapter: false },
    );
    expect(o).toMatchObject({ compact: 'unorm16', disableRobustness: false, kernel: 'staged', debug: true });
    expect(webGpuOptionsFromEnv({ ECR_WEBGPU_UNSAFE_FAST: '1' }, { reportAdapter: false }).disableRobustness).toBe(true);
    for (const topic of ['webgpu', 'all', '*', '1']) expect(webGpuDebug({ ECR_DEBUG: topic })).toBe(true);
    expect(webGpuDebug({ ECR_DEBUG: 'cache' })).toBe(false);
  });

  it('--adapter wins over ECR_WEBGPU_ADAPTER, and each says so in the adapter line', () => {
    expect(webGpuOptionsFromEnv({ ECR_WEBGPU_ADAPTER: 'native' }, { reportAdapter: false })).toMatchObject({
      adapter: 'native',
      adapterReason: 'forced by ECR_WEBGPU_ADAPTER',
    });
    expect(webGpuOptionsFromEnv({ ECR_WEBGPU_ADAPTER: 'native' }, { adapter: 'opengles', reportAdapter: false })).toMatchObject({
      adapter: 'opengles',
      adapterReason: 'forced by --adapter',
    });
  });

  it('a malformed variable is a UsageError naming it, even beside --adapter', () => {
    expect(() => webGpuOptionsFromEnv({ ECR_WEBGPU_ADAPTER: 'metal' }, { adapter: 'native', reportAdapter: false })).toThrow(
      'ECR_WEBGPU_ADAPTER must be one of auto, native, opengles, got "metal"',
    );
    expect(() => webGpuOptionsFromEnv({ ECR_WEBGPU_COMPACT: 'fp16' }, { reportAdapter: false })).toThrow(
      'ECR_WEBGPU_COMPACT must be one of unorm16, got "fp16"',
    );
    expect(() => webGpuOptionsFromEnv({ ECR_WEBGPU_UNSAFE_FAST: 'yes' }, { reportAdapter: false })).toThrow(
      'ECR_WEBGPU_UNSAFE_FAST must be one of 1, 0, got "yes"',
    );
    expect(() => webGpuOptionsFromEnv({ ECR_WEBGPU_KERNEL: 'fast' }, { reportAdapter: false })).toThrow(
      /^ECR_WEBGPU_KERNEL must be one of auto, rows, .*, got "fast"$/,
    );
    expect(() => adapterFlag('metal')).toThrow('--adapter must be one of auto, native, opengles, got "metal"');
  });

  it('the adapter report is a callback only when the command asks for it', () => {
    expect(webGpuOptionsFromEnv({}, { reportAdapter: true }).reportAdapter).toBeTypeOf('function');
    expect(webGpuOptionsFromEnv({ ECR_DEBUG: 'webgpu' }, { reportAdapter: false }).reportAdapter).toBeUndefined();
  });

  it('the environment is read when a webgpu backend is made, not before', () => {
    const options = backendOptionsFromEnv({ ECR_WEBGPU_KERNEL: 'fast' }, { reportAdapter: true });
    expect(typeof options.webgpu).toBe('function');
    expect(() => (options.webgpu as () => unknown)()).toThrow(/ECR_WEBGPU_KERNEL/);
  });

  it('a bad ECR_WEBGPU_* value stops a run that uses the GPU (exit 2), and no other', () => {
    const input = '{"id":"a","steps":[[0.1,0.2],[0.2,0.3]]}\n';
    const cpu = runCli(['score', '-', '--backend', 'cpu'], input, { ECR_WEBGPU_KERNEL: 'fast', ECR_DEBUG: '' });
    expect(cpu.code).toBe(0);
    expect(cpu.stderr).toBe('');
    const gpu = runCli(['score', '-', '--backend', 'webgpu'], input, { ECR_WEBGPU_KERNEL: 'fast', ECR_DEBUG: '' });
    expect(gpu.code).toBe(2);
    expect(gpu.stderr).toMatch(/^ecr score: ECR_WEBGPU_KERNEL must be one of auto, rows, .*, got "fast"\n$/);
  });
});

describe('webgpu/internals.ts', () => {
  it("reaches a WebGpuBackend's device, plans and shape check, which are no longer methods of the class", () => {
    const backend = new WebGpuBackend();
    const i = internalsOf(backend);
    expect(Object.keys(i).sort()).toEqual(['device', 'planFor', 'unsupported']);
    for (const gone of ['device', 'planFor', 'unsupported']) expect((backend as unknown as Record<string, unknown>)[gone]).toBeUndefined();
    expect(() => internalsOf({})).toThrow(UsageError);
  });
});
