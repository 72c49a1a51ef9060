/**
 * Streams a batch through the kernels chunk by chunk. A ring of slots, each with a MAP_WRITE
 * staging buffer, device input/output buffers and a MAP_READ readback buffer, lets the host encode
 * chunk i+1 while the GPU computes chunk i and chunk i-1 is read back. Group selection runs last
 * over the whole batch (its per-trajectory records stay resident).
 */
import type { Batch } from '../../batch.js';
import { effectiveDmax, type ResolvedConfig } from '../../config.js';
import { GpuError } from '../../errors.js';
import type { BufferPool } from '../../gpu/buffer-pool.js';
import type { GpuDevice } from '../../gpu/device.js';
import { maxChunkTrajectories, planChunks, refoldDispatch, type Chunk } from '../../gpu/dispatch.js';
import type { PipelineCache } from '../../gpu/pipeline-cache.js';
import { BufferUsage, MapMode } from '../../gpu/usage.js';
import type { BackendOutput } from '../backend.js';
import { encodeBaseKeys, encodeRewardDiff, encodeUnorm16 } from './encode.js';
import {
  COVARIANCE_WG, GROUP_STATE_WORDS, MetricsBinding, SELECT_WG, TS_EMB_WG,
  covarianceKernel, metricsKernel, metricsWorkgroupSize, selectKernel, tsEmbeddingsKernel, type SelectPass,
} from './kernels.js';
import { chunkedBindings, inputLayout, outputLayout, shapeOf, type BatchShape, type InputName } from './layout.js';
import { Flag, PARAMS_BYTES, packParams, tauForF32, type Params } from './params.js';

export interface RunTuning {
  /** Trajectories per chunk (rounded down to a multiple of CHUNK_ALIGN); default from the limits and targetChunkBytes. */
  chunkTrajectories?: number;
  /** Soft size of one chunk's buffers in bytes (streaming granularity). */
  targetChunkBytes?: number;
  /** Chunks in flight. */
  slots?: number;
}

export interface RunOptions {
  covariance?: boolean;
  compact?: 'unorm16';
}

export interface StageTimes {
  stages: Record<string, number>;
  kernelMs?: number;
  chunks: number;
}

/** Chunk starts are multiples of this: keeps unorm16 pairs whole and selRec window offsets aligned. */
export const CHUNK_ALIGN = 256;
const DEFAULT_TARGET_CHUNK_BYTES = 64 << 20;
const UNIFORM_STRIDE = 256;
const MAX_M = 32;
const MAX_T = 16;

export interface RunContext {
  gpu: GpuDevice;
  pool: BufferPool;
  pipelines: PipelineCache;
  /** Tiny buffers bound where an input is absent (read-only ones may alias; writable ones may not). */
  dummies: { read: GPUBuffer; write1: GPUBuffer; write2: GPUBuffer };
}

/** Why this shape cannot run on the GPU, or null. */
export function unsupportedShape(t: number, m: number, maxWorkgroupStorage: number, maxWorkgroupSizeX: number): string | null {
  if (m > MAX_M) return `m = ${m} components exceed the GPU kernels' ${MAX_M}`;
  if (t > MAX_T) return `T = ${t} steps exceed the GPU kernels' ${MAX_T}`;
  if (metricsWorkgroupSize(t * m, maxWorkgroupStorage, maxWorkgroupSizeX) < 1) return `T*m = ${t * m} does not fit the workgroup storage`;
  return null;
}

function baseParams(batch: Batch, config: ResolvedConfig, flags: number): Params {
  return {
    n: 0, t: batch.t, m: batch.m, a: batch.a ?? 0, chunkStart: 0, confIndex: config.confIndex, flags, wgPerRow: 0,
    lambda: typeof config.lambda === 'number' ? config.lambda : 0,
    tau: tauForF32(config.tau), vmax: config.vmax, dmax: effectiveDmax(config, batch.policy ? batch.a : undefined),
    weights: config.weights, crWeights: config.crWeights,
  };
}

