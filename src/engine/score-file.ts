/**
 * `ecr score`'s work without its argv: one input (a file, or "-" for stdin) scored into one output
 * (a file, replaced only on success, or stdout), on the streaming JSONL path when both sides are
 * JSONL, else on the columnar path (loaded only then).
 */
import { machine } from '../core/machine.js';
import type { ResolvedConfig } from '../core/config.js';
import type { BackendChoice, ComputeOptions } from '../backends/backend.js';
import type { BackendOptions } from '../backends/options.js';
import { isRegularFile, openInput, type InputInfo } from './io/input.js';
import { DEFAULT_MAX_LINE_BYTES } from './io/lines.js';
import { openOutput, stdoutOutput } from './io/output-file.js';
import { scoreStream } from './jsonl/score-stream.js';
import { DEFAULT_CHUNK_BYTES } from './io/lines.js';
import { checkedJsonlInput } from './jsonl/not-jsonl.js';
import { arrowLayoutOf, formatOf, type DataFormat } from './columnar/format.js';

export interface ScoreFileOptions {
  /** A path, or "-" for stdin. */
  input: string;
  /** inspectInput(input): taken first, so that a missing input is reported before anything else is read. */
  inputInfo: InputInfo;
  inFormat: DataFormat;
  /** The output file (its format by its name, as formatOf says); absent: JSONL on stdout. */
  out?: string;
  config: ResolvedConfig;
  backend: BackendChoice;
  compute: ComputeOptions;
  backendOptions?: BackendOptions;
  windowSize: number;
  /**
   * JSONL parse threads; absent: one per core, and none for an input of at most one chunk (whose
   * parse workers, ~0.1 s to start, would only slow it down). A given count is kept as it is.
   */
  threads?: number;
  /** Longest input line in bytes (default 64 MiB). */
  lineCap?: number;
  /** Bytes per parse chunk (default 1 MiB). */
  chunkBytes?: number;
}

/** Scores the input into the output; returns the number of records (0: nothing but blank lines). */
export async function scoreFile(o: ScoreFileOptions): Promise<number> {
  const lineCap = o.lineCap ?? DEFAULT_MAX_LINE_BYTES;
  const outFormat = o.out !== undefined ? formatOf(o.out) : 'jsonl';
  const { config, backend, compute, backendOptions } = o;
  // Opened (and so checked) before the first input byte is read: a run never fails at the end
  // for an output it could not have written.
  const out = o.out !== undefined ? await openOutput(o.out, o.inputInfo) : stdoutOutput();
  try {
    let scored: number;
    if (o.inFormat === 'jsonl' && outFormat === 'jsonl') {
      const inputBytes = o.inputInfo.stat?.isFile() ? o.inputInfo.stat.size : null;
      const chunkBytes = o.chunkBytes ?? DEFAULT_CHUNK_BYTES;
      const threads = o.threads ?? (inputBytes !== null && inputBytes <= chunkBytes ? 0 : machine().cpus);
      const source = await checkedJsonlInput(o.input, () => openInput(o.input), isRegularFile(o.input, o.inputInfo));
      scored = await scoreStream(
        source,
        { config, backend, compute, backendOptions, windowSize: o.windowSize, lineCap, threads, inputBytes, chunkBytes },
        out.sink,
      );
    } else {
      const { scoreToOutput } = await import('./columnar/score-columnar.js');
      scored = await scoreToOutput(
        { file: o.input, format: o.inFormat, stream: isRegularFile(o.input, o.inputInfo) ? null : openInput(o.input), windowSize: o.windowSize, lineCap },
        { format: outFormat, arrowLayout: arrowLayoutOf(o.out ?? '-'), sink: out.sink },
        { config, backend, compute, backendOptions },
      );
    }
    await out.commit();
    return scored;
  } catch (err) {
    await out.abort();
    throw err;
  }
}
