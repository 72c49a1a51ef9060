/**
 * The production `cpu` backend: ECR-SPEC section 3 for a whole packed batch in float64, on every
 * core for large batches.
 *
 * Threads: the main thread always computes alongside the worker threads.
 * - Inputs in SharedArrayBuffer memory (see allocateSharedBatch) are read by the workers in
 *   place. When the outputs are shared too, all threads claim chunks of trajectories from one
 *   atomic counter (self-balancing); otherwise each thread gets a fixed equal range.
 * - Inputs in ordinary memory cannot be shared, so the main thread first copies each worker's
 *   share into a shared staging buffer that is kept and reused across calls (see staging.ts:
 *   on fresh pages the page faults, not the copy, dominate). The copy then costs a small
 *   fraction of the compute, so it still pays on large batches; its higher threshold reflects it.
 * - Outputs: fresh arrays are allocated in shared memory and the workers write into them. With
 *   ComputeOptions.out the caller's arrays are filled instead (reusing memory across batches
 *   avoids first-touch page faults, which do not run in parallel across threads and on the dev
 *   VM cost about a fifth of a 1M-trajectory call); if those are in ordinary memory, each worker
 *   writes into staging and the main thread copies its results over.
 * - Below the thresholds, or where the compiled worker script is absent (running from .ts
 *   sources), everything runs on the calling thread.
 * Results do not depend on the split: each trajectory is computed by the same code either way.
 *
 * Covariance (options.covariance): [n][m][m] of the shrunk C of the configured shrinkage. In
 * max-abs-change mode this is the trace-mode C (as the cpu-reference oracle returns it).
 */
import { machine } from '../../core/machine.js';
import type { Batch, FloatArray, MetricArrays } from '../../core/batch.js';
import { allocMetrics } from '../../core/batch.js';
import { checkComputeOptions } from '../backend.js';
import { effectiveDmax, type ResolvedConfig } from '../../core/config.js';
import type { BackendOutput, ComputeOptions, ScoreBackend } from '../backend.js';
import {
  EVB_MAX_ABS_CHANGE,
  EVB_TRACE,
  SHRINK_IDENTITY,
  SHRINK_LEDOIT_WOLF,
  SHRINK_SCALED_IDENTITY,
  scoreClaimed,
  scoreRange,
  type KernelJob,
} from './kernel.js';
import { WorkerPool, workerScript } from './pool.js';
import { allocateSharedMetrics, isSharedArray } from './shared.js';
import { StagingArea } from './staging.js';

export interface CpuBackendOptions {
  /** Threads to use, the calling thread included (default: the CPUs this process may use, core/machine.ts). 1 = never start workers. */
  threads?: number;
  /** Smallest n split across threads when every input is in shared memory. */
  sharedThreshold?: number;
  /** Smallest n split across threads when inputs must first be copied to shared memory. */
  copyThreshold?: number;
  /** Largest per-worker staging buffer kept between calls for inputs in ordinary memory (default 512 MiB). */
  stagingRetainBytes?: number;
  /**
   * The calling thread has other work to do meanwhile (reading and checking the next block of a
   * file): a batch large enough to split then runs wholly on the worker threads, one per
   * configured thread, and the call returns to the event loop at once instead of computing a
   * share on the calling thread. Results are the same either way.
   */
  offload?: boolean;
}

/** Default thresholds, from `ecr bench` on a 2-core machine (see bench/README.md). */
export const DEFAULT_SHARED_THRESHOLD = 4096;
export const DEFAULT_COPY_THRESHOLD = 8192;

/** Trajectories per claimed chunk (at most): small enough to balance, large enough that claiming is free. */
const CLAIM_CHUNK = 16_384;

export const DEFAULT_STAGING_RETAIN_BYTES = 512 * 2 ** 20;

/** How one call was executed (for tests and benchmarks). */
export interface CpuRunInfo {
  threads: number;
  /** The workers' inputs were copied into shared staging (inputs in ordinary memory). */
  copiedInputs: boolean;
  /** The workers' results were staged and copied into `options.out` (outputs in ordinary memory). */
  copiedOutputs: boolean;
  /** Only worker threads computed (CpuBackendOptions.offload); the calling thread was left free. */
  offloaded: boolean;
}

type InputKey = 'steps' | 'embeddings' | 'expected' | 'realized' | 'policy';

export class CpuBackend implements ScoreBackend {
  readonly name = 'cpu' as const;
  readonly threads: number;
  readonly sharedThreshold: number;
  readonly copyThreshold: number;
  readonly offload: boolean;
  private pool: WorkerPool | null = null;
  private readonly staging: StagingArea;
  private readonly script: URL | null;
  /** How the most recent call ran. */
  lastRun: CpuRunInfo = { threads: 1, copiedInputs: false, copiedOutputs: false, offloaded: false };