function flagsOf(shape: BatchShape, config: ResolvedConfig, select: boolean): number {
  let f = 0;
  if (shape.a) f |= Flag.POLICY;
  if (shape.rewards) f |= Flag.REWARDS;
  if (shape.d) f |= Flag.TS_EMB;
  if (shape.base) f |= Flag.BASE;
  if (shape.groups) f |= Flag.GROUPS;
  if (config.evbMode === 'max-abs-change') f |= Flag.EVB_MAXABS;
  if (config.lambda === 'ledoit-wolf') f |= Flag.SHRINK_LW;
  else if (config.shrinkTarget === 'scaled-identity') f |= Flag.SHRINK_SCALED;
  if (select) f |= Flag.SELECT;
  return f;
}

interface Slot {
  staging: GPUBuffer;
  input: GPUBuffer;
  output: GPUBuffer;
  readback: GPUBuffer;
  uniforms: GPUBuffer;
  /** TS from embeddings: its own buffer, as a buffer may not be written and read in one pass. */
  tsEmb: GPUBuffer | null;
  /** Resolves when the slot's previous chunk has been read back and its staging buffer is mapped again. */
  ready: Promise<void>;
}

class Timer {
  readonly stages: Record<string, number> = {};
  add(stage: string, since: number): void {
    this.stages[stage] = (this.stages[stage] ?? 0) + (performance.now() - since);
  }
}

/** Timestamp queries around each compute pass, when the device has them. */
class PassClock {
  private used = 0;
  constructor(readonly querySet: GPUQuerySet, readonly capacity: number) {}
  writes(): GPUComputePassTimestampWrites | undefined {
    if (this.used + 2 > this.capacity) return undefined;
    const w = { querySet: this.querySet, beginningOfPassWriteIndex: this.used, endOfPassWriteIndex: this.used + 1 };
    this.used += 2;
    return w;
  }
  get count(): number { return this.used; }
}

