/**
 * One WebGPU device and its failure reporting: device loss and uncaptured errors are recorded
 * and turned into GpuError at the next check, and `scoped` wraps work in error scopes so a
 * validation error or out-of-memory becomes a thrown GpuError rather than a wrong answer.
 */
import { GpuError } from '../../../core/errors.js';
import type { AdapterKind, OpenedDevice } from './adapter.js';

export interface DeviceLimits {
  maxStorageBufferBindingSize: number;
  maxBufferSize: number;
  maxComputeWorkgroupsPerDimension: number;
  maxComputeWorkgroupStorageSize: number;
  maxComputeWorkgroupSizeX: number;
  minStorageBufferOffsetAlignment: number;
}

export class GpuDevice {
  readonly device: GPUDevice;
  readonly kind: AdapterKind;
  readonly description: string;
  readonly timestamps: boolean;
  readonly subgroups: boolean;
  readonly subgroupMinSize: number;
  readonly robustnessDisabled: boolean;
  /** Which adapter and why, in one line (OpenedDevice.choice). */
  readonly choice: string;
  readonly limits: DeviceLimits;
  // Held for the device's lifetime: a collected instance crashes Dawn (WEBGPU-NOTES.md).
  private readonly gpu: GPU;
  private readonly adapter: GPUAdapter;
  private failure: GpuError | null = null;
  private destroyed = false;
  private queueTail: Promise<unknown> = Promise.resolve();

  constructor(opened: OpenedDevice) {
    this.gpu = opened.gpu;
    this.adapter = opened.adapter;
    this.device = opened.device;
    this.kind = opened.kind;
    this.description = opened.description;
    this.timestamps = opened.timestamps;
    this.subgroups = opened.subgroups;
    this.subgroupMinSize = opened.subgroupMinSize;
    this.robustnessDisabled = opened.robustnessDisabled;
    this.choice = opened.choice;
    const l = opened.device.limits;
    this.limits = {
      maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
      maxBufferSize: l.maxBufferSize,
      maxComputeWorkgroupsPerDimension: l.maxComputeWorkgroupsPerDimension,
      maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
      maxComputeWorkgroupSizeX: l.maxComputeWorkgroupSizeX,
      minStorageBufferOffsetAlignment: l.minStorageBufferOffsetAlignment,
    };
    void this.device.lost.then((info) => {
      if (!this.destroyed) this.failure ??= new GpuError('device-lost', `${info.reason}: ${info.message}`);
    });
    this.device.addEventListener('uncapturederror', (ev) => {
      const err = ev.error;
      this.failure ??= toGpuError(err);
    });
  }

  /** Throws the recorded loss or uncaptured error, if any. */
  check(): void {
    if (this.destroyed) throw new GpuError('device-lost', 'the device was disposed');
    if (this.failure) throw this.failure;
  }

  /** Marks the device failed (e.g. a mapAsync rejected) so later calls fail fast. */
  fail(err: GpuError): GpuError {
    this.failure ??= err;
    return this.failure;
  }

  /** Runs `fn` inside validation/out-of-memory/internal error scopes; any captured error is thrown as GpuError. */
  async scoped<T>(fn: () => T): Promise<T> {
    this.check();
    this.device.pushErrorScope('internal');
    this.device.pushErrorScope('out-of-memory');
    this.device.pushErrorScope('validation');
    let result: T | undefined;
    // Boxed, so that a falsy value thrown by `fn` still counts as thrown.
    let thrown: { error: unknown } | null = null;
    try {
      result = fn();
    } catch (err) {
      thrown = { error: err };
    }
    // Scopes pop innermost first: validation, out-of-memory, internal. A captured error wins over one thrown by `fn`.
    const errors = await Promise.all([this.device.popErrorScope(), this.device.popErrorScope(), this.device.popErrorScope()]);
    const kinds = ['validation', 'out-of-memory', 'internal'] as const;
    const at = errors.findIndex((e) => e !== null);
    if (at >= 0) throw this.fail(new GpuError(kinds[at], errors[at]!.message));
    if (thrown) throw thrown.error;
    return result as T;
  }

  /**
   * Runs `fn` after every earlier `exclusive` call on this device has settled. Error scopes are a
   * per-device stack, so work that holds a scope open across awaits must not interleave.
   */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queueTail.then(fn, fn);
    this.queueTail = run.catch(() => undefined);
    return run;
  }

  /**
   * Like `scoped`, for asynchronous work (call it inside `exclusive`): one set of error scopes
   * around everything `fn` submits, popped once at the end instead of once per submit. An error
   * thrown by `fn` wins over a captured one only when nothing was captured.
   */
  async scopedAsync<T>(fn: () => Promise<T>): Promise<T> {
    this.check();
    this.device.pushErrorScope('internal');
    this.device.pushErrorScope('out-of-memory');
    this.device.pushErrorScope('validation');
    let result: T | undefined;
    // Boxed, so that a falsy value thrown by `fn` still counts as thrown.
    let thrown: { error: unknown } | null = null;
    try {
      result = await fn();
    } catch (err) {
      thrown = { error: err };
    }
    let captured: GpuError | null = null;
    try {
      const errors = await Promise.all([this.device.popErrorScope(), this.device.popErrorScope(), this.device.popErrorScope()]);
      const kinds = ['validation', 'out-of-memory', 'internal'] as const;
      const at = errors.findIndex((e) => e !== null);
      if (at >= 0) captured = this.fail(new GpuError(kinds[at], errors[at]!.message));
    } catch (err) {
      // A lost device may reject the pops; the loss is reported through `thrown` or check().
      if (!thrown) thrown = { error: this.rejection('error scope', err) };
    }
    if (captured) throw captured;
    if (thrown) throw thrown.error;
    return result as T;
  }

  /** Converts a rejected GPU promise (mapAsync, onSubmittedWorkDone) into a GpuError. */
  rejection(what: string, err: unknown): GpuError {
    if (this.failure) return this.failure;
    if (this.destroyed) return new GpuError('device-lost', `${what}: the device was disposed`, { cause: err });
    return this.fail(new GpuError('mapping', `${what}: ${(err as Error)?.message ?? String(err)}`, { cause: err }));
  }

  get isDestroyed(): boolean {
    return this.destroyed;
  }

  /** False once the device was lost, disposed, or reported an uncaptured error. */
  get healthy(): boolean {
    return !this.destroyed && this.failure === null;
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.device.destroy();
    void this.gpu;
    void this.adapter;
  }
}

export function toGpuError(err: GPUError): GpuError {
  const name = err.constructor?.name ?? '';
  const kind = name === 'GPUOutOfMemoryError' ? 'out-of-memory' : name === 'GPUValidationError' ? 'validation' : 'internal';
  return new GpuError(kind, err.message);
}
