/**
 * The 'webgpu' ScoreBackend: float32 WGSL kernels over the whole batch (see shaders/ and
 * runner.ts). Opens its device lazily on first use; `dispose` destroys buffers and the device so
 * the process can exit.
 */
import { checkComputeOptions, type Batch } from '../../batch.js';
import type { ResolvedConfig } from '../../config.js';
import { GpuError, UsageError } from '../../errors.js';
import { openDevice, reportAdapterChoice } from '../../gpu/adapter.js';
import { BufferPool } from '../../gpu/buffer-pool.js';
import { GpuDevice } from '../../gpu/device.js';
import { PipelineCache } from '../../gpu/pipeline-cache.js';
import { BufferUsage } from '../../gpu/usage.js';
import type { BackendOutput, ComputeOptions, ScoreBackend } from '../backend.js';
import { METRICS_KERNEL_PREFERENCES, SELECTION_KERNELS, type MetricsKernelKind, type MetricsKernelPreference, type SelectionKernel } from './kernels.js';
import { MappedSteps, type MappedStepsOptions } from './mapped-steps.js';
import { runBatch, type Float32Metrics, type RunContext, type RunOptions, type RunTuning, type SelectionPath } from './runner.js';

export { encodeUnorm16 } from './encode.js';
export { MappedSteps, type MappedStepsOptions, type MappedStepsPart, type MappedStepsState } from './mapped-steps.js';

export interface WebGpuBackendOptions extends RunTuning {
  /** Upload E as unorm16 for every call (also selectable per call with ComputeOptions.compact). */
  compact?: 'unorm16';
  /**
   * Dawn's `disable_robustness` toggle (no bounds clamps inserted around storage accesses; every
   * kernel guards its own tails and the host sizes every binding). Default: on for native adapters
   * (measured 2.7x faster kernels on the H200, fixtures unchanged), off for the OpenGL ES/software
   * path. true: on everywhere; false: off everywhere. Env: ECR_WEBGPU_UNSAFE_FAST=1 / =0.
   */
  disableRobustness?: boolean;
}

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

export class WebGpuBackend implements ScoreBackend {
  readonly name = 'webgpu' as const;
  private context: Promise<RunContext> | null = null;
  private live: RunContext | null = null;
  private readonly mapped = new Set<MappedSteps>();

  /**
   * Options override the environment (for `ecr bench` / `ecr score`): ECR_WEBGPU_COMPACT=unorm16 sets
   * `compact`, ECR_WEBGPU_METRICS_KERNEL `metricsKernel`, ECR_WEBGPU_SELECTION_KERNEL `selectionKernel`.
   */
  constructor(private readonly options: WebGpuBackendOptions = {}) {
    if (options.compact === undefined && process.env.ECR_WEBGPU_COMPACT) {
      if (process.env.ECR_WEBGPU_COMPACT !== 'unorm16') throw new UsageError(`ECR_WEBGPU_COMPACT must be "unorm16", got ${JSON.stringify(process.env.ECR_WEBGPU_COMPACT)}`);
      this.options = { ...options, compact: 'unorm16' };
    }
    if (this.options.disableRobustness === undefined && process.env.ECR_WEBGPU_UNSAFE_FAST) {
      if (process.env.ECR_WEBGPU_UNSAFE_FAST !== '1' && process.env.ECR_WEBGPU_UNSAFE_FAST !== '0') throw new UsageError(`ECR_WEBGPU_UNSAFE_FAST must be "1" or "0", got ${JSON.stringify(process.env.ECR_WEBGPU_UNSAFE_FAST)}`);
      this.options = { ...this.options, disableRobustness: process.env.ECR_WEBGPU_UNSAFE_FAST === '1' };
    }
    const kernelEnv = process.env.ECR_WEBGPU_METRICS_KERNEL;
    if (this.options.metricsKernel === undefined && kernelEnv) {
      if (!(METRICS_KERNEL_PREFERENCES as readonly string[]).includes(kernelEnv)) throw new UsageError(`ECR_WEBGPU_METRICS_KERNEL must be one of ${METRICS_KERNEL_PREFERENCES.join(', ')}, got ${JSON.stringify(kernelEnv)}`);
      this.options = { ...this.options, metricsKernel: kernelEnv as MetricsKernelPreference };
    }
    const selEnv = process.env.ECR_WEBGPU_SELECTION_KERNEL;
    if (this.options.selectionKernel === undefined && selEnv) {
      if (!(SELECTION_KERNELS as readonly string[]).includes(selEnv)) throw new UsageError(`ECR_WEBGPU_SELECTION_KERNEL must be one of ${SELECTION_KERNELS.join(', ')}, got ${JSON.stringify(selEnv)}`);
      this.options = { ...this.options, selectionKernel: selEnv as SelectionKernel };
    }
  }

