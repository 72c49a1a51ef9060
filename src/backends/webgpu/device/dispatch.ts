/**
 * Chunk and dispatch arithmetic, free of any GPU object so it can be unit-tested anywhere
 * (test/gpu-arith.test.ts). Failures are typed: a batch that cannot fit the device's limits is
 * BackendUnavailableError (the backend cannot run it; another can), impossible arithmetic (a
 * planner bug) is GpuError('internal'); never a bare RangeError.
 */
import { BackendUnavailableError, GpuError } from '../../../core/errors.js';

/** A dispatch of `total` workgroups laid out as x * y with x, y <= maxPerDimension. */
export interface Dispatch2D {
  x: number;
  y: number;
}

/**
 * Refolds a 1D dispatch that exceeds maxComputeWorkgroupsPerDimension into 2D. Kernels compute
 * the flat index as id.x + id.y * x and guard it against `total` (x * y may exceed it).
 */
export function refoldDispatch(total: number, maxPerDimension: number): Dispatch2D {
  if (!Number.isSafeInteger(total) || total < 0) throw new GpuError('internal', `workgroup count must be a non-negative integer, got ${total}`);
  if (!Number.isSafeInteger(maxPerDimension) || maxPerDimension < 1)
    throw new GpuError('internal', `maxPerDimension must be a positive integer, got ${maxPerDimension}`);
  if (total <= maxPerDimension) return { x: total, y: total === 0 ? 0 : 1 };
  const y = Math.ceil(total / maxPerDimension);
  if (y > maxPerDimension) throw new GpuError('internal', `${total} workgroups exceed the device's ${maxPerDimension}^2 per dispatch`);
  return { x: Math.ceil(total / y), y };
}

/** Bytes per trajectory of one buffer that is split along the batch. */
export interface ChunkedBinding {
  name: string;
  bytesPerTrajectory: number;
}

export interface ChunkLimits {
  /** Largest binding (maxStorageBufferBindingSize). */
  maxBindingBytes: number;
  /** Largest buffer (maxBufferSize). */
  maxBufferBytes: number;
  /** Trajectories per workgroup of the widest kernel; with maxWorkgroupsPerDimension bounds a chunk's dispatch. */
  trajectoriesPerWorkgroup: number;
  maxWorkgroupsPerDimension: number;
  /** Chunk starts are multiples of this many trajectories (keeps packed unorm16 pairs and binding offsets aligned). */
  alignTrajectories: number;
  /** Soft target for the bytes of all bindings of one chunk (streaming granularity); 0 = no target. */
  targetChunkBytes: number;
}

export interface Chunk {
  start: number;
  count: number;
}

/** Largest trajectory count per chunk that keeps every binding and dispatch within the limits. */
export function maxChunkTrajectories(bindings: readonly ChunkedBinding[], limits: ChunkLimits): number {
  let cap = Number.MAX_SAFE_INTEGER;
  let total = 0;
  for (const b of bindings) {
    if (b.bytesPerTrajectory <= 0) continue;
    total += b.bytesPerTrajectory;
    cap = Math.min(cap, Math.floor(Math.min(limits.maxBindingBytes, limits.maxBufferBytes) / b.bytesPerTrajectory));
  }
  // All of a chunk's inputs share one staging buffer and one device buffer (plus per-binding padding).
  if (total > 0) cap = Math.min(cap, Math.floor((limits.maxBufferBytes - 4096 * bindings.length) / total));
  if (limits.targetChunkBytes > 0 && total > 0) cap = Math.min(cap, Math.max(1, Math.floor(limits.targetChunkBytes / total)));
  cap = Math.min(cap, limits.trajectoriesPerWorkgroup * limits.maxWorkgroupsPerDimension * limits.maxWorkgroupsPerDimension);
  const aligned = cap - (cap % limits.alignTrajectories);
  if (aligned < limits.alignTrajectories) {
    const widest = bindings.reduce((a, b) => (b.bytesPerTrajectory > a.bytesPerTrajectory ? b : a));
    throw new BackendUnavailableError(
      'webgpu',
      `this batch does not fit the device: one chunk of ${limits.alignTrajectories} trajectories needs ${widest.bytesPerTrajectory * limits.alignTrajectories} bytes of "${widest.name}", over the binding limit ${limits.maxBindingBytes}`,
    );
  }
  return aligned;
}

/** Splits n trajectories into consecutive chunks of at most `perChunk` (the last may be shorter). */
export function planChunks(n: number, perChunk: number): Chunk[] {
  if (!Number.isSafeInteger(perChunk) || perChunk < 1) throw new GpuError('internal', `chunk size must be a positive integer, got ${perChunk}`);
  const chunks: Chunk[] = [];
  for (let start = 0; start < n; start += perChunk) chunks.push({ start, count: Math.min(perChunk, n - start) });
  return chunks;
}

/**
 * A host typed array of `length` elements for `what`; a length the engine cannot allocate (over
 * the typed-array limit, or out of memory) is GpuError('out-of-memory') naming it, not a RangeError.
 */
export function hostArray<A>(Ctor: new (length: number) => A, length: number, what: string): A {
  try {
    return new Ctor(length);
  } catch (err) {
    if (err instanceof RangeError)
      throw new GpuError('out-of-memory', `cannot allocate ${what} (${length} values on the host): ${err.message}`, { cause: err });
    throw err;
  }
}

/** Rounds up to a multiple of `align` (a power of two or any positive integer). */
export function alignUp(x: number, align: number): number {
  return Math.ceil(x / align) * align;
}