export async function runBatch(ctx: RunContext, batch: Batch, config: ResolvedConfig, options: RunOptions, tuning: RunTuning, profile: boolean): Promise<{ output: BackendOutput; times?: StageTimes }> {
  const { gpu, pool, pipelines } = ctx;
  const device = gpu.device;
  const limits = gpu.limits;
  const n = batch.n;
  const unorm16 = options.compact === 'unorm16';
  const shape = shapeOf(batch, unorm16, !!options.covariance);
  const tm = batch.t * batch.m;
  const why = unsupportedShape(batch.t, batch.m, limits.maxComputeWorkgroupStorageSize, limits.maxComputeWorkgroupSizeX);
  if (why) throw new GpuError('validation', `this batch cannot run on the GPU: ${why}`);
  const wg = metricsWorkgroupSize(tm, limits.maxComputeWorkgroupStorageSize, limits.maxComputeWorkgroupSizeX);

  const perChunkLimit = maxChunkTrajectories(chunkedBindings(shape), {
    maxBindingBytes: limits.maxStorageBufferBindingSize,
    maxBufferBytes: limits.maxBufferSize,
    trajectoriesPerWorkgroup: 1, // the TS kernel uses one workgroup per trajectory
    maxWorkgroupsPerDimension: limits.maxComputeWorkgroupsPerDimension,
    alignTrajectories: CHUNK_ALIGN,
    targetChunkBytes: tuning.targetChunkBytes ?? DEFAULT_TARGET_CHUNK_BYTES,
  });
  const perChunk = tuning.chunkTrajectories ? Math.max(CHUNK_ALIGN, Math.min(perChunkLimit, tuning.chunkTrajectories - (tuning.chunkTrajectories % CHUNK_ALIGN))) : perChunkLimit;
  const chunks = planChunks(n, perChunk);
  const capacity = Math.min(perChunk, n);

  let groupCount = 1;
  if (batch.groups) for (let i = 0; i < n; i++) if (batch.groups[i] >= groupCount) groupCount = batch.groups[i] + 1;
  const select = n * 16 <= limits.maxBufferSize && groupCount * GROUP_STATE_WORDS * 4 <= limits.maxStorageBufferBindingSize;
  const flags = flagsOf(shape, config, select);
  const base = baseParams(batch, config, flags);

  const metricsPipe = await pipelines.get(metricsKernel(batch.t, batch.m, wg, unorm16));
  const tsPipe = shape.d ? await pipelines.get(tsEmbeddingsKernel(batch.t)) : null;
  const covPipe = shape.covariance ? await pipelines.get(covarianceKernel(unorm16)) : null;
  const selPipes = select ? await Promise.all((['refine', 'index', 'finish'] as SelectPass[]).map((p) => pipelines.get(selectKernel(p)))) : null;

  const inLayoutFull = inputLayout(shape, capacity, capacity);
  const outLayout = outputLayout(shape, capacity);
  const readbackBytes = outLayout.cov.bytes ? outLayout.cov.offset + outLayout.cov.bytes : outLayout.metrics.bytes;
  const slotCount = Math.max(1, Math.min(tuning.slots ?? 3, chunks.length));

  const owned: GPUBuffer[] = [];
  const acquire = (bytes: number, usage: number, label: string) => {
    const b = pool.acquire(bytes, usage, label);
    owned.push(b);
    return b;
  };
  const slots: Slot[] = [];
  for (let s = 0; s < slotCount; s++) {
    slots.push({
      staging: acquire(inLayoutFull.totalBytes, BufferUsage.MAP_WRITE | BufferUsage.COPY_SRC, `ecr.webgpu.slot${s}.staging`),
      input: acquire(inLayoutFull.totalBytes, BufferUsage.STORAGE | BufferUsage.COPY_DST, `ecr.webgpu.slot${s}.input`),
      output: acquire(outLayout.totalBytes, BufferUsage.STORAGE | BufferUsage.COPY_SRC, `ecr.webgpu.slot${s}.output`),
      readback: acquire(readbackBytes, BufferUsage.MAP_READ | BufferUsage.COPY_DST, `ecr.webgpu.slot${s}.readback`),
      uniforms: acquire(3 * UNIFORM_STRIDE, BufferUsage.UNIFORM | BufferUsage.COPY_DST, `ecr.webgpu.slot${s}.uniforms`),
      tsEmb: shape.d ? acquire(capacity * 4, BufferUsage.STORAGE, `ecr.webgpu.slot${s}.tsEmb`) : null,
      ready: Promise.resolve(),
    });
  }
  const selRec = select ? acquire(Math.max(n * 16, 256), BufferUsage.STORAGE, 'ecr.webgpu.selRec') : null;
  const groupState = select ? acquire(groupCount * GROUP_STATE_WORDS * 4, BufferUsage.STORAGE | BufferUsage.COPY_DST, 'ecr.webgpu.groupState') : null;
  const selected = select ? acquire(groupCount * 4, BufferUsage.STORAGE | BufferUsage.COPY_SRC, 'ecr.webgpu.groupSelected') : null;

  let clock: PassClock | null = null;
  let querySet: GPUQuerySet | null = null;
  if (profile && gpu.timestamps) {
    const capacityQ = Math.min(4096, 2 * (chunks.length * 3 + (select ? 2 * chunks.length + 1 : 0)));
    querySet = device.createQuerySet({ type: 'timestamp', count: capacityQ, label: 'ecr.webgpu.timestamps' });
    clock = new PassClock(querySet, capacityQ);
  }
  const timer = profile ? new Timer() : null;

  const out: BackendOutput = {
    evb: new Float64Array(n), cr: new Float64Array(n), ts: new Float64Array(n), es: new Float64Array(n), pd: new Float64Array(n), cci: new Float64Array(n),
    admissible: new Uint8Array(n),
  };
  if (shape.covariance) out.covariance = new Float64Array(n * batch.m * batch.m);

  let failure: unknown = null;
  let succeeded = false;
  try {
    if (select) {
      const init = new Uint32Array(groupCount * GROUP_STATE_WORDS);
      for (let g = 0; g < groupCount; g++) { init[g * 5 + 3] = 0xffffffff; init[g * 5 + 4] = 0xffffffff; }
      device.queue.writeBuffer(groupState!, 0, init);
    }
    const tauF64 = config.tau;
    for (let k = 0; k < chunks.length; k++) {
      const chunk = chunks[k];
      const slot = slots[k % slotCount];
      await slot.ready;
      if (failure) throw failure;
      gpu.check();
      let t0 = performance.now();
      if (slot.staging.mapState === 'unmapped') await mapOrFail(gpu, slot.staging, MapMode.WRITE, 'staging map');
      const layout = inputLayout(shape, capacity, chunk.count);
      fillStaging(slot.staging.getMappedRange(0, layout.totalBytes), batch, shape, chunk, layout.segments);
      slot.staging.unmap();
      writeUniforms(device, slot.uniforms, base, chunk, wg, limits.maxComputeWorkgroupsPerDimension, shape, batch);

      const uploadEnc = device.createCommandEncoder({ label: `ecr.webgpu.chunk${k}.upload` });
      uploadEnc.copyBufferToBuffer(slot.staging, 0, slot.input, 0, layout.totalBytes);
      const computeEnc = profile ? device.createCommandEncoder({ label: `ecr.webgpu.chunk${k}.compute` }) : uploadEnc;
      encodeChunkCompute(computeEnc, ctx, slot, chunk, layout.segments, outLayout, batch.m, wg, limits.maxComputeWorkgroupsPerDimension, {
        metricsPipe, tsPipe, covPipe, selRec, groupState, clock,
      });
      const readEnc = profile ? device.createCommandEncoder({ label: `ecr.webgpu.chunk${k}.readback` }) : uploadEnc;
      readEnc.copyBufferToBuffer(slot.output, 0, slot.readback, 0, chunk.count * 24);
      if (shape.covariance) readEnc.copyBufferToBuffer(slot.output, outLayout.cov.offset, slot.readback, outLayout.cov.offset, chunk.count * batch.m * batch.m * 4);

      if (profile) {
        await gpu.scoped(() => device.queue.submit([uploadEnc.finish()]));
        await doneOrFail(gpu);
        timer!.add('upload', t0);
        t0 = performance.now();
        await gpu.scoped(() => device.queue.submit([computeEnc.finish()]));
        await doneOrFail(gpu);
        timer!.add('kernel', t0);
        t0 = performance.now();
        await gpu.scoped(() => device.queue.submit([readEnc.finish()]));
        await mapOrFail(gpu, slot.readback, MapMode.READ, 'readback map');
        unpackChunk(slot.readback, chunk, out, batch.m, outLayout.cov.offset, tauF64);
        slot.readback.unmap();
        timer!.add('readback', t0);
      } else {
        const submitted = gpu.scoped(() => device.queue.submit([uploadEnc.finish()]));
        slot.ready = (async () => {
          try {
            await submitted;
            await mapOrFail(gpu, slot.readback, MapMode.READ, 'readback map');
            unpackChunk(slot.readback, chunk, out, batch.m, outLayout.cov.offset, tauF64);
            slot.readback.unmap();
            await mapOrFail(gpu, slot.staging, MapMode.WRITE, 'staging map');
          } catch (err) {
            failure ??= err;
          }
        })();
      }
    }
    await Promise.all(slots.map((s) => s.ready));
    if (failure) throw failure;

    if (select) {
      const t0 = performance.now();
      out.groupSelected = await runSelection(ctx, chunks, groupCount, selRec!, groupState!, selected!, selPipes!, clock, limits.maxComputeWorkgroupsPerDimension);
      timer?.add('select', t0);
    }
    let kernelMs: number | undefined;
    if (clock && clock.count > 0) kernelMs = await readTimestamps(ctx, clock);
    succeeded = true;
    return { output: out, times: timer ? { stages: timer.stages, kernelMs, chunks: chunks.length } : undefined };
  } finally {
    // Wait out anything still in flight before buffers go back to the pool (or are destroyed).
    await Promise.allSettled(slots.map((s) => s.ready));
    querySet?.destroy();
    for (const b of owned) {
      if (succeeded) pool.release(b);
      else b.destroy();
    }
  }
}

