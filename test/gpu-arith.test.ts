/**
 * Chunk and dispatch arithmetic, buffer size classes, the f32 tau rounding and the host encoders,
 * all without a GPU; then one forced-small-chunk run on whatever adapter exists (the software one
 * here) that must equal the unsplit run.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { alignUp, hostArray, maxChunkTrajectories, planChunks, refoldDispatch, type ChunkLimits } from '../src/backends/webgpu/device/dispatch.js';
import { BackendUnavailableError, GpuError, UsageError } from '../src/core/errors.js';
import { sizeClass } from '../src/backends/webgpu/device/buffer-pool.js';
import { packParams, PARAMS_BYTES, crWeightsUniform } from '../src/backends/webgpu/uniforms.js';
import { encodeUnorm16Range, decodeUnorm16 } from '../src/backends/webgpu/encode.js';
import { stagedWorkgroupSize } from '../src/backends/webgpu/programs/staged.js';
import { chunkedBindings, inputLayout, shapeOf, SEGMENT_ALIGN } from '../src/backends/webgpu/layout.js';
import { resolveConfig } from '../src/core/config.js';
import { newBackend, webGpuGate } from './webgpu-gate.js';

describe('refoldDispatch', () => {
  it('keeps small dispatches 1D', () => {
    expect(refoldDispatch(1, 65535)).toEqual({ x: 1, y: 1 });
    expect(refoldDispatch(65535, 65535)).toEqual({ x: 65535, y: 1 });
    expect(refoldDispatch(0, 65535)).toEqual({ x: 0, y: 0 });
  });
  it('refolds oversized dispatches into x*y >= total with both within the limit and little waste', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 65535 * 65535 }), fc.integer({ min: 1, max: 65535 }), (total, max) => {
        fc.pre(total <= max * max);
        const { x, y } = refoldDispatch(total, max);
        expect(x).toBeLessThanOrEqual(max);
        expect(y).toBeLessThanOrEqual(max);
        expect(x * y).toBeGreaterThanOrEqual(total);
        expect(x * y - total).toBeLessThan(y); // less than one row of padding
      }),
    );
  });
  it('rejects a dispatch beyond max^2 and impossible counts with a typed GpuError, never a RangeError', () => {
    for (const bad of [
      () => refoldDispatch(5 * 5 + 1, 5),
      () => refoldDispatch(-1, 5),
      () => refoldDispatch(1.5, 5),
      () => refoldDispatch(2 ** 60, 65535),
      () => refoldDispatch(3, 0),
    ]) {
      expect(bad).toThrow(GpuError);
      expect(bad).not.toThrow(RangeError);
    }
  });
});

describe('chunk planning', () => {
  const limits: ChunkLimits = {
    maxBindingBytes: 128 << 20,
    maxBufferBytes: 2 ** 31,
    trajectoriesPerWorkgroup: 1,
    maxWorkgroupsPerDimension: 65535,
    alignTrajectories: 256,
    targetChunkBytes: 0,
  };
  it('bounds every binding by the binding limit and aligns the count', () => {
    const per = maxChunkTrajectories(
      [
        { name: 'e', bytesPerTrajectory: 160 },
        { name: 'out', bytesPerTrajectory: 24 },
      ],
      limits,
    );
    expect(per % 256).toBe(0);
    expect(per * 160).toBeLessThanOrEqual(128 << 20);
    expect((per + 256) * 160).toBeGreaterThan(128 << 20);
  });
  it('honours the streaming target and the buffer limit', () => {
    const per = maxChunkTrajectories(
      [
        { name: 'e', bytesPerTrajectory: 100 },
        { name: 'out', bytesPerTrajectory: 28 },
      ],
      { ...limits, targetChunkBytes: 1 << 20 },
    );
    expect(per * 128).toBeLessThanOrEqual(1 << 20);
    const small = maxChunkTrajectories([{ name: 'e', bytesPerTrajectory: 1000 }], { ...limits, maxBufferBytes: 1 << 20, maxBindingBytes: 1 << 30 });
    expect(small * 1000).toBeLessThanOrEqual(1 << 20);
  });
  it('a batch whose aligned group of trajectories cannot fit a binding is BackendUnavailableError naming the input', () => {
    const tooWide = () => maxChunkTrajectories([{ name: 'embeddings', bytesPerTrajectory: 1 << 20 }], limits);
    expect(tooWide).toThrow(BackendUnavailableError);
    expect(tooWide).toThrow(/embeddings/);
    expect(() => planChunks(10, 0)).toThrow(GpuError);
  });
  it('host arrays too large to allocate are GpuError out-of-memory naming what, not RangeError', () => {
    expect(() => hostArray(Float64Array, 2 ** 53, 'covariance')).toThrow(GpuError);
    expect(() => hostArray(Float64Array, 2 ** 53, 'covariance')).toThrow(/out-of-memory: cannot allocate covariance/);
    expect(hostArray(Float64Array, 3, 'x')).toHaveLength(3);
  });
  it('planChunks covers 0..n exactly once in order', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 100000 }), fc.integer({ min: 1, max: 5000 }), (n, per) => {
        const chunks = planChunks(n, per);
        let next = 0;
        for (const c of chunks) {
          expect(c.start).toBe(next);
          expect(c.count).toBeGreaterThan(0);
          expect(c.count).toBeLessThanOrEqual(per);
          next += c.count;
        }
        expect(next).toBe(n);
      }),
    );
  });
  it('lays out input segments at aligned, non-overlapping offsets within the buffer', () => {
    const batch = {
      n: 1000,
      t: 5,
      m: 7,
      steps: new Float64Array(35000),
      d: 3,
      embeddings: new Float64Array(15000),
      expected: new Float64Array(5000),
      realized: new Float64Array(5000),
    };
    for (const unorm16 of [false, true]) {
      const shape = shapeOf(batch, unorm16, false);
      const { segments, totalBytes } = inputLayout(shape, 768, 513);
      let end = 0;
      for (const s of Object.values(segments)) {
        expect(s.offset % SEGMENT_ALIGN).toBe(0);
        expect(s.offset).toBeGreaterThanOrEqual(end);
        expect(s.bytes % 4).toBe(0);
        end = s.offset + s.bytes;
      }
      expect(end).toBeLessThanOrEqual(totalBytes);
      expect(segments.e.bytes).toBe(unorm16 ? alignUp(513 * 35 * 2, 4) : 513 * 35 * 4);
      expect(chunkedBindings(shape, true).find((b) => b.name === 'e')!.bytesPerTrajectory).toBe(unorm16 ? 70 : 140);
    }
  });
  it('crWeightsUniform: equal first m weights (or none given)', () => {
    expect(crWeightsUniform(null, 8)).toBe(true);
    expect(crWeightsUniform([0.5, 0.5, 0.5], 3)).toBe(true);
    expect(crWeightsUniform([1, 1, 0.5], 3)).toBe(false);
    expect(crWeightsUniform([1, 1, 0.5], 2)).toBe(true); // only the first m count
  });
  it('shrinks the staged workgroup until its staged E fits workgroup storage', () => {
    expect(stagedWorkgroupSize(40, 32768, 256)).toBe(128);
    expect(stagedWorkgroupSize(16 * 32, 32768, 256)).toBe(8);
    expect(stagedWorkgroupSize(16 * 32, 16384, 256)).toBe(4);
    expect(stagedWorkgroupSize(64, 32768, 256)).toBe(64); // 128 would need 128 * 65 * 4 > 32768
    expect(stagedWorkgroupSize(10000, 16384, 256)).toBe(0);
    // A preferred size is honoured when it fits: 256 lanes of 41 words is exactly 41984 bytes.
    expect(stagedWorkgroupSize(40, 41984, 256, 256)).toBe(256);
    expect(stagedWorkgroupSize(40, 41983, 256, 256)).toBe(128);
    expect(stagedWorkgroupSize(40, 49152, 128, 256)).toBe(128);
    expect(stagedWorkgroupSize(40, 49152, 256, 64)).toBe(64);
  });
});

describe('host encoders and uniforms', () => {
  it('sizeClass never returns less than asked and wastes at most 12.5% above 1 MiB', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 2 ** 31 }), (b) => {
        const s = sizeClass(b);
        expect(s).toBeGreaterThanOrEqual(b);
        if (b > 1 << 20) expect(s / b).toBeLessThanOrEqual(1.125 + 1e-9);
      }),
    );
  });
  it('unorm16 encoding rounds to the nearest code and zeroes the odd tail', () => {
    const src = Float64Array.from([0, 1, 0.5, 1 / 3, 0.999999]);
    const dst = new Uint16Array(6).fill(7);
    encodeUnorm16Range(src, 0, 5, dst);
    expect(Array.from(dst)).toEqual([0, 65535, 32768, 21845, 65535, 0]);
    const back = decodeUnorm16(dst, 5);
    src.forEach((x, i) => expect(Math.abs(back[i] - x)).toBeLessThanOrEqual(1 / 131070 + 1e-15));
  });
  it('packParams writes each field at its WGSL uniform offset with its declared type; arrays zero-padded', () => {
    const v = packParams({
      n: 3,
      t: 5,
      m: 8,
      a: 4,
      d: 6,
      chunkStart: 256,
      confIndex: 2,
      flags: 9,
      wgPerRow: 7,
      lambda: 0.25,
      vmax: 0.25,
      dmax: 2,
      w: [0.1, 0.2, 0.3, 0.2, 0.2],
      crW: [0.5],
    });
    expect(v.byteLength).toBe(PARAMS_BYTES);
    expect([0, 4, 8, 12, 16, 20, 24, 28, 32].map((o) => v.getUint32(o, true))).toEqual([3, 5, 8, 4, 6, 256, 2, 9, 7]);
    expect(v.getFloat32(36, true)).toBe(0.25);
    expect(v.getFloat32(48, true)).toBeCloseTo(0.1, 7); // w: array<vec4<f32>, 2> aligned to 16
    expect(v.getFloat32(64, true)).toBeCloseTo(0.2, 7);
    expect(v.getFloat32(80, true)).toBe(0.5);
    expect(v.getFloat32(84, true)).toBe(0); // weights beyond those given are zero, never a silent 1
  });
});

const gate = await webGpuGate();
describe.skipIf(!gate.available)(`forced small chunks on the adapter (${gate.available ? gate.adapter : `skipped: ${gate.reason}`})`, () => {
  it('a run split into 256-trajectory chunks equals the unsplit run', async () => {
    const whole = newBackend();
    const split = newBackend({ chunkTrajectories: 256 });
    try {
      const n = 2000,
        t = 4,
        m = 6;
      let s = 42;
      const steps = Float64Array.from({ length: n * t * m }, () => (s = (Math.imul(s, 48271) >>> 0) % 2147483647) / 2147483647);
      const batch = { n, t, m, steps, groups: Int32Array.from({ length: n }, (_, i) => i % 37) };
      const cfg = resolveConfig({ tau: 0.5 });
      const a = await whole.computeMetrics(batch, cfg);
      const b = await split.computeMetrics(batch, cfg);
      for (const k of ['evb', 'cr', 'ts', 'es', 'pd', 'cci'] as const) expect(Array.from(b[k])).toEqual(Array.from(a[k]));
    } finally {
      await whole.dispose();
      await split.dispose();
    }
  }, 600_000);
  it('streaming sizes that are not positive integers are a UsageError when the backend is made, before any GPU work', async () => {
    for (const tuning of [
      { chunkTrajectories: 0.5 },
      { slots: 0 },
      { targetChunkBytes: -1 },
      { chunkTrajectories: Number.NaN },
      { replays: 0 },
      { kernel: 'fast' as never },
    ]) {
      expect(() => newBackend(tuning), JSON.stringify(tuning)).toThrow(UsageError);
    }
  }, 600_000);
});
