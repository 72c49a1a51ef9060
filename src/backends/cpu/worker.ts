/**
 * Worker-thread entry of the `cpu` backend: runs the kernel on the range it is sent (or on the
 * chunks of it that it claims from a shared counter). Inputs and
 * outputs arrive as SharedArrayBuffer-backed arrays, so results land directly in the caller's
 * output arrays and the reply carries only the job id.
 */
import { parentPort } from 'node:worker_threads';
import { scoreClaimed, scoreRange, type KernelJob } from './kernel.js';

export interface WorkerRequest {
  id: number;
  job: KernelJob;
  start: number;
  end: number;
  /** When set, claim chunks of `chunk` trajectories of [start, end) from this shared counter. */
  claim?: { counter: Int32Array; chunk: number };
}

export type WorkerReply = { id: number; ok: true } | { id: number; ok: false; message: string; stack?: string };

const port = parentPort;
if (!port) throw new Error('src/backends/cpu/worker.js must run in a worker thread');

port.on('message', (req: WorkerRequest) => {
  let reply: WorkerReply;
  try {
    if (req.claim) scoreClaimed(req.job, req.claim.counter, req.start, req.end, req.claim.chunk);
    else scoreRange(req.job, req.start, req.end);
    reply = { id: req.id, ok: true };
  } catch (err) {
    reply = { id: req.id, ok: false, message: err instanceof Error ? err.message : String(err), stack: err instanceof Error ? err.stack : undefined };
  }
  port.postMessage(reply);
});
