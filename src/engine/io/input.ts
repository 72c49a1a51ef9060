/** An input named on the command line: checked before it is read, then opened as a byte stream. */
import { createReadStream, fstatSync, promises as fs, type Stats } from 'node:fs';
import type { Readable } from 'node:stream';
import { UsageError } from '../../core/errors.js';

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