async function mapOrFail(gpu: GpuDevice, buffer: GPUBuffer, mode: number, what: string): Promise<void> {
  try {
    await buffer.mapAsync(mode);
  } catch (err) {
    throw gpu.rejection(`${what} of ${buffer.label}`, err);
  }
  gpu.check();
}

async function doneOrFail(gpu: GpuDevice): Promise<void> {
  try {
    await gpu.device.queue.onSubmittedWorkDone();
  } catch (err) {
    throw gpu.rejection('queue', err);
  }
  gpu.check();
}

function fillStaging(mapped: ArrayBuffer, batch: Batch, shape: BatchShape, chunk: Chunk, seg: Record<InputName, { offset: number; bytes: number }>): void {
  const { start, count } = chunk;
  const tm = batch.t * batch.m;
  if (shape.unorm16) {
    // Encode into ordinary memory, then one bulk copy: small scattered writes into mapped memory are slow.
    const codes = new Uint16Array(seg.e.bytes / 2);
    encodeUnorm16(batch.steps, start * tm, count * tm, codes);
    new Uint16Array(mapped, seg.e.offset, seg.e.bytes / 2).set(codes);
  } else {
    new Float32Array(mapped, seg.e.offset, count * tm).set(batch.steps.subarray(start * tm, (start + count) * tm));
  }
  if (shape.a) {
    const w = batch.t * shape.a;
    new Float32Array(mapped, seg.policy.offset, count * w).set(batch.policy!.subarray(start * w, (start + count) * w));
  }
  if (shape.rewards) encodeRewardDiff(batch.expected!, batch.realized!, start * batch.t, count * batch.t, new Float32Array(mapped, seg.rewardDiff.offset, count * batch.t));
  if (shape.d) {
    const w = batch.t * shape.d;
    new Float32Array(mapped, seg.embeddings.offset, count * w).set(batch.embeddings!.subarray(start * w, (start + count) * w));
  }
  if (shape.base) encodeBaseKeys(batch.baseScore!, start, count, new Uint32Array(mapped, seg.baseKey.offset, count * 2));
  if (shape.groups) new Uint32Array(mapped, seg.groups.offset, count).set(batch.groups!.subarray(start, start + count));
}

