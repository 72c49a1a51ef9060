/**
 * Executes a Plan (plan.ts) on a device, chunk by chunk. A ring of slots, each with a MAP_WRITE
 * staging buffer, device input/output buffers and a MAP_READ readback buffer, lets the host fill
 * chunk i+1 while the GPU computes chunk i and chunk i-1 is read back. Every pass binds its
 * program's declared bindings by name from the chunk's resources (programs/program.ts). Nothing
 * here decides what runs: kernels, chunks, dispatches and uniforms all come from the plan.
 */
import type { Batch, MetricArrays } from '../../core/batch.js';
import { GpuError } from '../../core/errors.js';
import type { BufferPool } from './device/buffer-pool.js';
import type { GpuDevice } from './device/device.js';
import { alignUp, hostArray, type Chunk } from './device/dispatch.js';
import type { PipelineCache } from './device/pipeline-cache.js';
import { BufferUsage, MapMode } from './device/usage.js';
import { encodeRewardDiff, encodeUnorm16Range } from './encode.js';
import { inputLayout, metricStride, metricsOutputBytes, outputLayout, type BatchShape, type InputName, type Segment } from './layout.js';
import { UNIFORM_STRIDE, type ChunkPlan, type Plan } from './plan.js';
import { bindGroupEntries, pipelineSpec, type Program } from './programs/program.js';
import type { MetricsKernelKind } from './tuning.js';
import { PARAMS_BYTES } from './uniforms.js';

/** Caller-owned float32 metric arrays (WebGpuBackend.computeMetricsF32): readback is then a plain copy. */
export interface Float32Metrics {
  evb: Float32Array;
  cr: Float32Array;
  ts: Float32Array;
  es: Float32Array;
  pd: Float32Array;
  cci: Float32Array;
  covariance?: Float32Array;
}

/** What a run fills: float64 arrays (the BackendOutput of computeMetrics) or the caller's float32 ones. */
export type RunOutput<A extends Float64Array | Float32Array> = {
  evb: A;
  cr: A;
  ts: A;
  es: A;
  pd: A;
  cci: A;
  covariance?: A;
};

/** Unmapped COPY_SRC buffers holding E as float32 in batch.steps' order, each for trajectories [start, start + count). */
export interface MappedStepsSource {
  parts: readonly { start: number; count: number; buffer: GPUBuffer }[];
}

export interface StreamInputs {
  batch: Batch;
  /** E already encoded as unorm16 codes (n*T*m, batch.steps' order): uploaded as is. */
  stepsUnorm16?: Uint16Array;
  /** E (float32) in the caller's mapped buffers, copied GPU-side into each chunk. */
  mappedSteps?: MappedStepsSource;
  /** Arrays to write the metrics into (ComputeOptions.out); absent: fresh ones. */
  out?: MetricArrays;
  /** Float32 arrays to write the metrics into instead. */
  out32?: Float32Metrics;
}

export interface StageTimes {
  stages: Record<string, number>;
  metricsKernel: MetricsKernelKind;
  kernelMs?: number;
  chunks: number;
}

export interface StreamContext {
  gpu: GpuDevice;
  pool: BufferPool;
  pipelines: PipelineCache;
  /** Tiny buffers bound where an input is absent. */
  dummies: { read: GPUBuffer };
}

interface Slot {
  /** Absent when every input comes from mapped steps (E only). */
  staging: GPUBuffer | null;
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
  add(stage: string, since: number): number {
    const now = performance.now();
    this.stages[stage] = (this.stages[stage] ?? 0) + (now - since);
    return now;
  }
}

type Pipelines = Map<Program, { pipeline: GPUComputePipeline; bindGroupLayout: GPUBindGroupLayout }>;

/** Runs the plan; with `profile`, serialized with wall-clock stage times and (with timestamps) replayed kernel time. */
export async function streamPlan(
  ctx: StreamContext,
  plan: Plan,
  inputs: StreamInputs,
  profile: boolean,
  replays = 3,
): Promise<{ output: RunOutput<Float64Array | Float32Array>; times?: StageTimes }> {
  // Error scopes are a per-device stack: one batch at a time per device keeps them attributable.
  return ctx.gpu.exclusive(() => ctx.gpu.scopedAsync(() => stream(ctx, plan, inputs, profile, replays)));
}