  constructor(options: CpuBackendOptions = {}) {
    this.threads = Math.max(1, Math.floor(options.threads ?? machine().cpus));
    this.sharedThreshold = options.sharedThreshold ?? DEFAULT_SHARED_THRESHOLD;
    this.copyThreshold = options.copyThreshold ?? DEFAULT_COPY_THRESHOLD;
    this.offload = options.offload === true;
    this.script = workerScript();
    this.staging = new StagingArea(options.stagingRetainBytes ?? DEFAULT_STAGING_RETAIN_BYTES);
  }

  /** Whether this installation can start worker threads at all (false when running from .ts sources). */
  get workersAvailable(): boolean {
    return this.script !== null;
  }

  /** Worker threads started so far (they are reused across calls). */
  get workersStarted(): number {
    return this.pool?.started ?? 0;
  }

  async computeMetrics(batch: Batch, config: ResolvedConfig, options: ComputeOptions = {}): Promise<BackendOutput> {
    const n = batch.n;
    const covariance = options.covariance === true;
    checkComputeOptions(options, n, batch.m);
    const shared = inputArrays(batch).every(([, a]) => isSharedArray(a));
    const threshold = shared ? this.sharedThreshold : this.copyThreshold;
    // Every thread needs a share worth the message round trip.
    const threads = this.script === null ? 1 : Math.min(this.threads, Math.max(1, Math.floor(n / Math.max(1, threshold / 2))));
    if (threads <= 1 || n < threshold) {
      const out = options.out ? outputsOf(options.out, covariance) : allocMetrics(n);
      if (covariance && !out.covariance) out.covariance = new Float64Array(n * batch.m * batch.m);
      scoreRange(makeJob(batch, config, out), 0, n);
      this.lastRun = { threads: 1, copiedInputs: false, copiedOutputs: false, offloaded: false };
      return out;
    }
    if (this.offload) return this.computeOffloaded(batch, config, covariance, options.out, threads, shared);
    return this.computeParallel(batch, config, covariance, options.out, threads, shared);
  }

  private async computeParallel(
    batch: Batch,
    config: ResolvedConfig,
    covariance: boolean,
    into: MetricArrays | undefined,
    threads: number,
    sharedInputs: boolean,
  ): Promise<BackendOutput> {
    const n = batch.n;
    const mm = batch.m * batch.m;
    const { out, sharedOutputs, job } = parallelJob(batch, config, covariance, into);
    const pool = this.workerPool();
    if (sharedInputs && sharedOutputs) {
      await this.computeClaimed(pool, job, n, threads, true);
      this.lastRun = { threads, copiedInputs: false, copiedOutputs: false, offloaded: false };
      return out;
    }

    // Something is in ordinary memory, so each worker works on a fixed range staged in shared
    // memory: the main thread takes the first range, each worker one of the rest.
    const bounds: number[] = [];
    for (let k = 0; k <= threads; k++) bounds.push(Math.round((n * k) / threads));
    const runs: Promise<void>[] = [];
    const releases: (() => void)[] = [];
    const copyBacks: (() => void)[] = [];
    for (let w = 1; w < threads; w++) {
      const start = bounds[w];
      const end = bounds[w + 1];
      const bytes = (sharedInputs ? 0 : stagedInputBytes(job, start, end)) + (sharedOutputs ? 0 : stagedOutputBytes(end - start, covariance ? mm : 0));
      const staged = this.staging.acquire(w - 1, bytes);
      releases.push(staged.release);
      const stager = new Stager(staged.buffer);
      let workerJob = sharedInputs ? job : stager.inputs(job, start, end);
      if (!sharedOutputs) {
        workerJob = stager.outputs(workerJob, start, end, mm);
        const staging = workerJob;
        copyBacks.push(() => copyOutputs(staging, job, start, mm));
      }
      runs.push(pool.run(w - 1, workerJob, start, end));
    }
    // Settle every worker before reporting, so no rejection is left unhandled if one fails.
    const settled = Promise.allSettled(runs);
    // Boxed, so that a falsy thrown value still counts as a failure.
    let mainError: { error: unknown } | null = null;
    try {
      scoreRange(job, bounds[0], bounds[1]);
    } catch (err) {
      mainError = { error: err };
    }
    const results = await settled;
    try {
      if (mainError) throw mainError.error;
      for (const r of results) if (r.status === 'rejected') throw r.reason;
      for (const copyBack of copyBacks) copyBack();
    } finally {
      for (const release of releases) release();
    }
    this.lastRun = { threads, copiedInputs: !sharedInputs, copiedOutputs: !sharedOutputs, offloaded: false };
    return out;
  }

