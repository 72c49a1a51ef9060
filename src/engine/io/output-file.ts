/**
 * Where `ecr score --out PATH` writes, decided and checked before any input is read:
 * - a regular file (or none yet) is written beside itself and renamed into place on success, so a
 *   failed or interrupted run never leaves a truncated file where a good one was; an existing
 *   file keeps its mode;
 * - a symbolic link is followed, and the file it points to is replaced as above (the link stays);
 * - a FIFO, a character device or a descriptor path (/dev/stdout, /dev/fd/N) is streamed into;
 * - a directory, a missing directory, an unwritable place, or the input file itself (by device
 *   and inode, so also through a link) is refused with a UsageError (exit 2).
 */
import { createWriteStream, fstatSync, promises as fs, type Stats } from 'node:fs';
import path from 'node:path';
import { UsageError } from '../../core/errors.js';
import { removeOnInterrupt } from './temporary.js';
import { Sink } from './sink.js';
import { describeFsError } from './fs-error.js';
import { fdOfPath, type InputInfo } from './input.js';

export interface Output {
  readonly sink: Sink;
  /** Makes the output final (renames a temporary file into place). */
  commit(): Promise<void>;
  /** Discards a temporary file; a streamed output keeps what was written. */
  abort(): Promise<void>;
}

/** Symbolic links followed before giving up, as the kernel's own limit (ELOOP). */
const MAX_LINK_HOPS = 40;

function refuse(out: string, reason: string): never {
  throw new UsageError(`cannot write --out ${out}: ${reason}`);
}

const sameFile = (a: Stats | null, b: Stats | null) => a !== null && b !== null && a.dev === b.dev && a.ino === b.ino;

/** Results on stdout (no --out). */
export function stdoutOutput(): Output {
  const sink = new Sink(process.stdout, 'stdout');
  return { sink, commit: () => sink.finish(), abort: async () => {} };
}

export async function openOutput(out: string, input: InputInfo): Promise<Output> {
  let target = out;
  for (let hop = 0; ; hop++) {
    if (hop > MAX_LINK_HOPS) refuse(out, 'too many levels of symbolic links');
    const fd = fdOfPath(target);
    if (fd !== null) return descriptorOutput(out, fd, input);
    let st: Stats;
    try {
      st = await fs.lstat(target);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return replacingOutput(out, target, null);
      refuse(out, describeFsError(err));
    }
    if (st.isSymbolicLink()) {
      const link = await fs.readlink(target).catch((err) => refuse(out, describeFsError(err)));
      target = path.resolve(path.dirname(target), link);
      continue;
    }
    if (st.isDirectory()) refuse(out, 'is a directory');
    if ((st.isFile() || st.isFIFO()) && sameFile(st, input.stat)) refuse(out, target === out ? 'it is the input file' : `it is the input file (${target})`);
    if (st.isFile()) return replacingOutput(out, target, st);
    return streamedOutput(out, target);
  }
}

async function replacingOutput(out: string, target: string, existing: Stats | null): Promise<Output> {
  const dir = path.dirname(target);
  if (existing) {
    // Renaming over a read-only file would succeed; refuse as `cp` or a shell redirect would.
    await fs.access(target, fs.constants.W_OK).catch((err) => refuse(out, describeFsError(err)));
  } else {
    const parent = await fs
      .stat(dir)
      .catch((err) => refuse(out, (err as NodeJS.ErrnoException).code === 'ENOENT' ? `directory ${dir} does not exist` : describeFsError(err)));
    if (!parent.isDirectory()) refuse(out, `${dir} is not a directory`);
  }
  const tmp = path.join(dir, `.${path.basename(target)}.${process.pid}.tmp`);
  const forget = removeOnInterrupt(tmp);
  let handle;
  try {
    handle = await fs.open(tmp, 'w');
    if (existing) await handle.chmod(existing.mode & 0o7777);
  } catch (err) {
    await handle?.close();
    await fs.rm(tmp, { force: true });
    forget();
    refuse(out, describeFsError(err));
  }
  const stream = handle.createWriteStream();
  const sink = new Sink(stream, `--out ${out}`);
  return {
    sink,
    async commit() {
      await sink.finish();
      await fs.rename(tmp, target);
      forget();
    },
    async abort() {
      stream.destroy();
      await fs.rm(tmp, { force: true });
      forget();
    },
  };
}

/** A FIFO or device: opened now (a FIFO waits here for its reader) and written as results come. */
async function streamedOutput(out: string, target: string): Promise<Output> {
  const handle = await fs.open(target, 'w').catch((err) => refuse(out, describeFsError(err)));
  const stream = handle.createWriteStream();
  const sink = new Sink(stream, `--out ${out}`);
  return {
    sink,
    commit: () => sink.finish(),
    abort: async () => {
      stream.destroy();
    },
  };
}

function descriptorOutput(out: string, fd: number, input: InputInfo): Output {
  let st: Stats;
  try {
    st = fstatSync(fd);
  } catch (err) {
    refuse(out, describeFsError(err));
  }
  if ((st.isFile() || st.isFIFO()) && sameFile(st, input.stat)) refuse(out, 'it is the input file');
  const stream = fd === 1 ? process.stdout : fd === 2 ? process.stderr : createWriteStream('', { fd, autoClose: false });
  const sink = new Sink(stream, `--out ${out}`);
  return { sink, commit: () => sink.finish(), abort: async () => {} };
}
