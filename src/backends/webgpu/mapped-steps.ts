/**
 * E held in mapped MAP_WRITE | COPY_SRC buffers that the caller fills in place (the WebGPU
 * analogue of pinned host memory): at score time E is copied GPU-side with copyBufferToBuffer,
 * with no host memcpy. A compute call unmaps the buffers (which detaches every view handed out),
 * and maps them again before it returns; mapAsync(WRITE) shows the buffers' current contents, so
 * what the caller wrote is still there afterwards.
 */
import type { Batch } from '../../core/batch.js';
import { GpuError, UsageError } from '../../core/errors.js';
import type { GpuDevice } from './device/device.js';
import { BufferUsage, MapMode } from './device/usage.js';
import { CHUNK_ALIGN } from './plan.js';
import type { MappedStepsSource } from './stream.js';

/** One mapped buffer's share of the batch: trajectories [start, start + count), E in batch.steps' order. */
export interface MappedStepsPart {
  start: number;
  count: number;
  /** n*T*m floats of this part; valid only until the next compute call starts (the buffer is then unmapped). */
  steps: Float32Array;
}

export type MappedStepsState = 'ready' | 'in-use' | 'failed' | 'disposed';

export interface MappedStepsOptions {
  /** Trajectories per buffer (rounded down to a multiple of 256); default: as many as maxBufferSize allows (at most 2 GiB). */
  trajectoriesPerBuffer?: number;
}

/** Cap per buffer below maxBufferSize: one JS ArrayBuffer view per buffer. */
const MAX_PART_BYTES = 2 ** 31;

export class MappedSteps {
  private state_: MappedStepsState = 'ready';
  private failure: unknown = null;
  private views: Float32Array[];

  private constructor(
    private readonly owner: GpuDevice,
    readonly n: number,
    readonly t: number,
    readonly m: number,
    private readonly buffers: { start: number; count: number; buffer: GPUBuffer }[],
  ) {
    this.views = buffers.map((b) => new Float32Array(b.buffer.getMappedRange(0, b.count * t * m * 4)));
  }

  /** Creates the buffers mapped (mappedAtCreation: zero-filled). */
  static allocate(owner: GpuDevice, n: number, t: number, m: number, options: MappedStepsOptions = {}): MappedSteps {
    for (const [name, v] of [
      ['n', n],
      ['t', t],
      ['m', m],
    ] as const) {
      if (!Number.isInteger(v) || v < 1) throw new UsageError(`allocateMappedSteps: ${name} must be a positive integer, got ${v}`);
    }
    const bytesPerTrajectory = t * m * 4;
    const byLimit = Math.floor(Math.min(owner.limits.maxBufferSize, MAX_PART_BYTES) / bytesPerTrajectory);
    let perBuffer = Math.min(byLimit, options.trajectoriesPerBuffer ?? byLimit);
    perBuffer -= perBuffer % CHUNK_ALIGN;
    if (perBuffer < CHUNK_ALIGN) {
      throw new UsageError(
        `allocateMappedSteps: a buffer must hold at least ${CHUNK_ALIGN} trajectories (trajectoriesPerBuffer ${options.trajectoriesPerBuffer ?? byLimit}, maxBufferSize ${owner.limits.maxBufferSize})`,
      );
    }
    const buffers: { start: number; count: number; buffer: GPUBuffer }[] = [];
    try {
      for (let start = 0; start < n; start += perBuffer) {
        const count = Math.min(perBuffer, n - start);
        const label = `ecr.webgpu.mappedSteps[${start}]`;
        let buffer: GPUBuffer;
        try {
          buffer = owner.device.createBuffer({
            size: count * bytesPerTrajectory,
            usage: BufferUsage.MAP_WRITE | BufferUsage.COPY_SRC,
            mappedAtCreation: true,
            label,
          });
        } catch (err) {
          throw new GpuError('out-of-memory', `cannot create ${label} (${count * bytesPerTrajectory} bytes): ${(err as Error).message}`, { cause: err });
        }
        buffers.push({ start, count, buffer });
      }
      owner.check();
      return new MappedSteps(owner, n, t, m, buffers);
    } catch (err) {
      for (const b of buffers) b.buffer.destroy();
      throw err;
    }
  }