function writeUniforms(device: GPUDevice, uniforms: GPUBuffer, base: Params, chunk: Chunk, wg: number, maxPerDim: number, shape: BatchShape, batch: Batch): void {
  const view = new DataView(new ArrayBuffer(3 * UNIFORM_STRIDE));
  const common = { ...base, n: chunk.count, chunkStart: chunk.start };
  packParams({ ...common, wgPerRow: refoldDispatch(Math.ceil(chunk.count / wg), maxPerDim).x }, view, 0);
  packParams({ ...common, a: shape.d, wgPerRow: refoldDispatch(chunk.count, maxPerDim).x }, view, UNIFORM_STRIDE);
  packParams({ ...common, a: batch.a ?? 0, wgPerRow: refoldDispatch(Math.ceil(chunk.count / COVARIANCE_WG), maxPerDim).x }, view, 2 * UNIFORM_STRIDE);
  device.queue.writeBuffer(uniforms, 0, view.buffer);
}

interface ChunkPipes {
  metricsPipe: { pipeline: GPUComputePipeline; bindGroupLayout: GPUBindGroupLayout };
  tsPipe: { pipeline: GPUComputePipeline; bindGroupLayout: GPUBindGroupLayout } | null;
  covPipe: { pipeline: GPUComputePipeline; bindGroupLayout: GPUBindGroupLayout } | null;
  selRec: GPUBuffer | null;
  groupState: GPUBuffer | null;
  clock: PassClock | null;
}

function dispatch(pass: GPUComputePassEncoder, workgroups: number, maxPerDim: number): void {
  const d = refoldDispatch(workgroups, maxPerDim);
  if (d.x > 0) pass.dispatchWorkgroups(d.x, d.y);
}

