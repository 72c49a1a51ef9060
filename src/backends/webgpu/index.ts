/**
 * The 'webgpu' ScoreBackend: float32 WGSL kernels (shaders/) chosen and sized by plan.ts and run
 * by stream.ts. Opens its device lazily on first use; `dispose` destroys buffers and the device so
 * the process can exit. Options are in options.ts; kernel tuning is an internal second argument
 * (tuning.ts), and the device and plans are reached through internals.ts, both for benchmarks and
 * tests.
 */
import type { Batch } from '../../core/batch.js';
import { checkComputeOptions } from '../backend.js';
import type { ResolvedConfig } from '../../core/config.js';
import { GpuError, UsageError } from '../../core/errors.js';
import { openDevice } from './device/adapter.js';
import { BufferPool } from './device/buffer-pool.js';
import { GpuDevice } from './device/device.js';
import { PipelineCache } from './device/pipeline-cache.js';
import { BufferUsage } from './device/usage.js';
import type { BackendOutput, ComputeOptions, ScoreBackend } from '../backend.js';
import { shapeOf } from './layout.js';
import { MappedSteps, type MappedStepsOptions } from './mapped-steps.js';
import { plan, unsupportedReason, type DeviceCaps, type Plan } from './plan.js';
import { streamPlan, type Float32Metrics, type MappedStepsSource, type StreamContext } from './stream.js';
import { checkTuning, type MetricsKernelKind, type WebGpuTuning } from './tuning.js';
import { exposeInternals, type WorkShapeQuery } from './internals.js';
import type { WebGpuBackendOptions } from './options.js';

export { MappedSteps, type MappedStepsOptions } from './mapped-steps.js';
export type { Float32Metrics } from './stream.js';
export type { WebGpuBackendOptions } from './options.js';

/** ComputeOptions plus what only this backend understands. */
export interface WebGpuComputeOptions extends ComputeOptions {
  /**
   * E already encoded as unorm16 codes (`encodeUnorm16(batch.steps)`: n*T*m values in
   * batch.steps' order), for callers that keep E in that compact form: uploaded as is (half the
   * bytes of float32), batch.steps is not read, and results equal `compact: 'unorm16'` on the
   * same values.
   */
  stepsUnorm16?: Uint16Array;
  /**
   * E in buffers from `allocateMappedSteps` (same n, T, m), filled by the caller in place: copied
   * GPU-side, no host copy. batch.steps must then be `mappedSteps.steps` or an empty array. The
   * call unmaps the buffers (detaching every view) and maps them again before it returns.
   */
  mappedSteps?: MappedSteps;
}

interface RunContext extends StreamContext {
  caps: DeviceCaps;
}

const METRICS = ['evb', 'cr', 'ts', 'es', 'pd', 'cci'] as const;

export class WebGpuBackend implements ScoreBackend {
  readonly name = 'webgpu' as const;
  private context: Promise<RunContext> | null = null;
  private live: RunContext | null = null;
  private readonly mapped = new Set<MappedSteps>();
  private readonly options: WebGpuBackendOptions;
  private readonly tuning: WebGpuTuning;
  /** The adapter choice has been reported (once per backend: a device reopened after a loss is not reported again). */
  private reported = false;

  /** `tuning` is internal (tuning.ts): benchmarks and tests only; its kernel and disableRobustness win over the options'. */
  constructor(options: WebGpuBackendOptions = {}, tuning: WebGpuTuning = {}) {
    if (options.compact !== undefined && options.compact !== 'unorm16')
      throw new UsageError(`compact must be "unorm16", got ${JSON.stringify(options.compact)}`);
    const c = options.chunkTrajectories;
    if (c !== undefined && (!Number.isSafeInteger(c) || c < 1)) throw new UsageError(`chunkTrajectories must be a positive integer, got ${c}`);
    this.options = { ...options };
    this.tuning = {
      ...tuning,
      kernel: tuning.kernel ?? options.kernel,
      disableRobustness: tuning.disableRobustness ?? options.disableRobustness,
    };
    checkTuning(this.tuning);
    exposeInternals(this, {
      device: async () => (await this.ready()).gpu,
      planFor: async (batch, config, compute = {}) =>
        this.planOn(await this.ready(), batch, config, compute.compact ?? this.options.compact, !!compute.covariance),
      unsupported: async (shape) => unsupportedOn(await this.ready(), shape),
    });
  }

