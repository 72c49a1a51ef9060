/**
 * GPU buffers pooled by usage and size class, reused across calls. A buffer goes back to the pool
 * only when the caller knows the GPU is done with it (after the submit that used it completed).
 */
import { GpuError } from '../../../core/errors.js';

/** Size classes: powers of two up to 1 MiB, then steps of 1/16 of the next power of two (<= 12.5% slack). */
export function sizeClass(bytes: number): number {
  const b = Math.max(256, bytes);
  const pow = 2 ** Math.ceil(Math.log2(b));
  if (pow <= 1 << 20) return pow;
  const step = pow / 16;
  return Math.ceil(b / step) * step;
}

export class BufferPool {
  private free = new Map<string, GPUBuffer[]>();
  private pooledBytes = 0;

  constructor(
    private readonly device: GPUDevice,
    private readonly maxPooledBytes = 2 ** 31,
  ) {}

  acquire(bytes: number, usage: number, label: string): GPUBuffer {
    const size = sizeClass(bytes);
    const list = this.free.get(`${usage}:${size}`);
    const reused = list?.pop();
    if (reused) {
      this.pooledBytes -= size;
      reused.label = label;
      return reused;
    }
    try {
      return this.device.createBuffer({ size, usage, label });
    } catch (err) {
      throw new GpuError('out-of-memory', `cannot create ${label} (${size} bytes): ${(err as Error).message}`, { cause: err });
    }
  }

  /** Staging buffers may come back mapped (ready for the next fill); a pending map is not reusable. */
  release(buffer: GPUBuffer): void {
    if (this.pooledBytes + buffer.size > this.maxPooledBytes || buffer.mapState === 'pending') {
      buffer.destroy();
      return;
    }
    const key = `${buffer.usage}:${buffer.size}`;
    let list = this.free.get(key);
    if (!list) this.free.set(key, (list = []));
    list.push(buffer);
    this.pooledBytes += buffer.size;
  }

  clear(): void {
    for (const list of this.free.values()) for (const b of list) b.destroy();
    this.free.clear();
    this.pooledBytes = 0;
  }
}
