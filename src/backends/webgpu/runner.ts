/**
 * Streams a batch through the kernels chunk by chunk. A ring of slots, each with a MAP_WRITE
 * staging buffer, device input/output buffers and a MAP_READ readback buffer, lets the host encode
 * chunk i+1 while the GPU computes chunk i and chunk i-1 is read back. Group selection runs last
 * over the whole batch (its per-trajectory records stay resident).
 */
import type { Batch, MetricArrays } from '../../batch.js';
import { effectiveDmax, type ResolvedConfig } from '../../config.js';
import { GpuError, UsageError } from '../../errors.js';
import type { BufferPool } from '../../gpu/buffer-pool.js';
import type { GpuDevice } from '../../gpu/device.js';
import { alignUp, hostArray, maxChunkTrajectories, planChunks, refoldDispatch, type Chunk } from '../../gpu/dispatch.js';
import type { PipelineCache } from '../../gpu/pipeline-cache.js';
import { BufferUsage, MapMode } from '../../gpu/usage.js';
import type { BackendOutput } from '../backend.js';
import { encodeBaseKeys, encodeRewardDiff, encodeUnorm16Range } from './encode.js';
import {
  COVARIANCE_WG, GROUP_STATE_WORDS, METRICS_DEFAULT_WG, MetricsBinding, SELECT_WG, SEL_REC_BYTES, TS_EMB_TPT,
  chooseMetricsKernel, covarianceKernel, lanesKernel, lanesPerTrajectory, lanesWorkgroupSize, metricsKernel, metricsWorkgroupSize, selectKernel,
  tsEmbeddingsKernel, tsEmbeddingsWorkgroupSize, type MetricsKernelKind, type MetricsKernelPreference, type SelectPass, type SelectionKernel, type KernelProbe, KERNEL_PROBES, ROWS_ONLY_PROBES, SELECTION_KERNELS, selectRunsKernel, SELECT_RUNS_WG,
} from './kernels.js';
import { chunkedBindings, inputLayout, metricStride, metricsOutputBytes, outputLayout, shapeOf, type BatchShape, type InputName } from './layout.js';
import { Flag, PARAMS_BYTES, crWeightsUniform, packParams, tauForF32, type Params } from './params.js';

const SELECT_PASSES: SelectPass[] = ['refine', 'index', 'finish'];

export interface RunTuning {
  /** Trajectories per chunk (rounded down to a multiple of CHUNK_ALIGN); default from the limits and targetChunkBytes. */
  chunkTrajectories?: number;
  /** Soft size of one chunk's buffers in bytes (streaming granularity; default 256 MiB, measured best on the H200). */
  targetChunkBytes?: number;
  /** Chunks in flight. */
  slots?: number;
  /** Trajectories per workgroup of the metrics kernel (a power of two; default 128, lowered to fit workgroup storage). */
  workgroupSize?: number;
  /**
   * Benchmarks only, accepted by profile() alone (the outputs are then not metrics): 'loads-only'
   * loads E and stores without computing, 'no-loads' computes on generated values without loading
   * E, 'skip-cr' / 'skip-pd' / 'skip-ts' (rows layout) leave one metric out.
   */
  probe?: KernelProbe;
  /** profile(): how many back-to-back replays time the kernels (default 3; kernelMs is their median). */
  replays?: number;
  /** Invocations per workgroup of the lane kernels (a power of two; default 256, lowered to fit the device and 256 trajectories). */
  laneWorkgroupSize?: number;
  /** Keep a small trajectory (T, m <= 8) in registers (default true); false reads workgroup memory as for larger shapes. */
  registerPath?: boolean;
  /** Per-group selection on the GPU (default true); false leaves it to the host (scoreBatch's GroupSelector). */
  gpuSelection?: boolean;
  /** Metrics kernel (default 'auto': the subgroup lane kernel where the device has subgroups, else 'staged'). */
  metricsKernel?: MetricsKernelPreference;
  /**
   * Lane kernel only: when every group is one contiguous run (checked on the host), whole groups
   * inside a workgroup skip the selection records (default true); false forces the general path.
   */
  contiguousSelection?: boolean;
  /** Lane kernels only: pass 1 of the selection at the end of the metrics kernel ('fused', default) or as its own kernel after it ('separate'). */
  selectionKernel?: SelectionKernel;
}

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
  evb: A; cr: A; ts: A; es: A; pd: A; cci: A; covariance?: A;
  admissible: Uint8Array;
  groupSelected?: Int32Array;
};

export interface RunOptions {
  covariance?: boolean;
  compact?: 'unorm16';
  /** Arrays to write the metrics into (ComputeOptions.out); absent: fresh ones. */
  out?: MetricArrays;
  /** Float32 arrays to write the metrics into instead (all six required, of length n). */
  out32?: Float32Metrics;
  /** E already encoded as unorm16 codes (n*T*m, batch.steps' order): uploaded as is, batch.steps unread. */
  stepsUnorm16?: Uint16Array;
  /** E (float32) in the caller's mapped buffers, copied GPU-side into each chunk; batch.steps unread. */
  mappedSteps?: MappedStepsSource;
}

/** Unmapped COPY_SRC buffers holding E as float32 in batch.steps' order, each for trajectories [start, start + count). */
export interface MappedStepsSource {
  parts: readonly { start: number; count: number; buffer: GPUBuffer }[];
}