  /** Opens the device (if not yet open) and returns its description, e.g. "opengles: ... llvmpipe". */
  async describe(): Promise<{
    adapter: string;
    kind: string;
    choice: string;
    timestamps: boolean;
    subgroups: boolean;
    subgroupMinSize: number;
    robustnessDisabled: boolean;
  }> {
    const ctx = await this.ready();
    const g = ctx.gpu;
    return {
      adapter: g.description,
      kind: g.kind,
      choice: g.choice,
      timestamps: g.timestamps,
      subgroups: g.subgroups,
      subgroupMinSize: g.subgroupMinSize,
      robustnessDisabled: g.robustnessDisabled,
    };
  }

  private planOn(ctx: RunContext, batch: Batch, config: ResolvedConfig, compact: 'unorm16' | undefined, covariance: boolean, pre?: Uint16Array): Plan {
    return plan(
      batch,
      config,
      { unorm16: compact === 'unorm16' || pre !== undefined, covariance, chunkTrajectories: this.options.chunkTrajectories, tuning: this.tuning },
      ctx.caps,
    );
  }

  private ready(): Promise<RunContext> {
    if (this.live && !this.live.gpu.healthy) {
      // The call that met the loss (or uncaptured error) has thrown GpuError; later calls get a fresh device.
      this.live.pool.clear();
      this.live.gpu.destroy();
      this.live = null;
      this.context = null;
    }
    if (this.live) return Promise.resolve(this.live);
    if (!this.context) {
      this.context = (async () => {
        const gpu = new GpuDevice(
          await openDevice({
            adapter: this.options.adapter,
            adapterReason: this.options.adapterReason,
            debug: this.options.debug,
            disableRobustness: this.tuning.disableRobustness ?? 'native',
          }),
        );
        const d = gpu.device;
        const ctx: RunContext = {
          gpu,
          pool: new BufferPool(d),
          pipelines: new PipelineCache(gpu),
          dummies: { read: d.createBuffer({ size: 256, usage: BufferUsage.STORAGE, label: 'ecr.webgpu.absentInput' }) },
          caps: {
            limits: gpu.limits,
            subgroups: gpu.subgroups,
            subgroupMinSize: gpu.subgroupMinSize,
            maxComputeWorkgroupSizeX: gpu.limits.maxComputeWorkgroupSizeX,
            maxComputeWorkgroupStorageSize: gpu.limits.maxComputeWorkgroupStorageSize,
          },
        };
        this.live = ctx;
        return ctx;
      })();
      this.context.catch(() => {
        this.context = null;
      });
    }
    return this.context;
  }

  /**
   * Float32 storage for one batch's E (n*T*m values, batch.steps' order) in mapped GPU buffers
   * that the caller fills in place (the analogue of pinned host memory): `computeMetrics(...,
   * { mappedSteps })` then copies E on the GPU instead of through the JS thread. One buffer when
   * it fits maxBufferSize (read `.steps`), else several (`.parts`). Views are valid only until the
   * next compute call starts: read `.steps` again after every call. `dispose()` frees the buffers
   * (backend.dispose() does too).
   */
  async allocateMappedSteps(n: number, t: number, m: number, options: MappedStepsOptions = {}): Promise<MappedSteps> {
    const ctx = await this.ready();
    const steps = MappedSteps.allocate(ctx.gpu, n, t, m, options);
    this.mapped.add(steps);
    return steps;
  }

  /** One planned, streamed call, with the mapped steps (if any) claimed for its duration and mapped again after. */
  private async run(
    batch: Batch,
    config: ResolvedConfig,
    options: WebGpuComputeOptions,
    outputs: { out?: ComputeOptions['out']; out32?: Float32Metrics },
    profile: boolean,
  ) {
    const compact = options.compact ?? this.options.compact;
    const pre = options.stepsUnorm16;
    if (pre !== undefined && (!(pre instanceof Uint16Array) || pre.length !== batch.n * batch.t * batch.m)) {
      throw new UsageError(`stepsUnorm16 must be a Uint16Array of n*T*m = ${batch.n * batch.t * batch.m} codes`);
    }
    const mapped = options.mappedSteps;
    if (mapped && (compact === 'unorm16' || pre !== undefined)) {
      throw new UsageError('mappedSteps holds float32 E: it cannot be combined with compact: unorm16 or stepsUnorm16');
    }
    let source: MappedStepsSource | undefined;
    let ctx: RunContext;
    if (mapped) {
      // Claimed synchronously (mapped steps imply an open device): a second call with the same object is rejected at once.
      const owner = this.live && this.live.gpu.healthy ? this.live : null;
      source = mapped.claim(owner?.gpu ?? null, batch);
      ctx = owner!;
    } else {
      ctx = await this.ready();
    }
    try {
      const p = this.planOn(ctx, batch, config, compact, !!options.covariance, pre);
      this.reportChoice(ctx.gpu.choice);
      return await streamPlan(ctx, p, { batch, stepsUnorm16: pre, mappedSteps: source, ...outputs }, profile, this.tuning.replays ?? 3);
    } catch (err) {
      // The run's error wins; a failed re-map marks the object failed (its next use says why).
      if (mapped) await mapped.release().catch(() => undefined);
      throw err;
    } finally {
      if (mapped) await mapped.release();
    }
  }