function encodeChunkCompute(
  enc: GPUCommandEncoder, ctx: RunContext, slot: Slot, chunk: Chunk, seg: Record<InputName, { offset: number; bytes: number }>,
  outLayout: ReturnType<typeof outputLayout>, m: number, wg: number, maxPerDim: number, p: ChunkPipes,
): void {
  const device = ctx.gpu.device;
  const { dummies } = ctx;
  const inputOr = (name: InputName): GPUBufferBinding => (seg[name].bytes > 0 ? { buffer: slot.input, offset: seg[name].offset, size: seg[name].bytes } : { buffer: dummies.read });
  const uniform = (k: number): GPUBufferBinding => ({ buffer: slot.uniforms, offset: k * UNIFORM_STRIDE, size: PARAMS_BYTES });

  if (p.tsPipe) {
    const bg = device.createBindGroup({
      label: 'ecr.webgpu.tsEmbeddings.bindGroup', layout: p.tsPipe.bindGroupLayout,
      entries: [
        { binding: 0, resource: uniform(1) },
        { binding: 1, resource: inputOr('embeddings') },
        { binding: 2, resource: { buffer: slot.tsEmb!, offset: 0, size: chunk.count * 4 } },
      ],
    });
    const pass = enc.beginComputePass({ label: 'ecr.webgpu.tsEmbeddings', timestampWrites: p.clock?.writes() });
    pass.setPipeline(p.tsPipe.pipeline);
    pass.setBindGroup(0, bg);
    dispatch(pass, chunk.count, maxPerDim);
    pass.end();
  }
  const tsEmb: GPUBufferBinding = p.tsPipe ? { buffer: slot.tsEmb!, offset: 0, size: chunk.count * 4 } : { buffer: dummies.read };
  const mb = MetricsBinding;
  const bg = device.createBindGroup({
    label: 'ecr.webgpu.metrics.bindGroup', layout: p.metricsPipe.bindGroupLayout,
    entries: [
      { binding: mb.params, resource: uniform(0) },
      { binding: mb.e, resource: inputOr('e') },
      { binding: mb.policy, resource: inputOr('policy') },
      { binding: mb.rewardDiff, resource: inputOr('rewardDiff') },
      { binding: mb.tsEmb, resource: tsEmb },
      { binding: mb.baseKey, resource: inputOr('baseKey') },
      { binding: mb.groups, resource: inputOr('groups') },
      { binding: mb.out, resource: { buffer: slot.output, offset: 0, size: chunk.count * 24 } },
      { binding: mb.selRec, resource: p.selRec ? { buffer: p.selRec, offset: chunk.start * 16, size: chunk.count * 16 } : { buffer: dummies.write1 } },
      { binding: mb.groupState, resource: p.groupState ? { buffer: p.groupState } : { buffer: dummies.write2 } },
    ],
  });
  const pass = enc.beginComputePass({ label: 'ecr.webgpu.metrics', timestampWrites: p.clock?.writes() });
  pass.setPipeline(p.metricsPipe.pipeline);
  pass.setBindGroup(0, bg);
  dispatch(pass, Math.ceil(chunk.count / wg), maxPerDim);
  pass.end();

  if (p.covPipe) {
    const cbg = device.createBindGroup({
      label: 'ecr.webgpu.covariance.bindGroup', layout: p.covPipe.bindGroupLayout,
      entries: [
        { binding: 0, resource: uniform(2) },
        { binding: 1, resource: inputOr('e') },
        { binding: 2, resource: { buffer: slot.output, offset: outLayout.cov.offset, size: chunk.count * m * m * 4 } },
      ],
    });
    const cpass = enc.beginComputePass({ label: 'ecr.webgpu.covariance', timestampWrites: p.clock?.writes() });
    cpass.setPipeline(p.covPipe.pipeline);
    cpass.setBindGroup(0, cbg);
    dispatch(cpass, Math.ceil(chunk.count / COVARIANCE_WG), maxPerDim);
    cpass.end();
  }
}

function unpackChunk(readback: GPUBuffer, chunk: Chunk, out: BackendOutput, m: number, covOffset: number, tau: number): void {
  const { start, count } = chunk;
  // One bulk copy out of the mapped range: element-wise reads of (possibly uncached) mapped memory are slow.
  const f = new Float32Array(count * 6);
  f.set(new Float32Array(readback.getMappedRange(0, count * 24)));
  const { evb, cr, ts, es, pd, cci } = out;
  const adm = out.admissible!;
  for (let k = 0, o = 0; k < count; k++, o += 6) {
    const i = start + k;
    evb[i] = f[o]; cr[i] = f[o + 1]; ts[i] = f[o + 2]; es[i] = f[o + 3]; pd[i] = f[o + 4];
    const c = f[o + 5];
    cci[i] = c;
    adm[i] = c >= tau ? 1 : 0;
  }
  if (out.covariance) {
    const mm = m * m;
    out.covariance.set(new Float32Array(readback.getMappedRange(covOffset, count * mm * 4)), start * mm);
  }
}

