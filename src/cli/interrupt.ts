/**
 * Cleanup on SIGINT, SIGTERM and SIGHUP: the temporary files a run registered
 * (src/engine/io/temporary.ts) are removed and the process exits 128 + the signal number, as a
 * shell reports a command it interrupted.
 */
import { removeTemporaryFiles } from '../engine/io/temporary.js';

const SIGNAL_CODES = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 } as const;
type Signal = keyof typeof SIGNAL_CODES;

function onSignal(signal: Signal): void {
  for (const { path, error } of removeTemporaryFiles()) process.stderr.write(`ecr: could not remove ${path}: ${error.message}\n`);
  process.exit(SIGNAL_CODES[signal]);
}

/** Installs the handlers for the duration of a command; returns their removal. */
export function cleanUpOnInterrupt(): () => void {
  const handlers = (Object.keys(SIGNAL_CODES) as Signal[]).map((s) => [s, () => onSignal(s)] as const);
  for (const [s, h] of handlers) process.on(s, h);
  return () => {
    for (const [s, h] of handlers) process.off(s, h);
  };
}
