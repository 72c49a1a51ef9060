/** Small I/O helpers shared by the subcommands. */
import { availableParallelism } from 'node:os';
import { createReadStream, fstatSync, promises as fs, type Stats } from 'node:fs';
import type { Readable, Writable } from 'node:stream';
import type { ParseArgsConfig } from 'node:util';
import { parseArgs } from './parse-args.js';
import { ConfigError, EcrError, UsageError } from '../errors.js';
import { plural } from '../plural.js';

/** The longest input line accepted (bytes, without the line break), as the README documents. */
export const DEFAULT_MAX_LINE_BYTES = 64 * 1024 * 1024;

/** A line longer than the cap: it was skipped while reading, never held whole in memory. */
export class OverlongLine {
  constructor(readonly bytes: number) {}
}

/**
 * Lines of a byte stream (LF or CRLF endings; a last line without a newline counts; a UTF-8 BOM
 * before the first line is dropped). Splits bytes, not decoded text, so a line's length is known
 * while it arrives: one longer than `maxLineBytes` is skipped up to its newline and reported as
 * an OverlongLine instead of growing a string until V8 gives up. node:readline would also cost
 * about as much again as JSON.parse on large logs.
 */
export async function* readLines(input: Readable, maxLineBytes = DEFAULT_MAX_LINE_BYTES): AsyncGenerator<string | OverlongLine> {
  let pieces: Buffer[] = []; // the current line's bytes from earlier chunks
  let held = 0; // bytes of the current line seen so far (kept or skipped)
  let skipping = false;
  let first = true;
  const decode = (buf: Buffer, start: number, end: number): string => {
    if (end > start && buf[end - 1] === 13) end--;
    const text = buf.toString('utf8', start, end);
    if (first) {
      first = false;
      if (text.charCodeAt(0) === 0xfeff) return text.slice(1);
    }
    return text;
  };
  const finishLine = (chunk: Buffer, start: number, end: number): string | OverlongLine => {
    const total = held + (end - start);
    let line: string | OverlongLine;
    if (skipping || total > maxLineBytes) {
      line = new OverlongLine(total);
      first = false;
    } else if (pieces.length === 0) {
      line = decode(chunk, start, end);
    } else {
      pieces.push(chunk.subarray(start, end));
      line = decode(Buffer.concat(pieces, total), 0, total);
    }
    pieces = []; held = 0; skipping = false;
    return line;
  };
  for await (const chunk of input as AsyncIterable<Buffer>) {
    let start = 0;
    for (let nl = chunk.indexOf(10, start); nl >= 0; nl = chunk.indexOf(10, start)) {
      yield finishLine(chunk, start, nl);
      start = nl + 1;
    }
    const rest = chunk.length - start;
    if (rest === 0) continue;
    held += rest;
    if (skipping) continue;
    if (held > maxLineBytes) { skipping = true; pieces = []; } else pieces.push(chunk.subarray(start));
  }
  if (held > 0) yield finishLine(Buffer.alloc(0), 0, 0);
}

/** What `ecr score` learned about its input before reading it. */
export interface InputInfo {
  /** The file's identity, to refuse an --out that would overwrite it; null when unknown. */
  stat: Stats | null;
}

/**
 * The descriptor a path names directly (/dev/stdin, /dev/stdout, /dev/stderr, /dev/fd/N,
 * /proc/self/fd/N), or null. Such a path is used through the open descriptor: reopening it would
 * fail for a socket and truncate or replace a file the shell opened for appending.
 */
export function fdOfPath(p: string): number | null {
  const named = ({ '/dev/stdin': 0, '/dev/stdout': 1, '/dev/stderr': 2 } as Record<string, number>)[p];
  if (named !== undefined) return named;
  const m = /^\/(?:dev\/fd|proc\/self\/fd)\/(\d+)$/.exec(p);
  return m ? Number(m[1]) : null;
}

/**
 * Checks an input named on the command line: a readable regular file, or something that is read
 * as a stream like "-" (a pipe, a FIFO, `<(cmd)`, /dev/stdin, a character device).
 */