  private reportChoice(choice: string): void {
    if (this.reported) return;
    const report =
      this.options.reportAdapter ??
      (this.options.debug
        ? (c: string) => {
            process.stderr.write(`ecr: webgpu adapter: ${c}\n`);
          }
        : undefined);
    if (!report) return;
    this.reported = true;
    report(choice);
  }

  /** The five metrics and CCI; no selection (the host selects: plan.ts, "Selection plan"). */
  async computeMetrics(batch: Batch, config: ResolvedConfig, options: WebGpuComputeOptions = {}): Promise<BackendOutput> {
    checkComputeOptions(options, batch.n, batch.m);
    if (batch.n === 0) return emptyOutput();
    const { output } = await this.run(batch, config, options, { out: options.out }, false);
    return output as BackendOutput; // without out32 every metric array is a Float64Array
  }

  /**
   * computeMetrics writing the metrics into caller-owned Float32Arrays (`out`, each of length n;
   * `out.covariance` of n*m*m when `covariance` is asked for). The kernels compute in float32, so
   * nothing is lost, and readback is a plain copy instead of a float32 -> float64 conversion.
   */
  async computeMetricsF32(batch: Batch, config: ResolvedConfig, out: Float32Metrics, options: Omit<WebGpuComputeOptions, 'out'> = {}): Promise<void> {
    const check = (name: string, a: unknown, len: number) => {
      if (!(a instanceof Float32Array) || a.length !== len) throw new UsageError(`computeMetricsF32: out.${name} must be a Float32Array of length ${len}`);
    };
    for (const k of METRICS) check(k, out[k], batch.n);
    if (options.covariance) check('covariance', out.covariance, batch.n * batch.m * batch.m);
    if (batch.n === 0) return;
    await this.run(batch, config, options, { out32: out }, false);
  }

  /**
   * Runs the batch once with the stages serialized and reports wall-clock milliseconds per stage
   * (uploadFill = host copy into staging, upload, kernel, readback, readbackUnpack) and, where the
   * device has `timestamp-query`, kernelMs = the median device time of the batch's kernels
   * replayed back to back (tuning.replays times). The software adapter has no timestamps.
   */
  async profile(
    batch: Batch,
    config: ResolvedConfig,
    options: WebGpuComputeOptions = {},
  ): Promise<{ stages: Record<string, number>; kernelMs?: number; metricsKernel?: MetricsKernelKind; chunks?: number }> {
    if (batch.n === 0) return { stages: {} };
    const { times } = await this.run(batch, config, options, { out: options.out }, true);
    if (!times) throw new GpuError('internal', 'profile run returned no timings');
    return { stages: times.stages, kernelMs: times.kernelMs, metricsKernel: times.metricsKernel, chunks: times.chunks };
  }

  async dispose(): Promise<void> {
    const pending = this.context;
    this.context = null;
    this.live = null;
    for (const steps of this.mapped) steps.destroyBuffers();
    this.mapped.clear();
    if (!pending) return;
    let ctx: RunContext;
    try {
      ctx = await pending;
    } catch {
      return; // never opened: nothing to release
    }
    ctx.pool.clear();
    ctx.pipelines.clear();
    ctx.gpu.destroy();
  }
}

/** Why this device cannot run a batch of this shape (any kernel), or null: `auto` asks before choosing webgpu. */
function unsupportedOn(ctx: RunContext, shape: WorkShapeQuery): string | null {
  const s = shapeOf(
    {
      t: shape.t,
      m: shape.m,
      d: shape.d,
      a: shape.a,
      embeddings: shape.d ? new Float32Array(0) : undefined,
      policy: shape.a ? new Float32Array(0) : undefined,
    },
    false,
    !!shape.covariance,
  );
  return unsupportedReason(s, ctx.caps.limits);
}

function emptyOutput(): BackendOutput {
  const z = () => new Float64Array(0);
  return { evb: z(), cr: z(), ts: z(), es: z(), pd: z(), cci: z() };
}
