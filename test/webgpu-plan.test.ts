/**
 * The WebGPU design's device-free parts: the pure plan (kernel choice, chunks, dispatches,
 * uniform blocks, selection), the program declarations (bindings generated, never hand-written;
 * every declared binding used) and the uniform block generated from one description. No adapter
 * is needed: capabilities are made up to look like the H200 and the software adapter.
 */
import { describe, expect, it } from 'vitest';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { resolveConfig } from '../src/core/config.js';
import { BackendUnavailableError, UsageError } from '../src/core/errors.js';
import { plan, UNIFORM_STRIDE, type DeviceCaps } from '../src/backends/webgpu/plan.js';
import { bindingDeclarations, bindGroupEntries, layoutEntries, pipelineSpec, type Program } from '../src/backends/webgpu/programs/program.js';
import { stagedProgram } from '../src/backends/webgpu/programs/staged.js';
import { lanesProgram } from '../src/backends/webgpu/programs/lanes.js';
import { generalProgram } from '../src/backends/webgpu/programs/general.js';
import { tsEmbeddingsProgram } from '../src/backends/webgpu/programs/ts-embeddings.js';
import { covarianceProgram } from '../src/backends/webgpu/programs/covariance.js';
import { Flag, PARAMS_BYTES, PARAMS_FIELDS, PARAMS_LAYOUT, paramsWgsl } from '../src/backends/webgpu/uniforms.js';
import { metricStride } from '../src/backends/webgpu/layout.js';

const SHADERS = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'shaders');
const shader = (f: string) => readFileSync(path.join(SHADERS, f), 'utf8');
const MiB = 1 << 20;

const h200: DeviceCaps = {
  subgroups: true,
  subgroupMinSize: 32,
  maxComputeWorkgroupSizeX: 256,
  maxComputeWorkgroupStorageSize: 32768,
  limits: {
    maxStorageBufferBindingSize: 2 ** 31,
    maxBufferSize: 2 ** 31,
    maxComputeWorkgroupsPerDimension: 65535,
    maxComputeWorkgroupStorageSize: 32768,
    maxComputeWorkgroupSizeX: 256,
    minStorageBufferOffsetAlignment: 32,
  },
};
const llvmpipe: DeviceCaps = {
  subgroups: false,
  subgroupMinSize: 4,
  maxComputeWorkgroupSizeX: 256,
  maxComputeWorkgroupStorageSize: 16384,
  limits: {
    maxStorageBufferBindingSize: 128 * MiB,
    maxBufferSize: 2 ** 31,
    maxComputeWorkgroupsPerDimension: 65535,
    maxComputeWorkgroupStorageSize: 16384,
    maxComputeWorkgroupSizeX: 256,
    minStorageBufferOffsetAlignment: 256,
  },
};
const opts = { unorm16: false, covariance: false, tuning: {} };
const shape = (n: number, t: number, m: number, extra: { d?: number; a?: number; rewards?: boolean } = {}) => ({
  n,
  t,
  m,
  d: extra.d,
  a: extra.a,
  embeddings: extra.d ? new Float32Array(0) : undefined,
  policy: extra.a ? new Float32Array(0) : undefined,
  expected: extra.rewards ? new Float32Array(0) : undefined,
});

