/**
 * Cleanup on SIGINT, SIGTERM and SIGHUP: the temporary files a run creates (the output being
 * written beside --out, the spill directory) are removed and the process exits 128 + the signal
 * number, as a shell reports a command it interrupted. The removal is synchronous because the
 * process exits right after it, wherever the scoring happened to be.
 */
import { rmSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { OutputWriteError } from './io.js';

const SIGNAL_CODES = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 } as const;
type Signal = keyof typeof SIGNAL_CODES;

const temporary = new Set<string>();

/** Removes `p` (a file or directory) if the process is interrupted; returns the undo. */
export function removeOnInterrupt(p: string): () => void {
  temporary.add(p);
  return () => { temporary.delete(p); };
}

/** A fresh directory for a run's temporary results (in TMPDIR), removed if the run is interrupted. */
export async function temporaryDirectory(): Promise<{ dir: string; forget: () => void }> {
  let dir: string;
  try {
    dir = await mkdtemp(path.join(os.tmpdir(), 'ecr-score-'));
  } catch (err) {
    throw new OutputWriteError(`a temporary directory in ${os.tmpdir()} (set TMPDIR)`, err);
  }
  return { dir, forget: removeOnInterrupt(dir) };
}

function onSignal(signal: Signal): void {
  for (const p of temporary) {
    try {
      rmSync(p, { recursive: true, force: true });
    } catch (err) {
      process.stderr.write(`ecr: could not remove ${p}: ${(err as Error).message}\n`);
    }
  }
  process.exit(SIGNAL_CODES[signal]);
}

/** Installs the handlers for the duration of a command; returns their removal. */
export function cleanUpOnInterrupt(): () => void {
  const handlers = (Object.keys(SIGNAL_CODES) as Signal[]).map((s) => [s, () => onSignal(s)] as const);
  for (const [s, h] of handlers) process.on(s, h);
  return () => { for (const [s, h] of handlers) process.off(s, h); };
}
