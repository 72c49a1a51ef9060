/**
 * Worker-thread entry of the `cpu` backend: runs the kernel on the range it is sent. Inputs and
 * outputs arrive as SharedArrayBuffer-backed arrays, so results land directly in the caller's
 * output arrays and the reply carries only the job id.
 */
import { parentPort } from 'node:worker_threads';
import { scoreRange, type KernelJob } from './kernel.js';

export interface WorkerRequest {
  id: number;
  job: KernelJob;
  start: number;
  end: number;
}

export type WorkerReply = { id: number; ok: true } | { id: number; ok: false; message: string; stack?: string };

const port = parentPort;
if (!port) throw new Error('src/backends/cpu/worker.js must run in a worker thread');

port.on('message', (req: WorkerRequest) => {
  let reply: WorkerReply;
  try {
    scoreRange(req.job, req.start, req.end);
    reply = { id: req.id, ok: true };
  } catch (err) {
    reply = { id: req.id, ok: false, message: err instanceof Error ? err.message : String(err), stack: err instanceof Error ? err.stack : undefined };
  }
  port.postMessage(reply);
});