async function stream(
  ctx: StreamContext,
  plan: Plan,
  inputs: StreamInputs,
  profile: boolean,
  replays: number,
): Promise<{ output: RunOutput<Float64Array | Float32Array>; times?: StageTimes }> {
  const { gpu, pool } = ctx;
  const device = gpu.device;
  const { batch, mappedSteps: mapped } = inputs;
  const { shape, capacity, chunks } = plan;
  const pipelines: Pipelines = new Map();
  for (const pass of chunks[0].passes) pipelines.set(pass.program, await ctx.pipelines.get(pipelineSpec(pass.program)));

  const inLayoutFull = inputLayout(shape, capacity, capacity);
  const outLayout = outputLayout(shape, capacity);
  const readbackBytes = outLayout.cov.bytes ? outLayout.cov.offset + outLayout.cov.bytes : outLayout.metrics.bytes;
  // With mapped steps the staging buffer carries only the inputs after E (none for E alone).
  const stagingFrom = mapped ? inLayoutFull.segments.policy.offset : 0;
  const usesStaging = stagingFrom < inLayoutFull.totalBytes;
  const uniformBytes = chunks[0].passes.length * UNIFORM_STRIDE;

  const owned: GPUBuffer[] = [];
  const acquire = (bytes: number, usage: number, label: string) => {
    const b = pool.acquire(bytes, usage, label);
    owned.push(b);
    return b;
  };
  const slots: Slot[] = [];
  for (let s = 0; s < plan.slots; s++) {
    slots.push({
      staging: usesStaging ? acquire(inLayoutFull.totalBytes, BufferUsage.MAP_WRITE | BufferUsage.COPY_SRC, `ecr.webgpu.slot${s}.staging`) : null,
      input: acquire(inLayoutFull.totalBytes, BufferUsage.STORAGE | BufferUsage.COPY_DST, `ecr.webgpu.slot${s}.input`),
      output: acquire(outLayout.totalBytes, BufferUsage.STORAGE | BufferUsage.COPY_SRC, `ecr.webgpu.slot${s}.output`),
      readback: acquire(readbackBytes, BufferUsage.MAP_READ | BufferUsage.COPY_DST, `ecr.webgpu.slot${s}.readback`),
      uniforms: acquire(uniformBytes, BufferUsage.UNIFORM | BufferUsage.COPY_DST, `ecr.webgpu.slot${s}.uniforms`),
      tsEmb: chunks[0].passes.some((p) => p.program.bindings.some((b) => b.name === 'tsEmb'))
        ? acquire(capacity * 4, BufferUsage.STORAGE, `ecr.webgpu.slot${s}.tsEmb`)
        : null,
      ready: Promise.resolve(),
    });
  }
  let crWeights: GPUBuffer | null = null;
  if (plan.crWeights) {
    crWeights = acquire(alignUp(plan.crWeights.byteLength, 16), BufferUsage.STORAGE | BufferUsage.COPY_DST, 'ecr.webgpu.crWeights');
    device.queue.writeBuffer(crWeights, 0, plan.crWeights);
  }

  const timer = profile ? new Timer() : null;
  const covPer = shape.covariance ? shape.m * shape.m : 0;
  const out = inputs.out32 ? float32Outputs(covPer, inputs.out32) : outputArrays(batch.n, covPer, inputs.out);
  // The slots' failures, first first (a list, so that a falsy rejection reason still counts).
  const failures: unknown[] = [];
  let succeeded = false;
  const resourcesOf = (slot: Slot, chunk: ChunkPlan, seg: Record<InputName, Segment>) =>
    chunkResources(ctx, slot, chunk, seg, crWeights, { offset: outLayout.cov.offset, perTrajectory: covPer });
  try {
    for (let k = 0; k < chunks.length; k++) {
      const chunk = chunks[k];
      const slot = slots[k % slots.length];
      await slot.ready;
      if (failures.length > 0) throw failures[0];
      gpu.check();
      let t0 = performance.now();
      const layout = inputLayout(shape, capacity, chunk.count);
      if (slot.staging) {
        if (slot.staging.mapState === 'unmapped') await mapOrFail(gpu, slot.staging, MapMode.WRITE, 'staging map');
        fillStaging(slot.staging.getMappedRange(0, layout.totalBytes), batch, shape, chunk, layout.segments, inputs.stepsUnorm16, !mapped);
        slot.staging.unmap();
      }
      device.queue.writeBuffer(slot.uniforms, 0, chunk.uniforms);
      if (timer) t0 = timer.add('uploadFill', t0);

      const uploadEnc = device.createCommandEncoder({ label: `ecr.webgpu.chunk${k}.upload` });
      if (slot.staging) uploadEnc.copyBufferToBuffer(slot.staging, stagingFrom, slot.input, stagingFrom, layout.totalBytes - stagingFrom);
      if (mapped) copyMappedSteps(uploadEnc, mapped, chunk, shape.t * shape.m, slot.input, layout.segments.e.offset);
      const computeEnc = profile ? device.createCommandEncoder({ label: `ecr.webgpu.chunk${k}.compute` }) : uploadEnc;
      encodePasses(computeEnc, device, pipelines, chunk, resourcesOf(slot, chunk, layout.segments), slot.uniforms, 0);
      const readEnc = profile ? device.createCommandEncoder({ label: `ecr.webgpu.chunk${k}.readback` }) : uploadEnc;
      readEnc.copyBufferToBuffer(slot.output, 0, slot.readback, 0, metricsOutputBytes(chunk.count));
      if (covPer) readEnc.copyBufferToBuffer(slot.output, outLayout.cov.offset, slot.readback, outLayout.cov.offset, chunk.count * covPer * 4);

      if (timer) {
        device.queue.submit([uploadEnc.finish()]);
        await doneOrFail(gpu);
        t0 = timer.add('upload', t0);
        device.queue.submit([computeEnc.finish()]);
        await doneOrFail(gpu);
        t0 = timer.add('kernel', t0);
        device.queue.submit([readEnc.finish()]);
        await mapOrFail(gpu, slot.readback, MapMode.READ, 'readback map');
        t0 = timer.add('readback', t0);
        unpackChunk(slot.readback, chunk, out, covPer, outLayout.cov.offset);
        slot.readback.unmap();
        timer.add('readbackUnpack', t0);
      } else {
        device.queue.submit([uploadEnc.finish()]);
        // No await per submit: errors surface through the run's error scope and the map rejections.
        slot.ready = (async () => {
          try {
            await mapOrFail(gpu, slot.readback, MapMode.READ, 'readback map');
            unpackChunk(slot.readback, chunk, out, covPer, outLayout.cov.offset);
            slot.readback.unmap();
            if (slot.staging) await mapOrFail(gpu, slot.staging, MapMode.WRITE, 'staging map');
          } catch (err) {
            failures.push(err);
          }
        })();
      }
    }
    await Promise.all(slots.map((s) => s.ready));
    if (failures.length > 0) throw failures[0];
    let kernelMs: number | undefined;
    if (timer && gpu.timestamps) {
      // Device time of the whole batch's kernels back to back (no host in between): median of the replays.
      const spans: number[] = [];
      for (let r = 0; r < replays; r++) spans.push(await replayKernels(ctx, plan, pipelines, slots, resourcesOf));
      timer.stages.kernelMinMs = Math.min(...spans);
      spans.sort((a, b) => a - b);
      kernelMs = spans[spans.length >> 1];
    }
    succeeded = true;
    return { output: out, times: timer ? { stages: timer.stages, kernelMs, chunks: chunks.length, metricsKernel: plan.kernel } : undefined };
  } finally {
    // Wait out anything still in flight before buffers go back to the pool (or are destroyed).
    await Promise.allSettled(slots.map((s) => s.ready));
    for (const b of owned) {
      if (succeeded) pool.release(b);
      else b.destroy();
    }
  }
}

