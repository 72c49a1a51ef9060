/**
 * Planning a batch, with no device: which kernels run (programs), how the batch is cut into
 * chunks, each chunk's dispatches and uniform blocks, and where selection happens. The streamer
 * (stream.ts) only executes what this returns; test/webgpu-plan.test.ts checks it with made-up
 * device capabilities.
 *
 * Selection plan: always the host. `scoreBatch` and `ecr score` select with GroupSelector over
 * every window and shape bucket of a run (a group may span both), so a per-batch GPU selection
 * could only be thrown away; it cost 26% of the H200 kernel time (0.98 vs 0.72 ms at 10M) and 37%
 * on the software adapter here, and was removed (see the WebGPU README, "Selection").
 */
import type { Batch } from '../../core/batch.js';
import type { ResolvedConfig } from '../../core/config.js';
import { BackendUnavailableError } from '../../core/errors.js';
import type { DeviceLimits } from './device/device.js';
import { maxChunkTrajectories, planChunks, refoldDispatch, type Chunk, type Dispatch2D } from './device/dispatch.js';
import { chooseMetricsKernel, laneLayoutOf, usesSubgroups, type KernelCaps } from './kernel-choice.js';
import { chunkedBindings, shapeOf, type BatchShape } from './layout.js';
import { COVARIANCE_WG, covarianceProgram } from './programs/covariance.js';
import { generalProgram } from './programs/general.js';
import { lanesPerTrajectory, lanesProgram, lanesWorkgroupSize } from './programs/lanes.js';
import type { Program } from './programs/program.js';
import { stagedProgram, stagedWorkgroupSize, STAGED_DEFAULT_WG } from './programs/staged.js';
import { TS_EMB_TPT, tsEmbeddingsProgram, tsEmbeddingsWorkgroupSize } from './programs/ts-embeddings.js';
import { checkTuning, type MetricsKernelKind, type WebGpuTuning } from './tuning.js';
import { baseParams, crWeightsUniform, packParams, type ParamValues } from './uniforms.js';

/** Uniform blocks sit at this stride (minUniformBufferOffsetAlignment is at most 256). */
export const UNIFORM_STRIDE = 256;
/**
 * Alignment of the planned chunk sizes (trajectories), a round number for the buffer pool; lowered
 * for trajectories too large for 256 per binding. Nothing else needs it: each chunk is staged and
 * bound from offset 0 of its own buffers (unorm16 pairs restart at the chunk's first value), so a
 * chunk size the caller asks for is kept as is.
 */
export const CHUNK_ALIGN = 256;
const DEFAULT_TARGET_CHUNK_BYTES = 256 << 20;
const DEFAULT_SLOTS = 3;

export interface DeviceCaps extends KernelCaps {
  limits: DeviceLimits;
}

export interface PlanOptions {
  unorm16: boolean;
  covariance: boolean;
  /** Trajectories per chunk (the public chunk-size option; lowered to the device's limits only). */
  chunkTrajectories?: number;
  tuning: WebGpuTuning;
}

/** One compute pass: a program, its uniform block (index into the chunk's blocks) and its dispatch. */
export interface PassPlan {
  program: Program;
  uniform: number;
  dispatch: Dispatch2D;
}

export interface ChunkPlan extends Chunk {
  /** The chunk's uniform blocks, UNIFORM_STRIDE apart, one per pass. */
  uniforms: ArrayBuffer;
  passes: PassPlan[];
}

export interface Plan {
  kernel: MetricsKernelKind;
  shape: BatchShape;
  /** Trajectories every chunk buffer is sized for. */
  capacity: number;
  chunks: ChunkPlan[];
  slots: number;
  /** Batch-wide storage for the general kernel's CR weights (null for the fast paths). */
  crWeights: Float32Array | null;
  selection: 'host';
}

/** How many trajectories one workgroup of each program covers, and its pipeline description. */
interface ProgramUse {
  program: Program;
  trajectoriesPerWorkgroup: number;
  /** Params overrides for this pass (the TS kernel reads no policy width). */
  params?: Partial<ParamValues>;
}

function metricsUse(kind: MetricsKernelKind, shape: BatchShape, config: ResolvedConfig, caps: DeviceCaps, tuning: WebGpuTuning): ProgramUse {
  const { t, m, unorm16 } = shape;
  const crUniform = crWeightsUniform(config.crWeights, m);
  const wgX = caps.limits.maxComputeWorkgroupSizeX;
  if (kind === 'general') return { program: generalProgram(unorm16, crUniform), trajectoriesPerWorkgroup: 1 };
  if (kind === 'staged') {
    const wg = stagedWorkgroupSize(t * m, caps.limits.maxComputeWorkgroupStorageSize, wgX, tuning.stagedWorkgroupSize ?? STAGED_DEFAULT_WG);
    return { program: stagedProgram(t, m, wg, unorm16, tuning.registerPath ?? true), trajectoriesPerWorkgroup: wg };
  }
  const layout = laneLayoutOf(kind)!;
  const lp = lanesPerTrajectory(m, layout);
  const wg = lanesWorkgroupSize(wgX, lp, tuning.laneWorkgroupSize);
  return { program: lanesProgram(t, m, wg, unorm16, layout, usesSubgroups(kind), crUniform), trajectoriesPerWorkgroup: wg / lp };
}