async function runSelection(
  ctx: RunContext, chunks: Chunk[], groupCount: number, selRec: GPUBuffer, groupState: GPUBuffer, selected: GPUBuffer,
  pipes: { pipeline: GPUComputePipeline; bindGroupLayout: GPUBindGroupLayout }[], clock: PassClock | null, maxPerDim: number,
): Promise<Int32Array> {
  const { gpu, pool } = ctx;
  const device = gpu.device;
  const windows = chunks.length + 1; // one uniform slot per window, plus the per-group finish
  const uniforms = pool.acquire(windows * UNIFORM_STRIDE, BufferUsage.UNIFORM | BufferUsage.COPY_DST, 'ecr.webgpu.select.uniforms');
  const readback = pool.acquire(groupCount * 4, BufferUsage.MAP_READ | BufferUsage.COPY_DST, 'ecr.webgpu.select.readback');
  let ok = false;
  try {
    const view = new DataView(new ArrayBuffer(windows * UNIFORM_STRIDE));
    const zero: Params = { n: 0, t: 0, m: 0, a: 0, chunkStart: 0, confIndex: 0, flags: 0, wgPerRow: 0, lambda: 0, tau: 0, vmax: 0, dmax: 0, weights: [], crWeights: null };
    chunks.forEach((c, w) => packParams({ ...zero, n: c.count, chunkStart: c.start, wgPerRow: refoldDispatch(Math.ceil(c.count / SELECT_WG), maxPerDim).x }, view, w * UNIFORM_STRIDE));
    packParams({ ...zero, n: groupCount, wgPerRow: refoldDispatch(Math.ceil(groupCount / SELECT_WG), maxPerDim).x }, view, chunks.length * UNIFORM_STRIDE);
    device.queue.writeBuffer(uniforms, 0, view.buffer);

    const enc = device.createCommandEncoder({ label: 'ecr.webgpu.select' });
    const run = (passIdx: number, w: number, recWindow: GPUBufferBinding, workgroups: number) => {
      const bg = device.createBindGroup({
        label: `ecr.webgpu.select.bindGroup`, layout: pipes[passIdx].bindGroupLayout,
        entries: [
          { binding: 0, resource: { buffer: uniforms, offset: w * UNIFORM_STRIDE, size: PARAMS_BYTES } },
          { binding: 1, resource: recWindow },
          { binding: 2, resource: { buffer: groupState } },
          { binding: 3, resource: { buffer: selected } },
        ],
      });
      const pass = enc.beginComputePass({ label: `ecr.webgpu.select.${passIdx}`, timestampWrites: clock?.writes() });
      pass.setPipeline(pipes[passIdx].pipeline);
      pass.setBindGroup(0, bg);
      dispatch(pass, workgroups, maxPerDim);
      pass.end();
    };
    // Every window of one pass completes before the next pass starts (passes are ordered).
    for (const passIdx of [0, 1]) {
      chunks.forEach((c, w) => run(passIdx, w, { buffer: selRec, offset: c.start * 16, size: c.count * 16 }, Math.ceil(c.count / SELECT_WG)));
    }
    run(2, chunks.length, { buffer: selRec, offset: 0, size: Math.min(selRec.size, 256) }, Math.ceil(groupCount / SELECT_WG));
    enc.copyBufferToBuffer(selected, 0, readback, 0, groupCount * 4);
    await gpu.scoped(() => device.queue.submit([enc.finish()]));
    await mapOrFail(gpu, readback, MapMode.READ, 'selection readback');
    const result = new Int32Array(groupCount);
    result.set(new Int32Array(readback.getMappedRange(0, groupCount * 4)));
    readback.unmap();
    ok = true;
    return result;
  } finally {
    if (ok) { pool.release(uniforms); pool.release(readback); } else { uniforms.destroy(); readback.destroy(); }
  }
}

async function readTimestamps(ctx: RunContext, clock: PassClock): Promise<number> {
  const { gpu } = ctx;
  const device = gpu.device;
  const bytes = clock.count * 8;
  const resolve = device.createBuffer({ size: bytes, usage: BufferUsage.QUERY_RESOLVE | BufferUsage.COPY_SRC, label: 'ecr.webgpu.timestamps.resolve' });
  const read = device.createBuffer({ size: bytes, usage: BufferUsage.MAP_READ | BufferUsage.COPY_DST, label: 'ecr.webgpu.timestamps.read' });
  try {
    const enc = device.createCommandEncoder({ label: 'ecr.webgpu.timestamps' });
    enc.resolveQuerySet(clock.querySet, 0, clock.count, resolve, 0);
    enc.copyBufferToBuffer(resolve, 0, read, 0, bytes);
    await gpu.scoped(() => device.queue.submit([enc.finish()]));
    await mapOrFail(gpu, read, MapMode.READ, 'timestamp readback');
    const ts = new BigUint64Array(read.getMappedRange());
    let ns = 0n;
    for (let q = 0; q + 1 < clock.count; q += 2) if (ts[q + 1] > ts[q]) ns += ts[q + 1] - ts[q];
    read.unmap();
    return Number(ns) / 1e6;
  } finally {
    resolve.destroy();
    read.destroy();
  }
}
