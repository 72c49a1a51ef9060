/**
 * Dawn prints its own warnings from native code straight to file descriptor 2 (fprintf(stderr)
 * in dawn::WarningLog; the node bindings expose no logging callback for the instance): the
 * Vulkan loader probe ("Couldn't load Vulkan: libvulkan.so.1 ...", with a C++ source location)
 * and Limits.cpp's "maxDynamic*BuffersPerPipelineLayout artificially reduced" lines, printed
 * inside requestAdapter() on every adapter it enumerates. They are not errors and no toggle
 * turns them off, so adapter discovery (src/backends/webgpu/device/adapter.ts) runs each Dawn call with fd 2
 * pointed at a private temporary file; what was caught becomes the reason a candidate adapter
 * was skipped. `ECR_DEBUG=webgpu` turns the capture off.
 *
 * Node has no dup2, so the capture closes fd 2 and opens the file: open() returns the lowest
 * free descriptor, which is 2 (0 and 1 are checked to be open first; if another thread wins the
 * descriptor, nothing is captured). The original target is then reopened through /proc/self/fd
 * with its original status flags (access mode, O_APPEND, O_NONBLOCK). That is equivalent for
 * terminals, pipes, FIFOs and character devices, and for files opened for appending; a regular
 * file opened without O_APPEND has its own offset, which a reopen cannot restore, so there (and
 * on platforms without /proc, or for a socket) nothing is captured and Dawn's lines go through.
 */
import { closeSync, constants, fstatSync, openSync, readFileSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

const O_ACCMODE = 3;

interface SavedStderr {
  /** A second descriptor on fd 2's target, kept open so /proc/self/fd/<keep> can reopen it. */
  keep: number;
  flags: number;
}

/** Flags to reopen fd 2's target with, or null when it cannot be reopened equivalently. */
function reopenFlags(): number | null {
  if (process.platform !== 'linux') return null;
  try {
    fstatSync(0);
    fstatSync(1);
    const stat = fstatSync(2);
    if (stat.isSocket()) return null; // /proc/self/fd/N of a socket cannot be opened
    const match = /^flags:\s*([0-7]+)/m.exec(readFileSync('/proc/self/fdinfo/2', 'utf8'));
    if (!match) return null;
    const flags = parseInt(match[1], 8);
    if ((flags & O_ACCMODE) === constants.O_RDONLY) return null;
    if (stat.isFile() && (flags & constants.O_APPEND) === 0) return null;
    return (flags & O_ACCMODE) | (flags & (constants.O_APPEND | constants.O_NONBLOCK));
  } catch {
    return null;
  }
}

function saveStderr(): SavedStderr | null {
  const flags = reopenFlags();
  if (flags === null) return null;
  try {
    return { keep: openSync('/proc/self/fd/2', flags), flags };
  } catch {
    return null;
  }
}

/** Closes fd 2 and opens `target` in its place; false (fd 2 as before the call or closed) when open() did not return 2. */
function reopenAsStderr(target: string, flags: number, mode?: number): boolean {
  closeSync(2);
  const fd = openSync(target, flags, mode);
  if (fd === 2) return true;
  closeSync(fd);
  return false;
}

function restore(saved: SavedStderr): void {
  try {
    reopenAsStderr(`/proc/self/fd/${saved.keep}`, saved.flags);
  } finally {
    closeSync(saved.keep);
  }
}

let captures = 0;

/**
 * Runs `fn` with native writes to fd 2 caught, and returns its result and the caught text ('' when
 * nothing was written or nothing could be caught). Only the synchronous part of `fn` is covered:
 * wrap each Dawn call, not an await.
 */
export function withNativeStderrCaught<T>(fn: () => T): { result: T; caught: string } {
  const saved = saveStderr();
  if (!saved) return { result: fn(), caught: '' };
  const file = path.join(tmpdir(), `ecr-dawn-stderr-${process.pid}-${captures++}.txt`);
  let swapped: boolean;
  try {
    // O_EXCL with mode 0600: never follow a planted link in the shared temporary directory.
    swapped = reopenAsStderr(file, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
  } catch {
    swapped = false;
  }
  if (!swapped) {
    restore(saved);
    try {
      unlinkSync(file);
    } catch {
      /* never created */
    }
    return { result: fn(), caught: '' };
  }
  let result: T;
  try {
    result = fn();
  } finally {
    restore(saved);
  }
  let caught: string;
  try {
    caught = readFileSync(file, 'utf8');
  } finally {
    unlinkSync(file);
  }
  return { result, caught };
}

/**
 * Dawn's messages as single lines without the "Warning: " prefix and the C++ source locations it
 * appends ("    at operator() (.../BackendVk.cpp:368)").
 */
export function dawnMessages(caught: string): string[] {
  return caught
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !/^at \S+ \(.*\)$/.test(l))
    .map((l) => l.replace(/^(Warning|Error|Info):\s*/, ''));
}
