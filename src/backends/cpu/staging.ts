/**
 * Reusable shared-memory staging for inputs that arrive in ordinary memory. Copying a worker's
 * share into shared memory is cheap once the pages exist, but first-touching freshly allocated
 * pages costs more than the copy itself (measured: about 4x on the 2-core dev VM). So each worker
 * slot keeps one SharedArrayBuffer and reuses it across calls. Buffers above `retainLimitBytes`
 * are allocated per call and dropped, so a single huge batch does not pin its size in memory;
 * dispose() releases everything.
 */
export class StagingArea {
  private readonly buffers: (SharedArrayBuffer | null)[] = [];
  private readonly busy: boolean[] = [];

  constructor(readonly retainLimitBytes: number) {}

  /**
   * A shared buffer of at least `bytes` for worker slot `slot`, or a fresh one when the slot's
   * buffer is in use by a concurrent call (reusing it then would race) or too big to retain.
   */
  acquire(slot: number, bytes: number): { buffer: SharedArrayBuffer; release: () => void } {
    if (bytes > this.retainLimitBytes || this.busy[slot]) return { buffer: new SharedArrayBuffer(bytes), release: () => {} };
    let buf = this.buffers[slot] ?? null;
    if (buf === null || buf.byteLength < bytes) {
      buf = new SharedArrayBuffer(bytes);
      this.buffers[slot] = buf;
    }
    this.busy[slot] = true;
    return {
      buffer: buf,
      release: () => {
        this.busy[slot] = false;
      },
    };
  }

  /** Bytes currently retained. */
  get retainedBytes(): number {
    return this.buffers.reduce((s, b) => s + (b?.byteLength ?? 0), 0);
  }

  clear(): void {
    this.buffers.length = 0;
    this.busy.length = 0;
  }
}