export async function inspectInput(file: string): Promise<InputInfo> {
  const fd = file === '-' ? 0 : fdOfPath(file);
  try {
    if (fd !== null) return { stat: fstatSync(fd) };
    const st = await fs.stat(file);
    if (st.isDirectory()) throw new UsageError(`${file}: is a directory, not a JSONL file`);
    if (!st.isFile() && !st.isFIFO() && !st.isCharacterDevice()) throw new UsageError(`${file}: not a file, pipe or device`);
    if (st.isFile()) await fs.access(file, fs.constants.R_OK);
    return { stat: st };
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError(`${file}: cannot read (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
}

/** True when `file` names a regular file read by path (not "-", a descriptor path, a pipe or a device). */
export function isRegularFile(file: string, info: InputInfo): boolean {
  return file !== '-' && fdOfPath(file) === null && info.stat !== null && info.stat.isFile();
}

/** The byte stream of an input checked by inspectInput ("-" is stdin). */
export function openInput(file: string): Readable {
  const fd = file === '-' ? 0 : fdOfPath(file);
  if (fd === 0) return process.stdin;
  if (fd !== null) return createReadStream('', { fd, autoClose: false, highWaterMark: 1 << 20 });
  return createReadStream(file, { highWaterMark: 1 << 20 });
}

export async function readJsonConfig(file: string): Promise<unknown> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    throw new UsageError(`--config ${file}: cannot read (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  // Editors on Windows save UTF-8 with a byte-order mark, which JSON.parse rejects.
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`${file} is not valid JSON: ${(err as Error).message}`);
  }
}

const FS_ERRORS: Record<string, string> = {
  ENOENT: 'no such file or directory',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EISDIR: 'is a directory',
  ENOTDIR: 'a component of the path is not a directory',
  EROFS: 'read-only file system',
  ENOSPC: 'no space left on device',
  EDQUOT: 'disk quota exceeded',
  ELOOP: 'too many levels of symbolic links',
  ENAMETOOLONG: 'file name too long',
  ENXIO: 'no reader on the other end (or not a device that can be opened)',
  EPIPE: 'the reader closed the pipe',
  EIO: 'input/output error',
  EBADF: 'not an open file descriptor',
  EBUSY: 'device or resource busy',
  ETXTBSY: 'text file busy',
};

/** A file-system error as a short phrase with its code, without Node's path-laden message. */
export function describeFsError(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  if (code) return FS_ERRORS[code] ? `${FS_ERRORS[code]} (${code})` : code;
  return err instanceof Error ? err.message : String(err);
}

/** Writing results failed after the run started (disk full, reader gone): exit 1, no stack. */
/**
 * The exit code of a command whose output failed mid-run (disk full, reader gone): one line on
 * stderr and 1, as for an internal failure; anything else is rethrown.
 */
/** A flag's value as a positive integer, or a usage error naming the flag. */
export function positiveIntegerFlag(flag: string, text: string): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 1) throw new UsageError(`--${flag} must be a positive integer, got "${text}"`);
  return n;
}

/** `--threads N` of the JSONL parser (ecr score, ecr worker): 0..256, default one per core. */
export function parseThreadsFlag(text: string | undefined): number {
  const threads = text === undefined ? availableParallelism() : Number(text);
  if (!Number.isInteger(threads) || threads < 0 || threads > 256) throw new UsageError(`--threads must be an integer from 0 to 256, got "${text}"`);
  return threads;
}

/** A positive integer from the environment variable `name`, or undefined when it is unset or empty. */
export function positiveIntegerEnv(name: string): number | undefined {
  const env = process.env[name];
  if (env === undefined || env === '') return undefined;
  const n = Number(env);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`${name} must be a positive integer, got "${env}"`);
  return n;
}

/** The line-length cap of ecr score's inputs: 64 MiB, or ECR_MAX_LINE_BYTES (for tests that should not write 64 MiB). */
export function maxLineBytes(): number {
  return positiveIntegerEnv('ECR_MAX_LINE_BYTES') ?? DEFAULT_MAX_LINE_BYTES;
}

export function exitForOutputFailure(command: string, err: unknown): number {
  if (!(err instanceof OutputWriteError)) throw err;
  process.stderr.write(`${command}: ${err.message}\n`);
  return 1;
}

export class OutputWriteError extends EcrError {
  constructor(what: string, cause: unknown) {
    super('ECR_OUTPUT', `cannot write ${what}: ${describeFsError(cause)}`, { cause });
  }
}

/**
 * A Writable with its 'error' event always handled: the first error is kept and thrown by the
 * next write or by finish(), so a failing disk or a closed pipe is reported, never an unhandled
 * 'error' event.
 */
export class Sink {
  private failure: unknown = null;
  constructor(readonly stream: Writable, private readonly what: string) {
    stream.on('error', (err) => { this.failure ??= err; });
  }

  /** Writes a chunk, waiting for the stream to drain so memory stays bounded. */
  async write(chunk: string | Uint8Array): Promise<void> {
    this.check();
    if (this.stream.write(chunk)) return;
    await this.settle('drain');
  }