  /**
   * CpuBackendOptions.offload: `threads` workers claim chunks of the whole batch from one counter and
   * the calling thread only stages. Inputs or outputs in ordinary memory are staged whole in one
   * shared buffer (its own staging slot, after the per-worker ones), so a caller that reads the
   * next block meanwhile pays one copy of each and no compute.
   */
  private async computeOffloaded(
    batch: Batch,
    config: ResolvedConfig,
    covariance: boolean,
    into: MetricArrays | undefined,
    threads: number,
    sharedInputs: boolean,
  ): Promise<BackendOutput> {
    const n = batch.n;
    const mm = batch.m * batch.m;
    const { out, sharedOutputs, job } = parallelJob(batch, config, covariance, into);
    let workerJob = job;
    let release = () => {};
    const bytes = (sharedInputs ? 0 : stagedInputBytes(job, 0, n)) + (sharedOutputs ? 0 : stagedOutputBytes(n, covariance ? mm : 0));
    if (bytes > 0) {
      const staged = this.staging.acquire(this.threads, bytes);
      release = staged.release;
      const stager = new Stager(staged.buffer);
      if (!sharedInputs) workerJob = stager.inputs(workerJob, 0, n);
      if (!sharedOutputs) workerJob = stager.outputs(workerJob, 0, n, mm);
    }
    try {
      await this.computeClaimed(this.workerPool(), workerJob, n, threads, false);
      if (!sharedOutputs) copyOutputs(workerJob, job, 0, mm);
    } finally {
      release();
    }
    this.lastRun = { threads, copiedInputs: !sharedInputs, copiedOutputs: !sharedOutputs, offloaded: true };
    return out;
  }

  /** Starts the workers ahead of the first call (none with one thread or without the compiled worker script). */
  warmUp(): void {
    if (this.threads > 1 && this.script !== null) this.workerPool().startAll();
  }

  /** One worker per configured thread, started on first use (a normal call uses threads - 1 of them, an offloaded one all). */
  private workerPool(): WorkerPool {
    this.pool ??= new WorkerPool(this.threads, this.script!);
    return this.pool;
  }

  /**
   * Everything shared: every thread claims chunks from one counter, so a thread slowed by page
   * faults on fresh outputs, JIT warm-up or another process simply takes fewer chunks. With
   * `callerComputes` the calling thread is one of the `threads`; without it (offload) all are workers.
   */
  private async computeClaimed(pool: WorkerPool, job: KernelJob, n: number, threads: number, callerComputes: boolean): Promise<void> {
    const counter = new Int32Array(new SharedArrayBuffer(4));
    const chunk = claimChunk(n, threads);
    const runs: Promise<void>[] = [];
    for (let w = 0; w < (callerComputes ? threads - 1 : threads); w++) runs.push(pool.run(w, job, 0, n, { counter, chunk }));
    const settled = Promise.allSettled(runs);
    let mainError: { error: unknown } | null = null;
    try {
      if (callerComputes) scoreClaimed(job, counter, 0, n, chunk);
    } catch (err) {
      mainError = { error: err };
    }
    const results = await settled;
    if (mainError) throw mainError.error;
    for (const r of results) if (r.status === 'rejected') throw r.reason;
  }

  async dispose(): Promise<void> {
    const pool = this.pool;
    this.pool = null;
    this.staging.clear();
    await pool?.dispose();
  }
}

/** A parallel call's outputs (fresh ones in shared memory, so workers write them in place) and its job. */
function parallelJob(
  batch: Batch,
  config: ResolvedConfig,
  covariance: boolean,
  into: MetricArrays | undefined,
): { out: MetricArrays; sharedOutputs: boolean; job: KernelJob } {
  const out = into ? outputsOf(into, covariance) : allocateSharedMetrics(batch.n, covariance ? batch.m : undefined);
  return { out, sharedOutputs: outputArrays(out).every((a) => isSharedArray(a)), job: makeJob(batch, config, out) };
}

/** About eight chunks per thread, within [1024, CLAIM_CHUNK] trajectories. */
function claimChunk(n: number, threads: number): number {
  return Math.max(1024, Math.min(CLAIM_CHUNK, Math.ceil(n / (threads * 8))));
}

function inputArrays(batch: Batch): [InputKey, FloatArray][] {
  const list: [InputKey, FloatArray | undefined][] = [
    ['steps', batch.steps],
    ['embeddings', batch.embeddings],
    ['expected', batch.expected],
    ['realized', batch.realized],
    ['policy', batch.policy],
  ];
  return list.filter((e): e is [InputKey, FloatArray] => e[1] !== undefined);
}

function outputArrays(out: MetricArrays): Float64Array[] {
  const list = [out.evb, out.cr, out.ts, out.es, out.pd, out.cci];
  if (out.covariance) list.push(out.covariance);
  return list;
}

