/**
 * The temporary files and directories of a run (the output written beside --out, the spill
 * directory), registered so that an interrupted command can remove them: the command line's
 * signal handlers (src/cli/interrupt.ts) call removeTemporaryFiles before the process exits.
 */
import { rmSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { OutputWriteError } from './sink.js';

const temporary = new Set<string>();

/** Removes `p` (a file or directory) if the process is interrupted; returns the undo. */
export function removeOnInterrupt(p: string): () => void {
  temporary.add(p);
  return () => {
    temporary.delete(p);
  };
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

/**
 * Removes every registered path now, synchronously (the process exits right after); returns
 * the ones that could not be removed, with why.
 */
export function removeTemporaryFiles(): Array<{ path: string; error: Error }> {
  const failed: Array<{ path: string; error: Error }> = [];
  for (const p of temporary) {
    try {
      rmSync(p, { recursive: true, force: true });
    } catch (err) {
      failed.push({ path: p, error: err as Error });
    }
  }
  return failed;
}