export interface StageTimes {
  stages: Record<string, number>;
  metricsKernel: MetricsKernelKind;
  kernelMs?: number;
  chunks: number;
  selection: SelectionPath;
  /** Where pass 1 of the GPU selection ran (absent with host selection). */
  selectionKernel?: SelectionKernel;
}

/** Where group selection ran: records for every run ('general'), only for runs at workgroup edges ('contiguous'), or on the host. */
export type SelectionPath = 'general' | 'contiguous' | 'host';

/** Chunk starts are multiples of this: keeps unorm16 pairs whole and selRec window offsets aligned. */
export const CHUNK_ALIGN = 256;
const DEFAULT_TARGET_CHUNK_BYTES = 256 << 20;
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
  if (tsEmbeddingsWorkgroupSize(t, maxWorkgroupStorage, maxWorkgroupSizeX) < TS_EMB_TPT) return `T = ${t} does not fit the embedding kernel's workgroup storage`;
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

/** Timestamp writes for compute passes: one pair per pass while capacity lasts. */
class PassClock {
  private used = 0;
  /** The label of each timed pass, in query-pair order. */
  readonly labels: string[] = [];
  constructor(readonly querySet: GPUQuerySet, readonly capacity: number) {}
  writes(label: string): GPUComputePassTimestampWrites | undefined {
    if (this.used + 2 > this.capacity) return undefined;
    this.labels.push(label);
    const w = { querySet: this.querySet, beginningOfPassWriteIndex: this.used, endOfPassWriteIndex: this.used + 1 };
    this.used += 2;
    return w;
  }
  get count(): number { return this.used; }
}

type Pipe = { pipeline: GPUComputePipeline; bindGroupLayout: GPUBindGroupLayout };

/** What stays fixed for one batch. */
interface Plan {
  batch: Batch;
  shape: BatchShape;
  /** Trajectories per workgroup of the metrics kernel. */
  wg: number;
  tsWg: number;
  chunks: Chunk[];
  capacity: number;
  outLayout: ReturnType<typeof outputLayout>;
  select: boolean;
  /** Groups are contiguous runs and the lane kernel runs: records only for runs at workgroup edges, two slots per workgroup. */
  contiguous: boolean;
  groupCount: number;
  /** Selection windows over the records (each within the binding limit), independent of the chunks. */
  windows: Chunk[];
  base: Params;
  maxPerDim: number;
  metricsPipe: Pipe;
  /** Pass 1 of the selection as its own kernel (selectionKernel 'separate'), or null when fused. */
  selRunsPipe: Pipe | null;
  tsPipe: Pipe | null;
  covPipe: Pipe | null;
  selPipes: Pipe[] | null;
  selRec: GPUBuffer | null;
  groupState: GPUBuffer | null;
  selected: GPUBuffer | null;
}

export async function runBatch(ctx: RunContext, batch: Batch, config: ResolvedConfig, options: RunOptions, tuning: RunTuning, profile: boolean): Promise<{ output: RunOutput<Float64Array | Float32Array>; times?: StageTimes }> {
  // Error scopes are a per-device stack: one batch at a time per device keeps them attributable.
  return ctx.gpu.exclusive(() => ctx.gpu.scopedAsync(() => runExclusive(ctx, batch, config, options, tuning, profile)));
}