/** Every buffer a pass of this chunk may bind, by binding name (programs pick theirs); P is bound per pass. */
function chunkResources(
  ctx: StreamContext,
  slot: Slot,
  chunk: ChunkPlan,
  seg: Record<InputName, Segment>,
  crWeights: GPUBuffer | null,
  cov: { offset: number; perTrajectory: number },
): Record<string, GPUBufferBinding> {
  // Whole 16-byte words: vec4-typed bindings need them, and each segment's capacity is 256-aligned.
  const input = (name: InputName): GPUBufferBinding =>
    seg[name].bytes > 0 ? { buffer: slot.input, offset: seg[name].offset, size: alignUp(seg[name].bytes, 16) } : { buffer: ctx.dummies.read };
  return {
    E: input('e'),
    policy: input('policy'),
    rewardDiff: input('rewardDiff'),
    embeddings: input('embeddings'),
    tsEmb: slot.tsEmb ? { buffer: slot.tsEmb, offset: 0, size: alignUp(chunk.count * 4, 16) } : { buffer: ctx.dummies.read },
    crWeights: crWeights ? { buffer: crWeights } : { buffer: ctx.dummies.read },
    outWords: { buffer: slot.output, offset: 0, size: metricsOutputBytes(chunk.count) },
    cov: cov.perTrajectory ? { buffer: slot.output, offset: cov.offset, size: chunk.count * cov.perTrajectory * 4 } : { buffer: ctx.dummies.read },
  };
}