/** The caller's output arrays, without a covariance array it did not ask for this time. */
function outputsOf(into: MetricArrays, covariance: boolean): MetricArrays {
  const { evb, cr, ts, es, pd, cci } = into;
  return covariance ? { evb, cr, ts, es, pd, cci, covariance: into.covariance } : { evb, cr, ts, es, pd, cci };
}

function align8(x: number): number {
  return (x + 7) & ~7;
}

function stagedInputList(job: KernelJob): [FloatArray, number][] {
  const list: [FloatArray | null, number][] = [
    [job.steps, job.t * job.m],
    [job.embeddings, job.t * job.d],
    [job.expected, job.t],
    [job.realized, job.t],
    [job.policy, job.t * job.a],
  ];
  return list.filter((e): e is [FloatArray, number] => e[0] !== null);
}

/** Bytes for copies of trajectories [start, end) of every input, each array 8-byte aligned. */
function stagedInputBytes(job: KernelJob, start: number, end: number): number {
  let bytes = 0;
  for (const [a, width] of stagedInputList(job)) bytes += align8((end - start) * width * a.BYTES_PER_ELEMENT);
  return bytes;
}

/** Bytes for a worker's six metric outputs (and covariance matrices of mm entries each). */
function stagedOutputBytes(count: number, mm: number): number {
  return 8 * count * (6 + mm);
}

/** Carves a worker's staged inputs and outputs out of one shared buffer. */
class Stager {
  private offset = 0;
  constructor(private readonly buffer: SharedArrayBuffer) {}

  private take(kind: 'f32' | 'f64', len: number): FloatArray {
    const a = kind === 'f32' ? new Float32Array(this.buffer, this.offset, len) : new Float64Array(this.buffer, this.offset, len);
    this.offset += align8(a.byteLength);
    return a;
  }

  /** The job reading copies of trajectories [start, end) of every input. */
  inputs(job: KernelJob, start: number, end: number): KernelJob {
    const copy = (a: FloatArray | null, width: number): FloatArray | null => {
      if (a === null) return null;
      const dst = this.take(a instanceof Float32Array ? 'f32' : 'f64', (end - start) * width);
      dst.set(a.subarray(start * width, end * width));
      return dst;
    };
    return {
      ...job,
      inputStart: start,
      steps: copy(job.steps, job.t * job.m)!,
      embeddings: copy(job.embeddings, job.t * job.d),
      expected: copy(job.expected, job.t),
      realized: copy(job.realized, job.t),
      policy: copy(job.policy, job.t * job.a),
    };
  }

  /** The job writing trajectories [start, end) into staged outputs. */
  outputs(job: KernelJob, start: number, end: number, mm: number): KernelJob {
    const count = end - start;
    const f64 = (len: number) => this.take('f64', len) as Float64Array;
    return {
      ...job,
      outputStart: start,
      evb: f64(count),
      cr: f64(count),
      ts: f64(count),
      es: f64(count),
      pd: f64(count),
      cci: f64(count),
      covariance: job.covariance ? f64(count * mm) : null,
    };
  }
}

/** Copies a worker's staged outputs into the caller's arrays. */
function copyOutputs(staged: KernelJob, target: KernelJob, start: number, mm: number): void {
  for (const key of ['evb', 'cr', 'ts', 'es', 'pd', 'cci'] as const) target[key].set(staged[key], start);
  if (target.covariance && staged.covariance) target.covariance.set(staged.covariance, start * mm);
}

function makeJob(batch: Batch, config: ResolvedConfig, out: MetricArrays): KernelJob {
  const crWeights = config.crWeights && !config.crWeights.every((w) => w === 1) ? config.crWeights : null;
  return {
    t: batch.t,
    m: batch.m,
    inputStart: 0,
    outputStart: 0,
    steps: batch.steps,
    d: batch.embeddings ? batch.d! : 0,
    embeddings: batch.embeddings ?? null,
    expected: batch.expected && batch.realized ? batch.expected : null,
    realized: batch.expected && batch.realized ? batch.realized : null,
    a: batch.policy ? batch.a! : 0,
    policy: batch.policy ?? null,
    evbMode: config.evbMode === 'trace' ? EVB_TRACE : EVB_MAX_ABS_CHANGE,
    shrink: config.lambda === 'ledoit-wolf' ? SHRINK_LEDOIT_WOLF : config.shrinkTarget === 'identity' ? SHRINK_IDENTITY : SHRINK_SCALED_IDENTITY,
    lambda: typeof config.lambda === 'number' ? config.lambda : 0,
    crWeights,
    confIndex: config.confIndex,
    vmax: config.vmax,
    dmax: effectiveDmax(config, batch.policy ? batch.a : undefined),
    weights: Float64Array.from(config.weights),
    evb: out.evb,
    cr: out.cr,
    ts: out.ts,
    es: out.es,
    pd: out.pd,
    cci: out.cci,
    covariance: out.covariance ?? null,
  };
}
