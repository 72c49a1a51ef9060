/**
 * Which file format a path holds: by `--format`, else by its extension (.parquet/.pq, .arrow/
 * .arrows/.ipc/.feather, anything else JSONL).
 */
import { UsageError } from '../../core/errors.js';

export const FORMATS = ['jsonl', 'parquet', 'arrow'] as const;
export type DataFormat = (typeof FORMATS)[number];

const BY_EXTENSION: Record<string, DataFormat> = {
  '.parquet': 'parquet',
  '.pq': 'parquet',
  '.arrow': 'arrow',
  '.arrows': 'arrow',
  '.ipc': 'arrow',
  '.feather': 'arrow',
};

/** The format named by `flag` (checked), else the one the file name's extension says. */
export function formatOf(file: string, flag?: string, flagName = '--format'): DataFormat {
  if (flag !== undefined) {
    if (!(FORMATS as readonly string[]).includes(flag)) throw new UsageError(`${flagName} must be one of ${FORMATS.join(', ')}, got "${flag}"`);
    return flag as DataFormat;
  }
  const dot = file.lastIndexOf('.');
  return (dot > file.lastIndexOf('/') ? BY_EXTENSION[file.slice(dot).toLowerCase()] : undefined) ?? 'jsonl';
}

/**
 * Arrow IPC has two layouts: the file format (random access, footer; what `.arrow` and
 * `.feather` files are) and the stream format (`.arrows`, pipes). Output follows the name.
 */
export function arrowLayoutOf(file: string): 'file' | 'stream' {
  return /\.(arrows|ipc)$/i.test(file) || file === '-' || file.startsWith('/dev/') ? 'stream' : 'file';
}