  get state(): MappedStepsState {
    return this.state_;
  }

  /**
   * The whole batch's E (n*T*m floats) when it fits one buffer. Read it again after every compute
   * call: the call unmaps the buffer, which detaches the previous Float32Array.
   */
  get steps(): Float32Array {
    this.assertReady('steps');
    if (this.views.length !== 1) throw new UsageError(`mapped steps span ${this.views.length} buffers: fill them through .parts`);
    return this.views[0];
  }

  /** Every buffer's trajectory range and current view (same rule as `steps`). */
  get parts(): readonly MappedStepsPart[] {
    this.assertReady('parts');
    return this.buffers.map((b, i) => ({ start: b.start, count: b.count, steps: this.views[i] }));
  }

  /** Destroys the buffers. Not while a compute call uses them. */
  dispose(): void {
    if (this.state_ === 'in-use') throw new UsageError('mapped steps cannot be disposed while a compute call uses them: await the call first');
    this.destroyBuffers();
  }

  /** The backend's dispose: the device goes away, and these buffers with it. */
  destroyBuffers(): void {
    if (this.state_ === 'disposed') return;
    this.state_ = 'disposed';
    this.views = [];
    for (const b of this.buffers) b.buffer.destroy();
  }

  /**
   * Checks the batch against these buffers and hands them to one compute call: unmaps them
   * (synchronously, so a second call with the same object is rejected at once) and returns what
   * the runner copies from. `release` must follow.
   */
  claim(owner: GpuDevice | null, batch: Batch): MappedStepsSource {
    this.assertReady('computeMetrics');
    if (owner !== this.owner)
      throw new UsageError('mapped steps belong to another device (allocated before a device loss or by another backend): allocate them again');
    if (batch.n !== this.n || batch.t !== this.t || batch.m !== this.m) {
      throw new UsageError(`mapped steps hold n=${this.n}, T=${this.t}, m=${this.m}; the batch has n=${batch.n}, T=${batch.t}, m=${batch.m}`);
    }
    const s = batch.steps as ArrayBufferView | undefined;
    if (s && isDetached(s.buffer)) {
      throw new UsageError(
        'batch.steps is a view detached by an earlier compute call: mapped steps must be read again (mapped.steps) after every call; a Float32Array held across a call no longer reaches the buffer',
      );
    }
    if (s && (s as Float32Array).length !== 0 && !this.views.includes(s as Float32Array)) {
      throw new UsageError('with mappedSteps, batch.steps must be mapped.steps (current view) or an empty array: E is read from the mapped buffers only');
    }
    for (const b of this.buffers) b.buffer.unmap();
    this.views = [];
    this.state_ = 'in-use';
    return { parts: this.buffers.map(({ start, count, buffer }) => ({ start, count, buffer })) };
  }

  /** Maps the buffers again (contents preserved). A failure leaves the object unusable and is thrown. */
  async release(): Promise<void> {
    if (this.state_ !== 'in-use') return;
    try {
      await Promise.all(this.buffers.map((b) => b.buffer.mapAsync(MapMode.WRITE)));
      this.views = this.buffers.map((b) => new Float32Array(b.buffer.getMappedRange(0, b.count * this.t * this.m * 4)));
      this.state_ = 'ready';
    } catch (err) {
      this.failure = err;
      this.state_ = 'failed';
      throw this.owner.rejection('mapped steps re-map', err);
    }
  }

  private assertReady(what: string): void {
    if (this.state_ === 'ready') return;
    if (this.state_ === 'in-use')
      throw new UsageError(
        `mapped steps: ${what} is unavailable while a compute call uses the buffers (they are unmapped); await the call, then read .steps again`,
      );
    if (this.state_ === 'disposed') throw new UsageError(`mapped steps: ${what} after dispose()`);
    throw new GpuError('internal', `mapped steps could not be mapped again after a compute call: ${(this.failure as Error)?.message ?? this.failure}`, {
      cause: this.failure,
    });
  }
}

/** Node 20 has no ArrayBuffer.prototype.detached: constructing a view over a detached buffer throws. */
function isDetached(buffer: ArrayBufferLike): boolean {
  if (buffer.byteLength !== 0) return false;
  try {
    new Uint8Array(buffer);
    return false;
  } catch {
    return true;
  }
}
