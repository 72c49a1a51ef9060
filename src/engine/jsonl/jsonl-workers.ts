/**
 * The threads `ecr score` parses JSONL on: a fixed set of workers, each taking whole chunks of
 * lines (io/lines.ts) and, once a window is scored, the formatting of its result lines
 * (number formatting costs about as much as parsing). Results come back as promises; the caller
 * awaits them in input order. With one thread, or where the compiled worker script is absent
 * (running from .ts sources), the same functions run on the calling thread.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { EcrError } from '../../core/errors.js';
import type { ResolvedConfig } from '../../core/config.js';
import { formatWindow, type WindowResults } from '../../core/result-line.js';
import { parseChunk, type ParsedChunk } from './jsonl-parse.js';
import type { LineChunk } from '../io/lines.js';

export type FormatResult = ReturnType<typeof formatWindow>;

export interface WorkerData {
  calibration: ResolvedConfig['calibration'];
}

export type WorkerTask =
  { kind: 'parse'; id: number; bytes: Uint8Array; firstLine: number; lines: number } | { kind: 'format'; id: number; results: WindowResults };

export type WorkerReply = { id: number; ok: true; value: ParsedChunk | FormatResult } | { id: number; ok: false; message: string; stack?: string };

interface Slot {
  worker: Worker;
  pending: Map<number, { resolve: (v: never) => void; reject: (e: Error) => void }>;
}

function workerScript(): URL | null {
  const url = new URL('./jsonl-worker.js', import.meta.url);
  return url.protocol === 'file:' && existsSync(fileURLToPath(url)) ? url : null;
}

export class JsonlWorkers {
  private readonly slots: Slot[] = [];
  private nextId = 1;
  private failure: Error | null = null;

  /** `threads` parse workers (0: everything on the calling thread). */
  constructor(
    threads: number,
    private readonly config: ResolvedConfig,
  ) {
    const script = threads > 0 ? workerScript() : null;
    if (script === null) return;
    // As in the cpu backend's pool: --input-type is legal only with --eval and would stop the script loading.
    const execArgv = process.execArgv.filter((a) => !a.startsWith('--input-type'));
    const workerData: WorkerData = { calibration: config.calibration };
    for (let i = 0; i < threads; i++) {
      const worker = new Worker(script, { execArgv, workerData });
      const slot: Slot = { worker, pending: new Map() };
      worker.on('message', (reply: WorkerReply) => {
        const p = slot.pending.get(reply.id);
        if (!p) return;
        slot.pending.delete(reply.id);
        if (reply.ok) p.resolve(reply.value as never);
        else {
          const err = new EcrError('ECR_JSONL_WORKER', `JSONL parse worker failed: ${reply.message}`);
          if (reply.stack) err.stack = reply.stack;
          p.reject(err);
        }
      });
      const fail = (err: Error) => {
        this.failure ??= err;
        for (const p of slot.pending.values()) p.reject(err);
        slot.pending.clear();
      };
      worker.on('error', (err) => fail(new EcrError('ECR_JSONL_WORKER', `JSONL parse worker crashed: ${err.message}`, { cause: err })));
      worker.on('exit', (code) => fail(new EcrError('ECR_JSONL_WORKER', `JSONL parse worker exited with code ${code}`)));
      this.slots.push(slot);
    }
  }

  /** True once a worker crashed or exited: every later call fails, so a long-lived owner makes a new pool. */
  get broken(): boolean {
    return this.failure !== null;
  }

  /** Worker threads in use (0: the calling thread does the work). */
  get threads(): number {
    return this.slots.length;
  }

  parse(chunk: LineChunk): Promise<ParsedChunk> {
    if (this.slots.length === 0) return Promise.resolve().then(() => parseChunk(chunk.bytes, chunk.firstLine, chunk.lines));
    return this.send({ kind: 'parse', id: 0, bytes: chunk.bytes, firstLine: chunk.firstLine, lines: chunk.lines }, [chunk.bytes.buffer as ArrayBuffer]);
  }

  format(results: WindowResults): Promise<FormatResult> {
    if (this.slots.length === 0) return Promise.resolve().then(() => formatWindow(results, this.config));
    const m = results.metrics;
    const transfer = [m.evb, m.cr, m.ts, m.es, m.pd, m.cci, results.admissible, results.headEnds].map((a) => a.buffer as ArrayBuffer);
    return this.send({ kind: 'format', id: 0, results }, transfer);
  }

  private send<T>(task: WorkerTask, transfer: ArrayBuffer[]): Promise<T> {
    if (this.failure) return Promise.reject(this.failure);
    // The least busy worker: chunks differ in cost (long lines, errors), formatting comes in between.
    let slot = this.slots[0];
    for (const s of this.slots) if (s.pending.size < slot.pending.size) slot = s;
    task.id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      slot.pending.set(task.id, { resolve, reject });
      slot.worker.postMessage(task, transfer);
    });
  }

  async close(): Promise<void> {
    const slots = this.slots.splice(0);
    for (const s of slots) s.worker.removeAllListeners('exit');
    await Promise.all(slots.map((s) => s.worker.terminate()));
  }
}