/**
 * Largest power-of-two chunk alignment <= CHUNK_ALIGN at which one aligned group of trajectories
 * fits every binding and the streaming target (wide trajectories: T = 4096, m = 5000 is 82 MB of E).
 */
function chunkAlignment(bindings: ReturnType<typeof chunkedBindings>, limits: DeviceLimits, targetBytes: number): number {
  const widest = Math.max(...bindings.map((b) => b.bytesPerTrajectory));
  const total = bindings.reduce((a, b) => a + b.bytesPerTrajectory, 0);
  const room = Math.min(limits.maxStorageBufferBindingSize, limits.maxBufferSize);
  let align = CHUNK_ALIGN;
  while (align > 1 && (align * widest > room || (targetBytes > 0 && align * total > targetBytes))) align >>= 1;
  return align;
}

/** Why this batch cannot run on a device with these limits (every kernel considered), or null. */
export function unsupportedReason(shape: BatchShape, limits: DeviceLimits): string | null {
  const bindings = chunkedBindings(shape, false);
  const room = Math.min(limits.maxStorageBufferBindingSize, limits.maxBufferSize);
  for (const b of bindings) {
    if (b.bytesPerTrajectory > room) return `one trajectory needs ${b.bytesPerTrajectory} bytes of "${b.name}", over the device's binding limit ${room}`;
  }
  return null;
}

/** The whole batch's plan. Pure: a function of the shape, config, options and device capabilities. */
export function plan(
  batch: Pick<Batch, 'n' | 't' | 'm' | 'a' | 'd' | 'policy' | 'embeddings' | 'expected'>,
  config: ResolvedConfig,
  options: PlanOptions,
  caps: DeviceCaps,
): Plan {
  const { tuning } = options;
  checkTuning(tuning);
  const shape = shapeOf(batch, options.unorm16, options.covariance);
  const why = unsupportedReason(shape, caps.limits);
  if (why)
    throw new BackendUnavailableError(
      'webgpu',
      `this batch (T = ${shape.t}, m = ${shape.m}${shape.d ? `, d = ${shape.d}` : ''}${shape.a ? `, A = ${shape.a}` : ''}) cannot run on this device: ${why}`,
    );
  const kernel = chooseMetricsKernel(tuning.kernel ?? 'auto', shape.t, shape.m, caps);
  const metrics = metricsUse(kernel, shape, config, caps, tuning);
  // The fast paths take TS from embeddings from their own pass; the general kernel computes it.
  const tsUse: ProgramUse | null =
    shape.d && kernel !== 'general'
      ? (() => {
          const wg = tsEmbeddingsWorkgroupSize(shape.t, caps.limits.maxComputeWorkgroupStorageSize, caps.limits.maxComputeWorkgroupSizeX);
          return { program: tsEmbeddingsProgram(shape.t, shape.d, wg), trajectoriesPerWorkgroup: wg / TS_EMB_TPT };
        })()
      : null;
  const covUse: ProgramUse | null = shape.covariance ? { program: covarianceProgram(shape.unorm16), trajectoriesPerWorkgroup: COVARIANCE_WG } : null;
  // Order matters: TS from embeddings feeds the metrics pass.
  const uses = [tsUse, metrics, covUse].filter((u): u is ProgramUse => u !== null);

  const bindings = chunkedBindings(shape, tsUse !== null);
  const targetChunkBytes = tuning.targetChunkBytes ?? DEFAULT_TARGET_CHUNK_BYTES;
  const perChunkLimit = maxChunkTrajectories(bindings, {
    maxBindingBytes: caps.limits.maxStorageBufferBindingSize,
    maxBufferBytes: caps.limits.maxBufferSize,
    trajectoriesPerWorkgroup: Math.min(...uses.map((u) => u.trajectoriesPerWorkgroup)),
    maxWorkgroupsPerDimension: caps.limits.maxComputeWorkgroupsPerDimension,
    alignTrajectories: chunkAlignment(bindings, caps.limits, targetChunkBytes),
    targetChunkBytes,
  });
  const asked = options.chunkTrajectories;
  const perChunk = asked ? Math.min(perChunkLimit, asked) : perChunkLimit;
  const base = baseParams(shape, config);
  const maxPerDim = caps.limits.maxComputeWorkgroupsPerDimension;
  const chunks: ChunkPlan[] = planChunks(batch.n, perChunk).map((c) => {
    const view = new DataView(new ArrayBuffer(uses.length * UNIFORM_STRIDE));
    const passes = uses.map((u, k): PassPlan => {
      const dispatch = refoldDispatch(Math.ceil(c.count / u.trajectoriesPerWorkgroup), maxPerDim);
      packParams({ ...base, ...u.params, n: c.count, chunkStart: c.start, wgPerRow: dispatch.x }, view, k * UNIFORM_STRIDE);
      return { program: u.program, uniform: k, dispatch };
    });
    return { ...c, uniforms: view.buffer, passes };
  });
  let crWeights: Float32Array | null = null;
  if (kernel === 'general') crWeights = config.crWeights ? Float32Array.from(config.crWeights) : new Float32Array([1]);
  return {
    kernel,
    shape,
    capacity: Math.min(perChunk, batch.n),
    chunks,
    slots: Math.max(1, Math.min(tuning.slots ?? DEFAULT_SLOTS, chunks.length)),
    crWeights,
    selection: 'host',
  };
}