describe('plan (no device)', () => {
  it('chooses the kernel by shape and device: rows on the H200 for m = 8, staged on the software adapter, general beyond the fast paths', () => {
    const cfg = resolveConfig({});
    expect(plan(shape(1000, 5, 8), cfg, opts, h200).kernel).toBe('rows');
    expect(plan(shape(1000, 5, 7), cfg, opts, h200).kernel).toBe('components');
    expect(plan(shape(1000, 5, 8), cfg, opts, llvmpipe).kernel).toBe('staged');
    for (const caps of [h200, llvmpipe]) {
      expect(plan(shape(1000, 24, 40), cfg, opts, caps).kernel).toBe('general');
      expect(plan(shape(10, 4096, 5000), cfg, opts, caps).kernel).toBe('general');
    }
    expect(() => plan(shape(10, 24, 40), cfg, { ...opts, tuning: { kernel: 'staged' } }, h200)).toThrow(UsageError);
  });

  it('selection is planned on the host: no pass selects, whatever the groups', () => {
    const p = plan(shape(5000, 5, 8), resolveConfig({}), opts, h200);
    expect(p.selection).toBe('host');
    expect(p.chunks.flatMap((c) => c.passes.map((x) => x.program.label))).toEqual(['metrics.lanes.rows']);
  });

  it('chunks cover the batch in order within the binding limit, each with its own uniform block and a dispatch that covers it', () => {
    const cfg = resolveConfig({ crWeights: [1, 0.5, 0.5, 1, 1, 1, 1, 1] });
    const p = plan(shape(10_000_000, 5, 8, { d: 16 }), cfg, opts, llvmpipe);
    let next = 0;
    for (const c of p.chunks) {
      expect(c.start).toBe(next);
      next += c.count;
      expect(c.count * 5 * 16 * 4).toBeLessThanOrEqual(128 * MiB);
      expect(c.passes.map((x) => x.program.label)).toEqual(['tsEmbeddings', 'metrics.staged']);
      c.passes.forEach((pass, k) => {
        const v = new DataView(c.uniforms, k * UNIFORM_STRIDE, PARAMS_BYTES);
        const at = (name: string) => PARAMS_LAYOUT.fields.find((f) => f.name === name)!.offset;
        expect(v.getUint32(at('n'), true)).toBe(c.count);
        expect(v.getUint32(at('chunkStart'), true)).toBe(c.start);
        expect(v.getUint32(at('wgPerRow'), true)).toBe(pass.dispatch.x);
        expect(v.getUint32(at('d'), true)).toBe(16);
        expect(v.getUint32(at('flags'), true) & Flag.TS_EMB).toBe(Flag.TS_EMB);
        expect(v.getFloat32(at('crW') + 4, true)).toBe(0.5);
        const perWorkgroup = pass.program.label === 'tsEmbeddings' ? pass.program.constants.WG / 32 : pass.program.constants.WG;
        expect(pass.dispatch.x * pass.dispatch.y * perWorkgroup).toBeGreaterThanOrEqual(c.count);
        expect(pass.dispatch.x).toBeLessThanOrEqual(65535);
      });
    }
    expect(next).toBe(10_000_000);
    expect(p.chunks.length).toBeGreaterThan(1);
    expect(p.crWeights).toBeNull(); // the fast paths read CR weights from Params
  });

  it('the general kernel: one workgroup per trajectory, TS from embeddings inside it, CR weights as a batch buffer, any m', () => {
    const cfg = resolveConfig({ crWeights: Array.from({ length: 40 }, (_, j) => j / 40) });
    const p = plan(shape(70_000, 24, 40, { d: 1024, a: 64 }), cfg, { ...opts, covariance: true }, llvmpipe);
    expect(p.kernel).toBe('general');
    expect(p.chunks[0].passes.map((x) => x.program.label)).toEqual(['metrics.general', 'covariance']);
    const general = p.chunks[0].passes[0];
    expect(general.dispatch.x * general.dispatch.y).toBeGreaterThanOrEqual(p.chunks[0].count);
    const many = plan(shape(100_000, 17, 2), resolveConfig({}), opts, h200).chunks[0].passes[0];
    expect(many.dispatch.y).toBeGreaterThan(1); // 100,000 workgroups > 65535: refolded into 2D
    expect(many.dispatch.x * many.dispatch.y).toBeGreaterThanOrEqual(100_000);
    expect(Array.from(p.crWeights!)).toEqual(Array.from(cfg.crWeights!, Math.fround));
    expect(general.program.constants.CR_UNIFORM).toBe(0);
    expect(plan(shape(10, 24, 40), resolveConfig({}), opts, llvmpipe).crWeights).toEqual(new Float32Array([1]));
  });

  it('keeps an asked-for chunk size; lowers the 256 alignment for trajectories too wide for 256 per binding', () => {
    const cfg = resolveConfig({});
    expect(
      plan(shape(1000, 5, 8), cfg, { ...opts, chunkTrajectories: 3 }, h200)
        .chunks.map((c) => c.count)
        .slice(0, 2),
    ).toEqual([3, 3]);
    // T = 4096, m = 5000: 82 MB of E per trajectory; one per chunk under 128 MiB.
    const wide = plan(shape(3, 4096, 5000), cfg, opts, llvmpipe);
    expect(wide.chunks.map((c) => c.count)).toEqual([1, 1, 1]);
  });

  it('a trajectory larger than the binding limit is BackendUnavailableError naming the input, before any device work', () => {
    const cfg = resolveConfig({});
    expect(() => plan(shape(2, 4096, 10, { d: 20000 }), cfg, opts, llvmpipe)).toThrow(BackendUnavailableError);
    expect(() => plan(shape(2, 4096, 10, { d: 20000 }), cfg, opts, llvmpipe)).toThrow(/"embeddings"/);
    expect(() => plan(shape(2, 16, 32), cfg, { ...opts, tuning: { slots: 0 } }, llvmpipe)).toThrow(UsageError);
  });
});

