/**
 * A WebGpuBackend's insides, for the registry's `auto` choice, tests and benchmarks: its device
 * (tests provoke device loss on it), the plan a batch would run with, and whether a shape fits
 * the device. Kept off the class so that its surface is the backend contract (backend.ts) and
 * the documented extras (describe, mapped steps, computeMetricsF32); not exported by the package.
 */
import type { Batch } from '../../core/batch.js';
import type { ResolvedConfig } from '../../core/config.js';
import { UsageError } from '../../core/errors.js';
import type { ComputeOptions } from '../backend.js';
import type { GpuDevice } from './device/device.js';
import type { Plan } from './plan.js';

export interface WorkShapeQuery {
  t: number;
  m: number;
  d?: number;
  a?: number;
  covariance?: boolean;
}

export interface WebGpuInternals {
  /** The device wrapper (opened if not yet open). */
  device(): Promise<GpuDevice>;
  /** The plan a batch would run with on this device. */
  planFor(batch: Batch, config: ResolvedConfig, options?: ComputeOptions): Promise<Plan>;
  /** Why this device cannot run a batch of this shape (any kernel), or null. */
  unsupported(shape: WorkShapeQuery): Promise<string | null>;
}

const registered = new WeakMap<object, WebGpuInternals>();

/** Called by each WebGpuBackend as it is made. */
export function exposeInternals(backend: object, internals: WebGpuInternals): void {
  registered.set(backend, internals);
}

/** The insides of a WebGpuBackend (from `new WebGpuBackend()` or getBackend('webgpu')). */
export function internalsOf(backend: object): WebGpuInternals {
  const i = registered.get(backend);
  if (!i) throw new UsageError('internalsOf: not a WebGpuBackend');
  return i;
}