/** The chunk's passes in plan order, each bound to its uniform block at `uniformBase` of `uniforms`. */
function encodePasses(
  enc: GPUCommandEncoder,
  device: GPUDevice,
  pipelines: Pipelines,
  chunk: ChunkPlan,
  resources: Record<string, GPUBufferBinding>,
  uniforms: GPUBuffer,
  uniformBase: number,
): void {
  for (const pass of chunk.passes) {
    const pipe = pipelines.get(pass.program)!;
    const P: GPUBufferBinding = { buffer: uniforms, offset: uniformBase + pass.uniform * UNIFORM_STRIDE, size: PARAMS_BYTES };
    const bg = device.createBindGroup({
      label: `ecr.${pass.program.label}.bindGroup`,
      layout: pipe.bindGroupLayout,
      entries: bindGroupEntries(pass.program, { ...resources, P }),
    });
    const cpass = enc.beginComputePass({ label: `ecr.${pass.program.label}` });
    cpass.setPipeline(pipe.pipeline);
    cpass.setBindGroup(0, bg);
    if (pass.dispatch.x > 0) cpass.dispatchWorkgroups(pass.dispatch.x, pass.dispatch.y);
    cpass.end();
  }
}

/** E of the chunk from the mapped buffers it overlaps (a chunk may straddle two) into the device input. */
function copyMappedSteps(enc: GPUCommandEncoder, source: MappedStepsSource, chunk: Chunk, tm: number, input: GPUBuffer, eOffset: number): void {
  const end = chunk.start + chunk.count;
  let covered = 0;
  for (const part of source.parts) {
    const from = Math.max(chunk.start, part.start);
    const to = Math.min(end, part.start + part.count);
    if (to <= from) continue;
    enc.copyBufferToBuffer(part.buffer, (from - part.start) * tm * 4, input, eOffset + (from - chunk.start) * tm * 4, (to - from) * tm * 4);
    covered += to - from;
  }
  if (covered !== chunk.count) throw new GpuError('internal', `mapped steps cover ${covered} of the chunk's ${chunk.count} trajectories`);
}

function fillStaging(
  mapped: ArrayBuffer,
  batch: Batch,
  shape: BatchShape,
  chunk: Chunk,
  seg: Record<InputName, Segment>,
  preEncoded: Uint16Array | undefined,
  withE: boolean,
): void {
  const { start, count } = chunk;
  const tm = batch.t * batch.m;
  if (!withE) {
    // E comes from the caller's mapped buffers.
  } else if (preEncoded) {
    const dst = new Uint16Array(mapped, seg.e.offset, seg.e.bytes / 2);
    dst.set(preEncoded.subarray(start * tm, (start + count) * tm));
    // An odd count leaves half a word: zero it (the pooled buffer may hold older data).
    if ((count * tm) & 1) dst[count * tm] = 0;
  } else if (shape.unorm16) {
    // Encode into ordinary memory, then one bulk copy: small scattered writes into mapped memory are slow.
    const codes = new Uint16Array(seg.e.bytes / 2);
    encodeUnorm16Range(batch.steps, start * tm, count * tm, codes);
    new Uint16Array(mapped, seg.e.offset, seg.e.bytes / 2).set(codes);
  } else {
    new Float32Array(mapped, seg.e.offset, count * tm).set(batch.steps.subarray(start * tm, (start + count) * tm));
  }
  if (shape.a) {
    const w = batch.t * shape.a;
    new Float32Array(mapped, seg.policy.offset, count * w).set(batch.policy!.subarray(start * w, (start + count) * w));
  }
  if (shape.rewards)
    encodeRewardDiff(batch.expected!, batch.realized!, start * batch.t, count * batch.t, new Float32Array(mapped, seg.rewardDiff.offset, count * batch.t));
  if (shape.d) {
    const w = batch.t * shape.d;
    new Float32Array(mapped, seg.embeddings.offset, count * w).set(batch.embeddings!.subarray(start * w, (start + count) * w));
  }
}

/** Copies a chunk's metric arrays (f32, converted to f64 by TypedArray.set) into the output. */
function unpackChunk(readback: GPUBuffer, chunk: Chunk, out: RunOutput<Float64Array | Float32Array>, covPer: number, covOffset: number): void {
  const { start, count } = chunk;
  const stride = metricStride(count);
  const mapped = readback.getMappedRange(0, metricsOutputBytes(count));
  const arrays = [out.evb, out.cr, out.ts, out.es, out.pd, out.cci];
  for (let k = 0; k < 6; k++) arrays[k].set(new Float32Array(mapped, k * stride * 4, count), start);
  if (out.covariance) out.covariance.set(new Float32Array(readback.getMappedRange(covOffset, count * covPer * 4)), start * covPer);
}

