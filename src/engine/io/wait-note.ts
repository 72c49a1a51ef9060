/**
 * A one-line note that a command is still waiting (for an LLM server), rewritten in place on a
 * terminal and erased when the wait ends. Nothing is written when the stream is not a terminal,
 * so pipes and files never see control characters.
 */

export interface WaitNoteOptions {
  /** Quiet period before the first note, so quick runs print nothing (default 1000 ms). */
  delayMs?: number;
  /** How often the note is rewritten (default 1000 ms). */
  intervalMs?: number;
}

/** Clears the terminal line the cursor is on. */
const CLEAR_LINE = '\r\x1b[2K';

/**
 * Starts the note; `describe(elapsedMs)` gives its text at each rewrite. Returns `stop`, which
 * erases the note (if one was written) and is safe to call more than once.
 */
export function startWaitNote(
  out: { write(chunk: string): unknown },
  isTTY: boolean,
  describe: (elapsedMs: number) => string,
  options: WaitNoteOptions = {},
): () => void {
  if (!isTTY) return () => {};
  const { delayMs = 1000, intervalMs = 1000 } = options;
  const start = Date.now();
  let written = false;
  let interval: ReturnType<typeof setInterval> | undefined;
  const render = () => {
    out.write(CLEAR_LINE + describe(Date.now() - start));
    written = true;
  };
  // Unref'd: a note must never keep the process alive after the work is done.
  const first = setTimeout(() => {
    render();
    interval = setInterval(render, intervalMs);
    interval.unref?.();
  }, delayMs);
  first.unref?.();
  let stopped = false;
  return () => {
    if (stopped) return;
    stopped = true;
    clearTimeout(first);
    if (interval) clearInterval(interval);
    if (written) out.write(CLEAR_LINE);
  };
}