describe('programs declare their bindings once', () => {
  const programs: Program[] = [
    stagedProgram(5, 8, 128, false),
    stagedProgram(3, 5, 64, true, false),
    lanesProgram(5, 8, 256, false, 'rows', true, true),
    lanesProgram(5, 7, 256, true, 'components', false, false),
    generalProgram(false, true),
    tsEmbeddingsProgram(5, 384, 256),
    covarianceProgram(false),
  ];
  it('no shader file writes a @binding by hand', () => {
    for (const f of readdirSync(SHADERS).filter((x) => x.endsWith('.wgsl'))) expect(shader(f), f).not.toMatch(/@binding/);
  });
  it.each(programs.map((p) => [p.label, p] as const))(
    '%s: numbered in order, each declared binding used by its files, layout and bind group from the same list',
    (_l, p) => {
      const decl = bindingDeclarations(p).split('\n');
      expect(decl).toHaveLength(p.bindings.length);
      const text = p.files.map(shader).join('\n');
      p.bindings.forEach((b, i) => {
        expect(decl[i]).toBe(`@group(0) @binding(${i}) var<${b.access === 'uniform' ? 'uniform' : `storage, ${b.access}`}> ${b.name}: ${b.type};`);
        expect(text, `${p.label} never reads ${b.name}`).toMatch(new RegExp(`\\b${b.name}\\b`));
      });
      const layout = layoutEntries(p);
      expect(layout.map((e) => e.binding)).toEqual(p.bindings.map((_, i) => i));
      expect(layout.map((e) => e.buffer!.type)).toEqual(
        p.bindings.map((b) => (b.access === 'uniform' ? 'uniform' : b.access === 'read' ? 'read-only-storage' : 'storage')),
      );
      const fake = (name: string) => ({ buffer: { label: name } as unknown as GPUBuffer });
      const entries = bindGroupEntries(p, Object.fromEntries([...p.bindings.map((b) => [b.name, fake(b.name)]), ['unused', fake('unused')]]));
      expect(entries.map((e) => ((e.resource as GPUBufferBinding).buffer as unknown as { label: string }).label)).toEqual(p.bindings.map((b) => b.name));
      expect(() => bindGroupEntries(p, {})).toThrow(/no resource for binding/);
      expect(pipelineSpec(p).prelude.join('\n')).toContain(bindingDeclarations(p));
    },
  );
});

describe('the uniform block from one description', () => {
  it('offsets follow the WGSL uniform layout rules, field by field', () => {
    // u32/f32: 4 bytes aligned to 4; array<vec4<f32>, N>: 16 N bytes aligned to 16; the struct rounds to 16.
    expect(PARAMS_LAYOUT.fields.map((f) => [f.name, f.offset, f.size])).toEqual([
      ['n', 0, 4],
      ['t', 4, 4],
      ['m', 8, 4],
      ['a', 12, 4],
      ['d', 16, 4],
      ['chunkStart', 20, 4],
      ['confIndex', 24, 4],
      ['flags', 28, 4],
      ['wgPerRow', 32, 4],
      ['lambda', 36, 4],
      ['vmax', 40, 4],
      ['dmax', 44, 4],
      ['w', 48, 32],
      ['crW', 80, 128],
    ]);
    expect(PARAMS_BYTES).toBe(208);
  });
  it('the generated WGSL declares exactly those fields in that order, and the shaders read no other', () => {
    const wgsl = paramsWgsl();
    const declared = [...wgsl.matchAll(/^ {2}(\w+): (.+), \/\//gm)].map((m) => [m[1], m[2]]);
    expect(declared).toEqual(PARAMS_FIELDS.map(([n, t]) => [n, typeof t === 'string' ? t : `array<vec4<f32>, ${t.vec4Array}>`]));
    const names = new Set(PARAMS_FIELDS.map(([n]) => n as string));
    for (const f of readdirSync(SHADERS).filter((x) => x.endsWith('.wgsl'))) {
      for (const m of shader(f).matchAll(/\bP\.(\w+)/g)) expect(names.has(m[1]), `${f} reads P.${m[1]}`).toBe(true);
      for (const m of shader(f).matchAll(/\bFLAG_(\w+)/g)) expect(m[1] in Flag, `${f} uses FLAG_${m[1]}`).toBe(true);
    }
  });
  it('metric outputs: six arrays at a stride of the count rounded to 64, as outStride in common.wgsl', () => {
    expect(shader('common.wgsl')).toContain('return (n + 63u) & ~63u;');
    expect([1, 64, 65, 1000].map(metricStride)).toEqual([64, 64, 128, 1024]);
  });
});
