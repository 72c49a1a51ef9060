/** File-system errors as short phrases, for one-line messages. */
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
