/**
 * The submitter's progress line across all workers: shards done, records per second, ETA and
 * the number of connected workers, rewritten in place on a terminal; nothing on a pipe or a file.
 */
import { startWaitNote } from '../engine/io/wait-note.js';

export interface ProgressState {
  shardsDone: number;
  shards: number;
  recordsDone: number;
  records: number;
  workers: number | null;
}

const fmt = (n: number) => Math.round(n).toLocaleString('en-US');

function formatEta(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  if (seconds < 60) return `${Math.ceil(seconds)} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${Math.ceil(seconds % 60)} s`;
  return `${Math.floor(seconds / 3600)} h ${Math.ceil((seconds % 3600) / 60)} min`;
}

/** The line for `state` after `elapsedMs`; exported for its test. */
export function describeProgress(state: ProgressState, elapsedMs: number): string {
  const seconds = Math.max(elapsedMs / 1000, 1e-3);
  const rate = state.recordsDone / seconds;
  const eta = rate > 0 ? formatEta((state.records - state.recordsDone) / rate) : '?';
  const workers = state.workers === null ? '' : `, ${state.workers} worker${state.workers === 1 ? '' : 's'}`;
  return (
    `ecr score: ${state.shardsDone}/${state.shards} shards, ${fmt(state.recordsDone)}/${fmt(state.records)} records, ` +
    `${fmt(rate)} records/s, ETA ${eta}${workers}`
  );
}

export class QueueProgress {
  readonly state: ProgressState;
  private readonly stop: () => void;
  private readonly started = Date.now();

  constructor(
    shards: number,
    records: number,
    private readonly out: NodeJS.WriteStream = process.stderr,
  ) {
    this.state = { shardsDone: 0, shards, recordsDone: 0, records, workers: null };
    this.stop = startWaitNote(out, out.isTTY === true, (ms) => describeProgress(this.state, ms), { delayMs: 250, intervalMs: 500 });
  }

  shardDone(records: number): void {
    this.state.shardsDone++;
    this.state.recordsDone += records;
  }

  /** Erases the line; on a terminal, leaves a summary of the whole run. */
  finish(ok: boolean): void {
    this.stop();
    if (ok && this.out.isTTY) {
      const s = (Date.now() - this.started) / 1000;
      this.out.write(
        `ecr score: ${fmt(this.state.records)} records in ${this.state.shards} shards, ${s.toFixed(1)} s (${fmt(this.state.records / Math.max(s, 1e-3))} records/s)\n`,
      );
    }
  }
}
