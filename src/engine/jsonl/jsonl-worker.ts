/**
 * Worker-thread entry of the JSONL parse pool (jsonl-workers.ts): parses chunks of lines into
 * typed arrays (transferred back) and formats windows of scores into result text.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { formatWindow } from '../../core/result-line.js';
import { parseChunk, transferablesOf } from './jsonl-parse.js';
import type { WorkerData, WorkerReply, WorkerTask } from './jsonl-workers.js';

const port = parentPort!;
const { calibration } = workerData as WorkerData;

port.on('message', (task: WorkerTask) => {
  let reply: WorkerReply;
  let transfer: ArrayBuffer[] = [];
  try {
    if (task.kind === 'parse') {
      const chunk = parseChunk(task.bytes, task.firstLine, task.lines);
      reply = { id: task.id, ok: true, value: chunk };
      transfer = transferablesOf(chunk);
    } else {
      reply = { id: task.id, ok: true, value: formatWindow(task.results, { calibration }) };
    }
  } catch (err) {
    reply = { id: task.id, ok: false, message: (err as Error).message ?? String(err), stack: (err as Error).stack };
  }
  port.postMessage(reply, transfer);
});
