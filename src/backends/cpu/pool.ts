/**
 * A fixed set of persistent worker threads for the `cpu` backend. Workers start on first use and
 * are reused across calls. A worker is ref'd only while it has a job in flight, so an idle pool
 * never keeps the process alive; dispose() terminates them.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { EcrError } from '../../core/errors.js';
import type { KernelJob } from './kernel.js';
import type { WorkerReply, WorkerRequest } from './worker.js';

interface Pending {
  resolve: () => void;
  reject: (err: Error) => void;
}

interface Slot {
  worker: Worker;
  pending: Map<number, Pending>;
}

/**
 * The compiled worker script beside this module, or null when it does not exist: running from
 * TypeScript sources (e.g. under vitest) there is no worker.js, and a worker thread cannot load
 * the .ts file, so the backend runs single-threaded there.
 */
export function workerScript(): URL | null {
  const url = new URL('./worker.js', import.meta.url);
  return url.protocol === 'file:' && existsSync(fileURLToPath(url)) ? url : null;
}

export class WorkerPool {
  private readonly slots: (Slot | null)[];
  private nextId = 1;
  private disposed = false;

  constructor(
    readonly size: number,
    private readonly script: URL,
  ) {
    this.slots = new Array<Slot | null>(size).fill(null);
  }

  /** Runs the kernel on [start, end) in worker `index` (or on the chunks of it it claims). */
  run(index: number, job: KernelJob, start: number, end: number, claim?: WorkerRequest['claim']): Promise<void> {
    if (this.disposed) return Promise.reject(new EcrError('ECR_CPU_WORKER', 'the cpu backend was disposed'));
    const slot = this.slot(index);
    const id = this.nextId++;
    return new Promise<void>((resolve, reject) => {
      slot.pending.set(id, { resolve, reject });
      slot.worker.ref();
      const req: WorkerRequest = { id, job, start, end, claim };
      slot.worker.postMessage(req);
    });
  }

  private slot(index: number): Slot {
    const existing = this.slots[index];
    if (existing) return existing;
    // Workers inherit the parent's Node options; --input-type (legal only with --eval/stdin) would
    // stop the worker script from loading when the host process was started with `node -e`.
    const execArgv = process.execArgv.filter((a) => !a.startsWith('--input-type'));
    const worker = new Worker(this.script, { execArgv });
    const slot: Slot = { worker, pending: new Map() };
    worker.unref();
    worker.on('message', (reply: WorkerReply) => {
      const p = slot.pending.get(reply.id);
      if (!p) return;
      slot.pending.delete(reply.id);
      if (slot.pending.size === 0) worker.unref();
      if (reply.ok) p.resolve();
      else {
        const err = new EcrError('ECR_CPU_WORKER', `cpu worker failed: ${reply.message}`);
        if (reply.stack) err.stack = reply.stack;
        p.reject(err);
      }
    });
    const fail = (err: Error) => {
      // A dead worker is replaced on the next call; its jobs fail now rather than hang.
      if (this.slots[index] === slot) this.slots[index] = null;
      for (const p of slot.pending.values()) p.reject(err);
      slot.pending.clear();
    };
    worker.on('error', (err) => fail(new EcrError('ECR_CPU_WORKER', `cpu worker crashed: ${err.message}`, { cause: err })));
    worker.on('exit', (code) => fail(new EcrError('ECR_CPU_WORKER', `cpu worker exited with code ${code}`)));
    this.slots[index] = slot;
    return slot;
  }

  /** Starts every worker that is not running yet (each boots on its own thread). */
  startAll(): void {
    if (this.disposed) return;
    for (let i = 0; i < this.size; i++) this.slot(i);
  }

  /** Number of workers started so far. */
  get started(): number {
    return this.slots.filter((s) => s !== null).length;
  }

  async dispose(): Promise<void> {
    this.disposed = true;
    const live = this.slots.filter((s): s is Slot => s !== null);
    this.slots.fill(null);
    await Promise.all(live.map((s) => s.worker.terminate()));
  }
}