/** The caller's float32 arrays (lengths checked by WebGpuBackend.computeMetricsF32). */
function float32Outputs(covPer: number, given: Float32Metrics): RunOutput<Float32Array> {
  const out: RunOutput<Float32Array> = { evb: given.evb, cr: given.cr, ts: given.ts, es: given.es, pd: given.pd, cci: given.cci };
  if (covPer) out.covariance = given.covariance;
  return out;
}

/** The caller's arrays where given and long enough (ComputeOptions.out), fresh ones otherwise. */
function outputArrays(n: number, covPer: number, given: MetricArrays | undefined): RunOutput<Float64Array> {
  const pick = (a: Float64Array | undefined, len: number, what: string) =>
    a instanceof Float64Array && a.length === len ? a : hostArray(Float64Array, len, what);
  const out: RunOutput<Float64Array> = {
    evb: pick(given?.evb, n, 'EVB'),
    cr: pick(given?.cr, n, 'CR'),
    ts: pick(given?.ts, n, 'TS'),
    es: pick(given?.es, n, 'ES'),
    pd: pick(given?.pd, n, 'PD'),
    cci: pick(given?.cci, n, 'CCI'),
  };
  if (covPer) out.covariance = pick(given?.covariance, n * covPer, 'covariance');
  return out;
}

/**
 * Device time of every kernel of the batch submitted back to back in one command buffer (each
 * chunk's passes on the slot that last held a chunk, inputs as left there), from the start of the
 * first pass to the end of the last. Outputs are discarded.
 */
async function replayKernels(
  ctx: StreamContext,
  plan: Plan,
  pipelines: Pipelines,
  slots: Slot[],
  resourcesOf: (slot: Slot, chunk: ChunkPlan, seg: Record<InputName, Segment>) => Record<string, GPUBufferBinding>,
): Promise<number> {
  const { gpu, pool } = ctx;
  const device = gpu.device;
  const { chunks } = plan;
  const blocks = chunks[0].passes.length * UNIFORM_STRIDE;
  const uniforms = pool.acquire(chunks.length * blocks, BufferUsage.UNIFORM | BufferUsage.COPY_DST, 'ecr.webgpu.replay.uniforms');
  const querySet = device.createQuerySet({ type: 'timestamp', count: 2, label: 'ecr.webgpu.replay.timestamps' });
  try {
    const data = new Uint8Array(chunks.length * blocks);
    chunks.forEach((c, k) => data.set(new Uint8Array(c.uniforms), k * blocks));
    device.queue.writeBuffer(uniforms, 0, data);
    const enc = device.createCommandEncoder({ label: 'ecr.webgpu.replay' });
    enc.beginComputePass({ label: 'ecr.webgpu.replay.begin', timestampWrites: { querySet, beginningOfPassWriteIndex: 0 } }).end();
    chunks.forEach((c, k) => {
      const slot = slots[k % slots.length];
      encodePasses(enc, device, pipelines, c, resourcesOf(slot, c, inputLayout(plan.shape, plan.capacity, c.count).segments), uniforms, k * blocks);
    });
    enc.beginComputePass({ label: 'ecr.webgpu.replay.end', timestampWrites: { querySet, endOfPassWriteIndex: 1 } }).end();
    device.queue.submit([enc.finish()]);
    return await readTimestampSpan(ctx, querySet);
  } finally {
    querySet.destroy();
    pool.release(uniforms);
  }
}

async function readTimestampSpan(ctx: StreamContext, querySet: GPUQuerySet): Promise<number> {
  const { gpu } = ctx;
  const device = gpu.device;
  const resolve = device.createBuffer({ size: 16, usage: BufferUsage.QUERY_RESOLVE | BufferUsage.COPY_SRC, label: 'ecr.webgpu.timestamps.resolve' });
  const read = device.createBuffer({ size: 16, usage: BufferUsage.MAP_READ | BufferUsage.COPY_DST, label: 'ecr.webgpu.timestamps.read' });
  try {
    const enc = device.createCommandEncoder({ label: 'ecr.webgpu.timestamps' });
    enc.resolveQuerySet(querySet, 0, 2, resolve, 0);
    enc.copyBufferToBuffer(resolve, 0, read, 0, 16);
    device.queue.submit([enc.finish()]);
    await mapOrFail(gpu, read, MapMode.READ, 'timestamp readback');
    const ts = new BigUint64Array(read.getMappedRange());
    const ms = ts[1] > ts[0] ? Number(ts[1] - ts[0]) / 1e6 : 0;
    read.unmap();
    return ms;
  } finally {
    resolve.destroy();
    read.destroy();
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