async function runExclusive(ctx: RunContext, batch: Batch, config: ResolvedConfig, options: RunOptions, tuning: RunTuning, profile: boolean): Promise<{ output: RunOutput<Float64Array | Float32Array>; times?: StageTimes }> {
  const { gpu, pool, pipelines } = ctx;
  const device = gpu.device;
  const limits = gpu.limits;
  const n = batch.n;
  const pre = options.stepsUnorm16;
  if (pre !== undefined && (!(pre instanceof Uint16Array) || pre.length !== n * batch.t * batch.m)) {
    throw new UsageError(`stepsUnorm16 must be a Uint16Array of n*T*m = ${n * batch.t * batch.m} codes`);
  }
  const mapped = options.mappedSteps;
  if (mapped && (pre !== undefined || options.compact === 'unorm16')) {
    throw new UsageError('mappedSteps holds float32 E: it cannot be combined with compact: unorm16 or stepsUnorm16');
  }
  const unorm16 = options.compact === 'unorm16' || pre !== undefined;
  const shape = shapeOf(batch, unorm16, !!options.covariance);
  const tm = batch.t * batch.m;
  const why = unsupportedShape(batch.t, batch.m, limits.maxComputeWorkgroupStorageSize, limits.maxComputeWorkgroupSizeX);
  if (why) throw new GpuError('validation', `this batch cannot run on the GPU: ${why}`);
  const kernelKind = chooseMetricsKernel(tuning.metricsKernel ?? 'auto', batch.t, batch.m, { subgroups: gpu.subgroups, subgroupMinSize: gpu.subgroupMinSize, maxComputeWorkgroupSizeX: limits.maxComputeWorkgroupSizeX });
  if (tuning.probe !== undefined) {
    if (!KERNEL_PROBES.includes(tuning.probe)) throw new UsageError(`probe must be one of ${KERNEL_PROBES.join(', ')}, got ${JSON.stringify(tuning.probe)}`);
    if (!profile) throw new UsageError('probe is a benchmark probe whose outputs are not metrics: only profile() accepts it');
    if (kernelKind === 'staged') throw new UsageError('probe needs a lane kernel (subgroups, emulated, rows, rows-emulated)');
    if (ROWS_ONLY_PROBES.includes(tuning.probe) && kernelKind !== 'rows' && kernelKind !== 'rows-emulated') throw new UsageError(`probe '${tuning.probe}' needs the rows layout`);
  }
  for (const [name, v, min] of [['chunkTrajectories', tuning.chunkTrajectories, 1], ['targetChunkBytes', tuning.targetChunkBytes, 0], ['slots', tuning.slots, 1]] as const) {
    if (v !== undefined && (!Number.isSafeInteger(v) || v < min)) throw new UsageError(`${name} must be an integer >= ${min}, got ${v}`);
  }
  const replays = tuning.replays ?? 3;
  if (!Number.isInteger(replays) || replays < 1 || replays > 100) throw new UsageError(`replays must be an integer in 1..100, got ${replays}`);
  const lanesWg = kernelKind === 'staged' ? 0 : lanesWorkgroupSize(limits.maxComputeWorkgroupSizeX, lanesPerTrajectory(batch.m, kernelKind), tuning.laneWorkgroupSize);
  const wg = kernelKind === 'staged'
    ? metricsWorkgroupSize(tm, limits.maxComputeWorkgroupStorageSize, limits.maxComputeWorkgroupSizeX, tuning.workgroupSize ?? METRICS_DEFAULT_WG)
    : lanesWg / lanesPerTrajectory(batch.m, kernelKind);
  const tsWg = tsEmbeddingsWorkgroupSize(batch.t, limits.maxComputeWorkgroupStorageSize, limits.maxComputeWorkgroupSizeX);

  const perChunkLimit = maxChunkTrajectories(chunkedBindings(shape), {
    maxBindingBytes: limits.maxStorageBufferBindingSize,
    maxBufferBytes: limits.maxBufferSize,
    trajectoriesPerWorkgroup: Math.min(wg, tsWg / TS_EMB_TPT), // the kernel with the fewest trajectories per workgroup
    maxWorkgroupsPerDimension: limits.maxComputeWorkgroupsPerDimension,
    alignTrajectories: CHUNK_ALIGN,
    targetChunkBytes: tuning.targetChunkBytes ?? DEFAULT_TARGET_CHUNK_BYTES,
  });
  const perChunk = tuning.chunkTrajectories ? Math.max(CHUNK_ALIGN, Math.min(perChunkLimit, tuning.chunkTrajectories - (tuning.chunkTrajectories % CHUNK_ALIGN))) : perChunkLimit;
  const chunks = planChunks(n, perChunk);
  const capacity = Math.min(perChunk, n);

  let groupCount = 1;
  if (batch.groups) for (let i = 0; i < n; i++) if (batch.groups[i] >= groupCount) groupCount = batch.groups[i] + 1;
  const select = (tuning.gpuSelection ?? true) && n * SEL_REC_BYTES <= limits.maxBufferSize && groupCount * GROUP_STATE_WORDS * 4 <= limits.maxStorageBufferBindingSize;
  const selectionKernel = tuning.selectionKernel ?? 'fused';
  if (!SELECTION_KERNELS.includes(selectionKernel)) throw new UsageError(`selectionKernel must be one of ${SELECTION_KERNELS.join(', ')}, got ${JSON.stringify(selectionKernel)}`);
  const separate = select && kernelKind !== 'staged' && selectionKernel === 'separate';
  // Trajectories per workgroup of whichever kernel runs pass 1 (contiguous records are per workgroup).
  const selWg = separate ? SELECT_RUNS_WG : wg;
  const recordsPerWindow = Math.floor(Math.min(limits.maxStorageBufferBindingSize, limits.maxBufferSize) / SEL_REC_BYTES / CHUNK_ALIGN) * CHUNK_ALIGN;
  // Contiguous mode binds the whole (small) record buffer to every chunk: 2 records per workgroup.
  const contiguousRecords = 2 * Math.ceil(n / selWg);
  const contiguous = select && (tuning.contiguousSelection ?? true)
    && contiguousRecords <= recordsPerWindow && groupsAreContiguous(batch.groups, n, groupCount);
  const recordCount = contiguous ? contiguousRecords : n;
  const flags = flagsOf(shape, config, select) | (contiguous ? Flag.CONTIGUOUS : 0);

  const plan: Plan = {
    batch, shape, wg, tsWg, chunks, capacity, outLayout: outputLayout(shape, capacity), select, contiguous, groupCount,
    windows: planChunks(recordCount, recordsPerWindow), base: baseParams(batch, config, flags), maxPerDim: limits.maxComputeWorkgroupsPerDimension,
    metricsPipe: await pipelines.get(kernelKind === 'staged'
      ? metricsKernel(batch.t, batch.m, wg, unorm16, tuning.registerPath ?? true)
      : lanesKernel(batch.t, batch.m, lanesWg, unorm16, kernelKind, !separate, tuning.probe, crWeightsUniform(config.crWeights, batch.m))),
    selRunsPipe: separate ? await pipelines.get(selectRunsKernel()) : null,
    tsPipe: shape.d ? await pipelines.get(tsEmbeddingsKernel(batch.t, shape.d, tsWg)) : null,
    covPipe: shape.covariance ? await pipelines.get(covarianceKernel(unorm16)) : null,
    selPipes: select ? await Promise.all(SELECT_PASSES.map((p) => pipelines.get(selectKernel(p)))) : null,
    selRec: null, groupState: null, selected: null,
  };

  const inLayoutFull = inputLayout(shape, capacity, capacity);
  const { outLayout } = plan;
  const readbackBytes = outLayout.cov.bytes ? outLayout.cov.offset + outLayout.cov.bytes : outLayout.metrics.bytes;
  const slotCount = Math.max(1, Math.min(tuning.slots ?? 3, chunks.length));
  // With mapped steps the staging buffer carries only the inputs after E (none for E alone).
  const stagingFrom = mapped ? inLayoutFull.segments.policy.offset : 0;
  const usesStaging = stagingFrom < inLayoutFull.totalBytes;

  const owned: GPUBuffer[] = [];
  const acquire = (bytes: number, usage: number, label: string) => {
    const b = pool.acquire(bytes, usage, label);
    owned.push(b);
    return b;
  };
  const slots: Slot[] = [];
  for (let s = 0; s < slotCount; s++) {
    slots.push({
      staging: usesStaging ? acquire(inLayoutFull.totalBytes, BufferUsage.MAP_WRITE | BufferUsage.COPY_SRC, `ecr.webgpu.slot${s}.staging`) : null,
      input: acquire(inLayoutFull.totalBytes, BufferUsage.STORAGE | BufferUsage.COPY_DST, `ecr.webgpu.slot${s}.input`),
      output: acquire(outLayout.totalBytes, BufferUsage.STORAGE | BufferUsage.COPY_SRC, `ecr.webgpu.slot${s}.output`),
      readback: acquire(readbackBytes, BufferUsage.MAP_READ | BufferUsage.COPY_DST, `ecr.webgpu.slot${s}.readback`),
      uniforms: acquire(3 * UNIFORM_STRIDE, BufferUsage.UNIFORM | BufferUsage.COPY_DST, `ecr.webgpu.slot${s}.uniforms`),
      tsEmb: shape.d ? acquire(capacity * 4, BufferUsage.STORAGE, `ecr.webgpu.slot${s}.tsEmb`) : null,
      ready: Promise.resolve(),
    });
  }
  if (select) {
    // COPY_DST for clearBuffer: records are zeroed once per batch, and only run leaders write one.
    plan.selRec = acquire(Math.max(recordCount * SEL_REC_BYTES, 256), BufferUsage.STORAGE | BufferUsage.COPY_DST, 'ecr.webgpu.selRec');
    plan.groupState = acquire(groupCount * GROUP_STATE_WORDS * 4, BufferUsage.STORAGE | BufferUsage.COPY_DST, 'ecr.webgpu.groupState');
    plan.selected = acquire(groupCount * 4, BufferUsage.STORAGE | BufferUsage.COPY_SRC, 'ecr.webgpu.groupSelected');
  }

  let clock: PassClock | null = null;
  let querySet: GPUQuerySet | null = null;
  if (profile && gpu.timestamps) {
    const capacityQ = Math.min(4096, 2 * (chunks.length * 4 + (select ? 2 * plan.windows.length + 1 : 0)));
    querySet = device.createQuerySet({ type: 'timestamp', count: capacityQ, label: 'ecr.webgpu.timestamps' });
    clock = new PassClock(querySet, capacityQ);
  }
  const timer = profile ? new Timer() : null;

  const out = options.out32 ? float32Outputs(n, shape.covariance ? batch.m * batch.m : 0, options.out32) : outputArrays(n, shape.covariance ? batch.m * batch.m : 0, options.out);

  let failure: unknown = null;
  let succeeded = false;
  const selectionUniforms = select ? acquire((plan.windows.length + 1) * UNIFORM_STRIDE, BufferUsage.UNIFORM | BufferUsage.COPY_DST, 'ecr.webgpu.select.uniforms') : null;
  const selectionReadback = select ? acquire(groupCount * 4, BufferUsage.MAP_READ | BufferUsage.COPY_DST, 'ecr.webgpu.select.readback') : null;
  try {
    if (select) {
      device.queue.writeBuffer(plan.groupState!, 0, groupStateInit(groupCount));
      device.queue.writeBuffer(selectionUniforms!, 0, selectionUniformData(plan));
    }
    for (let k = 0; k < chunks.length; k++) {
      const chunk = chunks[k];
      const slot = slots[k % slotCount];
      await slot.ready;
      if (failure) throw failure;
      gpu.check();
      let t0 = performance.now();
      const layout = inputLayout(shape, capacity, chunk.count);
      if (slot.staging) {
        if (slot.staging.mapState === 'unmapped') await mapOrFail(gpu, slot.staging, MapMode.WRITE, 'staging map');
        fillStaging(slot.staging.getMappedRange(0, layout.totalBytes), batch, shape, chunk, layout.segments, pre, !mapped);
        slot.staging.unmap();
      }
      device.queue.writeBuffer(slot.uniforms, 0, chunkUniformData(plan, chunk));
      if (timer) t0 = timer.add('uploadFill', t0);

      const uploadEnc = device.createCommandEncoder({ label: `ecr.webgpu.chunk${k}.upload` });
      if (slot.staging) uploadEnc.copyBufferToBuffer(slot.staging, stagingFrom, slot.input, stagingFrom, layout.totalBytes - stagingFrom);
      if (mapped) copyMappedSteps(uploadEnc, mapped, chunk, tm, slot.input, layout.segments.e.offset);
      const computeEnc = profile ? device.createCommandEncoder({ label: `ecr.webgpu.chunk${k}.compute` }) : uploadEnc;
      if (k === 0 && plan.selRec) computeEnc.clearBuffer(plan.selRec);
      encodeChunkCompute(computeEnc, ctx, plan, slot, slot.uniforms, 0, chunk, layout.segments, (label) => clock?.writes(label));
      const readEnc = profile ? device.createCommandEncoder({ label: `ecr.webgpu.chunk${k}.readback` }) : uploadEnc;
      readEnc.copyBufferToBuffer(slot.output, 0, slot.readback, 0, metricsOutputBytes(chunk.count));
      if (shape.covariance) readEnc.copyBufferToBuffer(slot.output, outLayout.cov.offset, slot.readback, outLayout.cov.offset, chunk.count * batch.m * batch.m * 4);

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
        unpackChunk(slot.readback, chunk, out, batch.m, outLayout.cov.offset);
        slot.readback.unmap();
        timer.add('readbackUnpack', t0);
      } else {
        device.queue.submit([uploadEnc.finish()]);
        // No await per submit: errors surface through the run's error scope and the map rejections.
        slot.ready = (async () => {
          try {
            await mapOrFail(gpu, slot.readback, MapMode.READ, 'readback map');
            unpackChunk(slot.readback, chunk, out, batch.m, outLayout.cov.offset);
            slot.readback.unmap();
            if (slot.staging) await mapOrFail(gpu, slot.staging, MapMode.WRITE, 'staging map');
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
      const enc = device.createCommandEncoder({ label: 'ecr.webgpu.select' });
      encodeSelection(enc, ctx, plan, selectionUniforms!, (label) => clock?.writes(label));
      enc.copyBufferToBuffer(plan.selected!, 0, selectionReadback!, 0, groupCount * 4);
      device.queue.submit([enc.finish()]);
      await mapOrFail(gpu, selectionReadback!, MapMode.READ, 'selection readback');
      out.groupSelected = new Int32Array(groupCount);
      out.groupSelected.set(new Int32Array(selectionReadback!.getMappedRange(0, groupCount * 4)));
      selectionReadback!.unmap();
      timer?.add('select', t0);
    }
    let kernelMs: number | undefined;
    if (clock && timer) {
      if (clock.count > 0) {
        const passes = await readTimestampPairs(ctx, clock.querySet, clock.count);
        timer.stages.kernelPassSum = passes.reduce((a, b) => a + b, 0);
        // Per kind of pass, summed over chunks and windows: where the device time goes.
        passes.forEach((ms, q) => { const key = `pass.${clock!.labels[q]}`; timer.stages[key] = (timer.stages[key] ?? 0) + ms; });
      }
      // Device time of the whole batch's kernels back to back (no host in between): median of the replays.
      const spans: number[] = [];
      for (let r = 0; r < replays; r++) spans.push(await replayKernels(ctx, plan, slots, selectionUniforms));
      timer.stages.kernelMinMs = Math.min(...spans);
      spans.sort((a, b) => a - b);
      kernelMs = spans[spans.length >> 1];
    }
    succeeded = true;
    return { output: out, times: timer ? { stages: timer.stages, kernelMs, chunks: chunks.length, metricsKernel: kernelKind, selection: !select ? 'host' : contiguous ? 'contiguous' : 'general', selectionKernel: select ? (separate ? 'separate' : 'fused') : undefined } : undefined };
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

/** The caller's float32 arrays, which must all be there with the right lengths. */
function float32Outputs(n: number, covPerTrajectory: number, given: Float32Metrics): RunOutput<Float32Array> {
  const check = (name: string, a: Float32Array | undefined, len: number): Float32Array => {
    if (!(a instanceof Float32Array) || a.length !== len) throw new UsageError(`computeMetricsF32: out.${name} must be a Float32Array of length ${len}`);
    return a;
  };
  const out: RunOutput<Float32Array> = {
    evb: check('evb', given.evb, n), cr: check('cr', given.cr, n), ts: check('ts', given.ts, n), es: check('es', given.es, n),
    pd: check('pd', given.pd, n), cci: check('cci', given.cci, n), admissible: new Uint8Array(n),
  };
  if (covPerTrajectory) out.covariance = check('covariance', given.covariance, n * covPerTrajectory);
  return out;
}

/** The caller's arrays where given and long enough (ComputeOptions.out), fresh ones otherwise. */
function outputArrays(n: number, covPerTrajectory: number, given: MetricArrays | undefined): RunOutput<Float64Array> {
  const pick = (a: Float64Array | undefined, len: number, what: string) => (a instanceof Float64Array && a.length === len ? a : hostArray(Float64Array, len, what));
  const out: RunOutput<Float64Array> = {
    evb: pick(given?.evb, n, 'EVB'), cr: pick(given?.cr, n, 'CR'), ts: pick(given?.ts, n, 'TS'), es: pick(given?.es, n, 'ES'), pd: pick(given?.pd, n, 'PD'), cci: pick(given?.cci, n, 'CCI'),
    admissible: hostArray(Uint8Array, n, 'admissible'),
  };
  if (covPerTrajectory) out.covariance = pick(given?.covariance, n * covPerTrajectory, 'covariance');
  return out;
}

/** True when every group's members form one run of consecutive trajectories (O(n), once per batch). */
export function groupsAreContiguous(groups: ArrayLike<number> | undefined, n: number, groupCount: number): boolean {
  if (!groups) return true;
  const seen = new Uint8Array(groupCount);
  let prev = -1;
  for (let i = 0; i < n; i++) {
    const g = groups[i];
    if (g === prev) continue;
    if (seen[g]) return false;
    seen[g] = 1;
    prev = g;
  }
  return true;
}

/** The metrics kernel's record binding: the chunk's own records (general path), or all of them (contiguous path). */
function selRecBinding(plan: Plan, chunk: Chunk, dummy: GPUBuffer): GPUBufferBinding {
  if (!plan.selRec) return { buffer: dummy };
  if (plan.contiguous) return { buffer: plan.selRec };
  return { buffer: plan.selRec, offset: chunk.start * SEL_REC_BYTES, size: chunk.count * SEL_REC_BYTES };
}

function groupStateInit(groupCount: number): Uint32Array {
  const init = hostArray(Uint32Array, groupCount * GROUP_STATE_WORDS, 'the selection state');
  for (let g = 0; g < groupCount; g++) { init[g * 5 + 3] = 0xffffffff; init[g * 5 + 4] = 0xffffffff; }
  return init;
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

function fillStaging(mapped: ArrayBuffer, batch: Batch, shape: BatchShape, chunk: Chunk, seg: Record<InputName, { offset: number; bytes: number }>, preEncoded: Uint16Array | undefined, withE = true): void {
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
  if (shape.rewards) encodeRewardDiff(batch.expected!, batch.realized!, start * batch.t, count * batch.t, new Float32Array(mapped, seg.rewardDiff.offset, count * batch.t));
  if (shape.d) {
    const w = batch.t * shape.d;
    new Float32Array(mapped, seg.embeddings.offset, count * w).set(batch.embeddings!.subarray(start * w, (start + count) * w));
  }
  if (shape.base) encodeBaseKeys(batch.baseScore!, start, count, new Uint32Array(mapped, seg.baseKey.offset, count * 2));
  if (shape.groups) new Uint32Array(mapped, seg.groups.offset, count).set(batch.groups!.subarray(start, start + count));
}

/** The three uniform blocks of one chunk: metrics, TS from embeddings, covariance. */
function chunkUniformData(plan: Plan, chunk: Chunk): ArrayBuffer {
  const view = new DataView(new ArrayBuffer(3 * UNIFORM_STRIDE));
  const last = chunk.start + chunk.count === plan.batch.n ? Flag.LAST_CHUNK : 0;
  const common = { ...plan.base, n: chunk.count, chunkStart: chunk.start, flags: plan.base.flags | last };
  const perDim = plan.maxPerDim;
  packParams({ ...common, wgPerRow: refoldDispatch(Math.ceil(chunk.count / plan.wg), perDim).x }, view, 0);
  packParams({ ...common, a: plan.shape.d, wgPerRow: refoldDispatch(Math.ceil(chunk.count / (plan.tsWg / TS_EMB_TPT)), perDim).x }, view, UNIFORM_STRIDE);
  packParams({ ...common, a: plan.batch.a ?? 0, wgPerRow: refoldDispatch(Math.ceil(chunk.count / COVARIANCE_WG), perDim).x }, view, 2 * UNIFORM_STRIDE);
  return view.buffer;
}

/** One uniform block per selection window, then one for the per-group finish. */
function selectionUniformData(plan: Plan): ArrayBuffer {
  const { windows, groupCount, maxPerDim } = plan;
  const view = new DataView(new ArrayBuffer((windows.length + 1) * UNIFORM_STRIDE));
  const zero: Params = { n: 0, t: 0, m: 0, a: 0, chunkStart: 0, confIndex: 0, flags: 0, wgPerRow: 0, lambda: 0, tau: 0, vmax: 0, dmax: 0, weights: [], crWeights: null };
  windows.forEach((c, w) => packParams({ ...zero, n: c.count, chunkStart: c.start, wgPerRow: refoldDispatch(Math.ceil(c.count / SELECT_WG), maxPerDim).x }, view, w * UNIFORM_STRIDE));
  packParams({ ...zero, n: groupCount, wgPerRow: refoldDispatch(Math.ceil(groupCount / SELECT_WG), maxPerDim).x }, view, windows.length * UNIFORM_STRIDE);
  return view.buffer;
}

function dispatch(pass: GPUComputePassEncoder, workgroups: number, maxPerDim: number): void {
  const d = refoldDispatch(workgroups, maxPerDim);
  if (d.x > 0) pass.dispatchWorkgroups(d.x, d.y);
}

/** Binding size of a vec4-typed input: whole 16-byte words (the segment's capacity is 256-aligned). */
function vec4Bytes(bytes: number): number {
  return alignUp(bytes, 16);
}

function encodeChunkCompute(
  enc: GPUCommandEncoder, ctx: RunContext, plan: Plan, slot: Slot, uniforms: GPUBuffer, uniformBase: number, chunk: Chunk,
  seg: Record<InputName, { offset: number; bytes: number }>, stamp: (label: string) => GPUComputePassTimestampWrites | undefined,
): void {
  const device = ctx.gpu.device;
  const { dummies } = ctx;
  const inputOr = (name: InputName, bytes = seg[name].bytes): GPUBufferBinding => (seg[name].bytes > 0 ? { buffer: slot.input, offset: seg[name].offset, size: bytes } : { buffer: dummies.read });
  const uniform = (k: number): GPUBufferBinding => ({ buffer: uniforms, offset: uniformBase + k * UNIFORM_STRIDE, size: PARAMS_BYTES });
  const { maxPerDim, outLayout } = plan;

  if (plan.tsPipe) {
    const bg = device.createBindGroup({
      label: 'ecr.webgpu.tsEmbeddings.bindGroup', layout: plan.tsPipe.bindGroupLayout,
      entries: [
        { binding: 0, resource: uniform(1) },
        { binding: 1, resource: inputOr('embeddings', vec4Bytes(seg.embeddings.bytes)) },
        { binding: 2, resource: { buffer: slot.tsEmb!, offset: 0, size: chunk.count * 4 } },
      ],
    });
    const pass = enc.beginComputePass({ label: 'ecr.webgpu.tsEmbeddings', timestampWrites: stamp('tsEmbeddings') });
    pass.setPipeline(plan.tsPipe.pipeline);
    pass.setBindGroup(0, bg);
    dispatch(pass, Math.ceil(chunk.count / (plan.tsWg / TS_EMB_TPT)), maxPerDim);
    pass.end();
  }
  const tsEmb: GPUBufferBinding = plan.tsPipe ? { buffer: slot.tsEmb!, offset: 0, size: chunk.count * 4 } : { buffer: dummies.read };
  const mb = MetricsBinding;
  const metricsEntries: GPUBindGroupEntry[] = [
      { binding: mb.params, resource: uniform(0) },
      { binding: mb.e, resource: inputOr('e', vec4Bytes(seg.e.bytes)) },
      { binding: mb.policy, resource: inputOr('policy') },
      { binding: mb.rewardDiff, resource: inputOr('rewardDiff') },
      { binding: mb.tsEmb, resource: tsEmb },
      { binding: mb.baseKey, resource: inputOr('baseKey') },
      { binding: mb.groups, resource: inputOr('groups') },
      { binding: mb.out, resource: { buffer: slot.output, offset: 0, size: metricsOutputBytes(chunk.count) } },
      { binding: mb.selRec, resource: selRecBinding(plan, chunk, dummies.write1) },
      { binding: mb.groupState, resource: plan.groupState ? { buffer: plan.groupState } : { buffer: dummies.write2 } },
  ];
  const bg = device.createBindGroup({ label: 'ecr.webgpu.metrics.bindGroup', layout: plan.metricsPipe.bindGroupLayout, entries: metricsEntries });
  const pass = enc.beginComputePass({ label: 'ecr.webgpu.metrics', timestampWrites: stamp('metrics') });
  pass.setPipeline(plan.metricsPipe.pipeline);
  pass.setBindGroup(0, bg);
  dispatch(pass, Math.ceil(chunk.count / plan.wg), maxPerDim);
  pass.end();

  if (plan.selRunsPipe) {
    // The same resources: the kernel reads the CCIs the metrics pass just wrote.
    const sbg = device.createBindGroup({ label: 'ecr.webgpu.select.runs.bindGroup', layout: plan.selRunsPipe.bindGroupLayout, entries: metricsEntries });
    const spass = enc.beginComputePass({ label: 'ecr.webgpu.select.runs', timestampWrites: stamp('select.runs') });
    spass.setPipeline(plan.selRunsPipe.pipeline);
    spass.setBindGroup(0, sbg);
    dispatch(spass, Math.ceil(chunk.count / SELECT_RUNS_WG), maxPerDim);
    spass.end();
  }

  if (plan.covPipe) {
    const cbg = device.createBindGroup({
      label: 'ecr.webgpu.covariance.bindGroup', layout: plan.covPipe.bindGroupLayout,
      entries: [
        { binding: 0, resource: uniform(2) },
        { binding: 1, resource: inputOr('e') },
        { binding: 2, resource: { buffer: slot.output, offset: outLayout.cov.offset, size: chunk.count * plan.batch.m * plan.batch.m * 4 } },
      ],
    });
    const cpass = enc.beginComputePass({ label: 'ecr.webgpu.covariance', timestampWrites: stamp('covariance') });
    cpass.setPipeline(plan.covPipe.pipeline);
    cpass.setBindGroup(0, cbg);
    dispatch(cpass, Math.ceil(chunk.count / COVARIANCE_WG), maxPerDim);
    cpass.end();
  }
}

/** Copies a chunk's metric arrays (f32, converted to f64 by TypedArray.set) and admissible bytes into the output. */
function unpackChunk(readback: GPUBuffer, chunk: Chunk, out: RunOutput<Float64Array | Float32Array>, m: number, covOffset: number): void {
  const { start, count } = chunk;
  const stride = metricStride(count);
  const mapped = readback.getMappedRange(0, metricsOutputBytes(count));
  const arrays = [out.evb, out.cr, out.ts, out.es, out.pd, out.cci];
  for (let k = 0; k < 6; k++) arrays[k].set(new Float32Array(mapped, k * stride * 4, count), start);
  out.admissible!.set(new Uint8Array(mapped, 24 * stride, count), start);
  if (out.covariance) {
    const mm = m * m;
    out.covariance.set(new Float32Array(readback.getMappedRange(covOffset, count * mm * 4)), start * mm);
  }
}

/** Selection passes 2-4 over every window (each pass completes over the batch before the next: passes are ordered). */
function encodeSelection(enc: GPUCommandEncoder, ctx: RunContext, plan: Plan, uniforms: GPUBuffer, stamp: (label: string) => GPUComputePassTimestampWrites | undefined): void {
  const device = ctx.gpu.device;
  const pipes = plan.selPipes!;
  const run = (passIdx: number, w: number, recWindow: GPUBufferBinding, workgroups: number) => {
    const bg = device.createBindGroup({
      label: 'ecr.webgpu.select.bindGroup', layout: pipes[passIdx].bindGroupLayout,
      entries: [
        { binding: 0, resource: { buffer: uniforms, offset: w * UNIFORM_STRIDE, size: PARAMS_BYTES } },
        { binding: 1, resource: recWindow },
        { binding: 2, resource: { buffer: plan.groupState! } },
        { binding: 3, resource: { buffer: plan.selected! } },
      ],
    });
    const pass = enc.beginComputePass({ label: `ecr.webgpu.select.${passIdx}`, timestampWrites: stamp(`select.${SELECT_PASSES[passIdx]}`) });
    pass.setPipeline(pipes[passIdx].pipeline);
    pass.setBindGroup(0, bg);
    dispatch(pass, workgroups, plan.maxPerDim);
    pass.end();
  };
  const rec = plan.selRec!;
  for (const passIdx of [0, 1]) {
    plan.windows.forEach((c, w) => run(passIdx, w, { buffer: rec, offset: c.start * SEL_REC_BYTES, size: c.count * SEL_REC_BYTES }, Math.ceil(c.count / SELECT_WG)));
  }
  run(2, plan.windows.length, { buffer: rec, offset: 0, size: Math.min(rec.size, 256) }, Math.ceil(plan.groupCount / SELECT_WG));
}

/**
 * Device time of every kernel of the batch submitted back to back in one command buffer (each
 * chunk's compute on the slot that last held a chunk of its size, then selection), from the start
 * of the first pass to the end of the last. The slots' inputs are real E of this batch; outputs
 * are discarded (the selection state is reset first so the atomics do the same work).
 */
async function replayKernels(ctx: RunContext, plan: Plan, slots: Slot[], selectionUniforms: GPUBuffer | null): Promise<number> {
  const { gpu, pool } = ctx;
  const device = gpu.device;
  const { chunks } = plan;
  const uniforms = pool.acquire(chunks.length * 3 * UNIFORM_STRIDE, BufferUsage.UNIFORM | BufferUsage.COPY_DST, 'ecr.webgpu.replay.uniforms');
  const querySet = device.createQuerySet({ type: 'timestamp', count: 2, label: 'ecr.webgpu.replay.timestamps' });
  try {
    const data = new Uint8Array(chunks.length * 3 * UNIFORM_STRIDE);
    chunks.forEach((c, k) => data.set(new Uint8Array(chunkUniformData(plan, c)), k * 3 * UNIFORM_STRIDE));
    device.queue.writeBuffer(uniforms, 0, data);
    if (plan.select) device.queue.writeBuffer(plan.groupState!, 0, groupStateInit(plan.groupCount));
    const enc = device.createCommandEncoder({ label: 'ecr.webgpu.replay' });
    enc.beginComputePass({ label: 'ecr.webgpu.replay.begin', timestampWrites: { querySet, beginningOfPassWriteIndex: 0 } }).end();
    if (plan.selRec) enc.clearBuffer(plan.selRec);
    const none = () => undefined;
    chunks.forEach((c, k) => {
      const layout = inputLayout(plan.shape, plan.capacity, c.count);
      encodeChunkCompute(enc, ctx, plan, slots[k % slots.length], uniforms, k * 3 * UNIFORM_STRIDE, c, layout.segments, none);
    });
    if (plan.select) encodeSelection(enc, ctx, plan, selectionUniforms!, none);
    enc.beginComputePass({ label: 'ecr.webgpu.replay.end', timestampWrites: { querySet, endOfPassWriteIndex: 1 } }).end();
    device.queue.submit([enc.finish()]);
    return await readTimestampSpan(ctx, querySet);
  } finally {
    querySet.destroy();
    pool.release(uniforms);
  }
}

/** Milliseconds of each (begin, end) pair of resolved timestamps. */
async function readTimestampPairs(ctx: RunContext, querySet: GPUQuerySet, count: number): Promise<number[]> {
  return readTimestamps(ctx, querySet, count, (ts) => {
    const ms: number[] = [];
    for (let q = 0; q + 1 < count; q += 2) ms.push(ts[q + 1] > ts[q] ? Number(ts[q + 1] - ts[q]) / 1e6 : 0);
    return ms;
  });
}

/** Milliseconds from the first two resolved timestamps. */
async function readTimestampSpan(ctx: RunContext, querySet: GPUQuerySet): Promise<number> {
  return readTimestamps(ctx, querySet, 2, (ts) => (ts[1] > ts[0] ? Number(ts[1] - ts[0]) / 1e6 : 0));
}

async function readTimestamps<R>(ctx: RunContext, querySet: GPUQuerySet, count: number, reduce: (ts: BigUint64Array) => R): Promise<R> {
  const { gpu } = ctx;
  const device = gpu.device;
  const bytes = count * 8;
  const resolve = device.createBuffer({ size: bytes, usage: BufferUsage.QUERY_RESOLVE | BufferUsage.COPY_SRC, label: 'ecr.webgpu.timestamps.resolve' });
  const read = device.createBuffer({ size: bytes, usage: BufferUsage.MAP_READ | BufferUsage.COPY_DST, label: 'ecr.webgpu.timestamps.read' });
  try {
    const enc = device.createCommandEncoder({ label: 'ecr.webgpu.timestamps' });
    enc.resolveQuerySet(querySet, 0, count, resolve, 0);
    enc.copyBufferToBuffer(resolve, 0, read, 0, bytes);
    device.queue.submit([enc.finish()]);
    await mapOrFail(gpu, read, MapMode.READ, 'timestamp readback');
    const result = reduce(new BigUint64Array(read.getMappedRange()));
    read.unmap();
    return result;
  } finally {
    resolve.destroy();
    read.destroy();
  }
}
