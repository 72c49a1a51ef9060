/**
 * Test hook: `ecr score`'s work (engine/score-file.ts) in this process, with a line cap and parse
 * chunks smaller than the CLI's fixed 64 MiB and 1 MiB, so that a test crosses overlong lines or
 * many chunk boundaries without writing 64 MiB. The CLI itself has no such switch (it used to read
 * ECR_MAX_LINE_BYTES and ECR_JSONL_CHUNK_BYTES): a test calls this instead of spawning `ecr`.
 * Parse worker threads start only from compiled code (their script is dist/engine/jsonl/
 * jsonl-worker.js), so a test of parallel parsing imports this module from dist/.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { toResolvedConfig } from '../core/config.js';
import type { BackendChoice } from '../backends/backend.js';
import { disposeBackends } from '../backends/registry.js';
import { inspectInput } from '../engine/io/input.js';
import { scoreFile } from '../engine/score-file.js';

export interface LimitedScoreOptions {
  /** The JSONL input file. */
  input: string;
  /** The configuration, as `ecr score --config` would read it (default: the defaults). */
  config?: unknown;
  backend?: BackendChoice;
  /** Records per window (default 8192, as `ecr score --window`). */
  windowSize?: number;
  /** Parse threads (default as `ecr score` without --threads). */
  threads?: number;
  /** Longest line in bytes (default 64 MiB). */
  lineCap?: number;
  /** Bytes per parse chunk (default 1 MiB). */
  chunkBytes?: number;
}

/** Scores `input` as `ecr score INPUT` would; returns the result lines (throws what `ecr score` reports). */
export async function scoreWithLimits(o: LimitedScoreOptions): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ecr-score-limits-'));
  try {
    const out = path.join(dir, 'out.jsonl');
    await scoreFile({
      input: o.input,
      inputInfo: await inspectInput(o.input),
      inFormat: 'jsonl',
      out,
      config: toResolvedConfig(o.config ?? {}),
      backend: o.backend ?? 'auto',
      compute: {},
      windowSize: o.windowSize ?? 8192,
      threads: o.threads,
      lineCap: o.lineCap,
      chunkBytes: o.chunkBytes,
    });
    return await readFile(out, 'utf8');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Releases the backends this module's scoring started (their worker threads keep a process alive). */
export async function disposeScoring(): Promise<void> {
  await disposeBackends();
}