  /** Ends the stream (unless it is stdout or stderr, which stay open) and waits until it is flushed. */
  async finish(): Promise<void> {
    this.check();
    if (this.stream === process.stdout || this.stream === process.stderr) {
      // An empty write's callback runs once everything before it was handed to the OS.
      await new Promise<void>((resolve, reject) => this.stream.write('', (err) => (err ? reject(new OutputWriteError(this.what, err)) : resolve())));
    } else {
      this.stream.end();
      await this.settle('finish');
    }
    this.check();
  }

  private check(): void {
    if (this.failure !== null) throw new OutputWriteError(this.what, this.failure);
  }

  private settle(event: 'drain' | 'finish'): Promise<void> {
    return new Promise((resolve, reject) => {
      const done = () => { this.stream.off('error', failed); resolve(); };
      const failed = (err: unknown) => { this.stream.off(event, done); reject(new OutputWriteError(this.what, err)); };
      this.stream.once(event, done);
      this.stream.once('error', failed);
    });
  }
}

/** What a progress line can say beyond the count. */
export interface ProgressDetail {
  /** Input bytes read so far, and the input's size when known (a regular file): gives the ETA. */
  bytesDone?: number;
  bytesTotal?: number | null;
  /** The backend(s) scoring, e.g. "cpu". */
  backend?: string;
}

const count = (n: number) => Math.round(n).toLocaleString('en-US');

function duration(seconds: number): string {
  if (seconds < 60) return `${Math.ceil(seconds)} s`;
  const m = Math.floor(seconds / 60);
  return m < 60 ? `${m} min ${Math.ceil(seconds % 60)} s` : `${Math.floor(m / 60)} h ${m % 60} min`;
}

/**
 * A throttled one-line progress report (records, records/s, ETA, backend), only when the stream
 * (stderr by default) is a terminal: a log file or a pipe gets nothing. A library would add a
 * dependency for one line of `\r` rewriting, so this stays.
 */
export class Progress {
  private last = 0;
  private shown = 0; // length of the line on screen, to blank a longer previous one
  private readonly start = Date.now();
  private readonly enabled: boolean;
  constructor(private readonly label: string, private readonly stream: Pick<NodeJS.WriteStream, 'write' | 'isTTY'> = process.stderr) {
    this.enabled = stream.isTTY === true;
  }

  update(records: number, detail: ProgressDetail = {}): void {
    if (!this.enabled) return;
    const now = Date.now();
    if (now - this.last < 250) return;
    this.last = now;
    const seconds = Math.max(1e-3, (now - this.start) / 1000);
    let text = `${this.label}: ${plural(records, 'record', 'records', count(records))} (${count(records / seconds)}/s)`;
    const { bytesDone, bytesTotal } = detail;
    if (bytesDone !== undefined && bytesTotal && bytesDone > 0) {
      const fraction = Math.min(1, bytesDone / bytesTotal);
      text += `, ${Math.floor(fraction * 100)}%, ETA ${duration((seconds / fraction) * (1 - fraction))}`;
    }
    if (detail.backend) text += `, backend ${detail.backend}`;
    this.show(text);
  }

  done(records: number, detail: ProgressDetail = {}): void {
    if (!this.enabled) return;
    const seconds = (Date.now() - this.start) / 1000;
    this.show(`${this.label}: ${plural(records, 'record', 'records', count(records))} in ${seconds.toFixed(1)} s (${count(records / Math.max(1e-3, seconds))}/s)${detail.backend ? `, backend ${detail.backend}` : ''}`);
    this.stream.write('\n');
  }

  private show(text: string): void {
    this.stream.write(`\r${text}${' '.repeat(Math.max(0, this.shown - text.length))}`);
    this.shown = text.length;
  }
}

/**
 * Parses a subcommand's flags (no positionals); a flag the command does not know is a
 * UsageError that repeats the command's usage.
 */
type FlagValues<O extends NonNullable<ParseArgsConfig['options']>> =
  ReturnType<typeof parseArgs<{ args: string[]; options: O; allowPositionals: false; strict: true }>>['values'];

export function parseFlags<O extends NonNullable<ParseArgsConfig['options']>>(argv: string[], options: O, usage: string): FlagValues<O> {
  try {
    return parseArgs({ args: argv, options, allowPositionals: false, strict: true }).values;
  } catch (err) {
    throw new UsageError(`${(err as Error).message}\n${usage}`);
  }
}
