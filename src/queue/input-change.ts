/**
 * An input rewritten in place while its run is queued. The run directory holds a hard link to the
 * user's file (src/queue/run-dir.ts), so truncating or rewriting that file changes the bytes the
 * workers read: shard boundaries then fall mid-line and a worker reports "invalid JSON" on a line
 * that was fine. The submitter records each input's size and mtime when it plans the shards; the
 * worker compares them before reading and after a failure, and the submitter before it reports a
 * failed shard, so the message names the real cause.
 */
import { stat } from 'node:fs/promises';
import { InputError } from '../core/errors.js';

/** The size and mtime an input had when its shards were planned. */
export interface InputStamp {
  size: number;
  mtimeMs: number;
}

export async function stampOf(file: string): Promise<InputStamp> {
  const st = await stat(file);
  return { size: st.size, mtimeMs: st.mtimeMs };
}

const bytes = (n: number) => `${n.toLocaleString('en-US')} bytes`;
const when = (ms: number) => new Date(ms).toISOString();

/** The input changed after its shards were planned (exit 2: the user's file, not the engine). */
export class InputChangedError extends InputError {
  constructor(name: string, was: InputStamp, now: InputStamp | null, consequence?: string) {
    const change =
      now === null
        ? 'it can no longer be read'
        : [
            now.size !== was.size ? `size ${bytes(was.size)} -> ${bytes(now.size)}` : `size ${bytes(now.size)}`,
            now.mtimeMs !== was.mtimeMs ? `modified ${when(was.mtimeMs)} -> ${when(now.mtimeMs)}` : '',
          ]
            .filter(Boolean)
            .join(', ');
    super(
      `${name} changed while its shards were queued (${change}); the run stopped, nothing was written. ` +
        `Leave the input unchanged until the run ends (write a new file and rename it over the old one instead of rewriting it in place) and run again` +
        (consequence ? ` (what the change caused: ${consequence})` : ''),
    );
  }
}

/** Null when `file` still has `was`'s size and mtime, else the InputChangedError to report. */
export async function inputChange(file: string, name: string, was: InputStamp, consequence?: string): Promise<InputChangedError | null> {
  const now = await stampOf(file).catch(() => null);
  if (now !== null && now.size === was.size && now.mtimeMs === was.mtimeMs) return null;
  return new InputChangedError(name, was, now, consequence);
}