  /** Opens the device (if not yet open) and returns its description, e.g. "opengles: ... llvmpipe". */
  async describe(): Promise<{ adapter: string; kind: string; choice: string; timestamps: boolean; subgroups: boolean; subgroupMinSize: number; robustnessDisabled: boolean }> {
    const ctx = await this.ready();
    const g = ctx.gpu;
    return { adapter: g.description, kind: g.kind, choice: g.choice, timestamps: g.timestamps, subgroups: g.subgroups, subgroupMinSize: g.subgroupMinSize, robustnessDisabled: g.robustnessDisabled };
  }

  /** The underlying device wrapper (tests use it to provoke device loss). */
  async device(): Promise<GpuDevice> {
    return (await this.ready()).gpu;
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
        const gpu = new GpuDevice(await openDevice({ disableRobustness: this.options.disableRobustness ?? 'native' }));
        const d = gpu.device;
        const dummy = (label: string) => d.createBuffer({ size: 256, usage: BufferUsage.STORAGE, label });
        const ctx: RunContext = {
          gpu,
          pool: new BufferPool(d),
          pipelines: new PipelineCache(gpu),
          dummies: { read: dummy('ecr.webgpu.absentInput'), write1: dummy('ecr.webgpu.unusedOutput1'), write2: dummy('ecr.webgpu.unusedOutput2') },
        };
        this.live = ctx;
        return ctx;
      })();
      this.context.catch(() => { this.context = null; });
    }
    return this.context;
  }

  private compactOf(options: ComputeOptions): 'unorm16' | undefined {
    return options.compact ?? this.options.compact;
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

  /** One runBatch call, with the mapped steps (if any) claimed for its duration and mapped again after. */
  private run(batch: Batch, config: ResolvedConfig, options: WebGpuComputeOptions, runOptions: Omit<RunOptions, 'mappedSteps' | 'compact' | 'stepsUnorm16' | 'covariance'>, profile: boolean): ReturnType<typeof runBatch> {
    const base: RunOptions = { ...runOptions, covariance: options.covariance, compact: this.compactOf(options), stepsUnorm16: options.stepsUnorm16 };
    const mapped = options.mappedSteps;
    if (!mapped) return this.ready().then((ctx) => { reportAdapterChoice(ctx.gpu.choice); return runBatch(ctx, batch, config, base, this.options, profile); });
    if (base.compact === 'unorm16' || base.stepsUnorm16 !== undefined) {
      throw new UsageError('mappedSteps holds float32 E: it cannot be combined with compact: unorm16 or stepsUnorm16');
    }
    // Claimed synchronously (mapped steps imply an open device): a second call with the same object is rejected at once.
    const owner = this.live && this.live.gpu.healthy ? this.live : null;
    const source = mapped.claim(owner?.gpu ?? null, batch);
    reportAdapterChoice(owner!.gpu.choice);
    return this.runClaimed(owner!, batch, config, { ...base, mappedSteps: source }, mapped, profile);
  }

  private async runClaimed(ctx: RunContext, batch: Batch, config: ResolvedConfig, options: RunOptions, mapped: MappedSteps, profile: boolean): ReturnType<typeof runBatch> {
    let result: Awaited<ReturnType<typeof runBatch>>;
    try {
      result = await runBatch(ctx, batch, config, options, this.options, profile);
    } catch (err) {
      // The run's error wins; a failed re-map marks the object failed (its next use says why).
      await mapped.release().catch(() => undefined);
      throw err;
    }
    await mapped.release();
    return result;
  }

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
   * Returns the admissibility bytes and, with GPU selection, the selected index per group.
   */
  async computeMetricsF32(batch: Batch, config: ResolvedConfig, out: Float32Metrics, options: Omit<WebGpuComputeOptions, 'out'> = {}): Promise<{ admissible: Uint8Array; groupSelected?: Int32Array }> {
    if (batch.n === 0) return { admissible: new Uint8Array(0), groupSelected: new Int32Array(0) };
    const { output } = await this.run(batch, config, options, { out32: out }, false);
    return { admissible: output.admissible, groupSelected: output.groupSelected };
  }

  /**
   * Runs the batch once with the stages serialized and reports wall-clock milliseconds per stage
   * (upload = encode into staging + copy, kernel, readback, select) and, where the device has
   * `timestamp-query`, kernelMs = summed GPU time of the compute passes. The software adapter has
   * no timestamps: then only the wall-clock stages are reported.
   */
  async profile(batch: Batch, config: ResolvedConfig, options: WebGpuComputeOptions = {}): Promise<{ stages: Record<string, number>; kernelMs?: number; metricsKernel?: MetricsKernelKind; selection?: SelectionPath; selectionKernel?: SelectionKernel }> {
    if (batch.n === 0) return { stages: {} };
    const { times } = await this.run(batch, config, options, { out: options.out }, true);
    if (!times) throw new GpuError('internal', 'profile run returned no timings');
    return { stages: times.stages, kernelMs: times.kernelMs, metricsKernel: times.metricsKernel, selection: times.selection, selectionKernel: times.selectionKernel };
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

function emptyOutput(): BackendOutput {
  const z = () => new Float64Array(0);
  return { evb: z(), cr: z(), ts: z(), es: z(), pd: z(), cci: z(), admissible: new Uint8Array(0), groupSelected: new Int32Array(0) };
}
