/**
 * Recognizes a file given where JSONL is expected that is something else (a Parquet or Arrow
 * file, a compressed file, UTF-16 text) by its first bytes, so the user reads one line saying
 * what the file is and what the command takes, instead of twenty "invalid JSON" lines quoting
 * binary. No JSONL file starts with any of these signatures: JSON text starts with `{`,
 * whitespace or a UTF-8 byte-order mark.
 */
import { promises as fs } from 'node:fs';
import { Readable } from 'node:stream';
import { InputError } from '../../core/errors.js';

interface Kind {
  what: string;
  columnar?: 'parquet' | 'arrow';
  decompress?: string;
}

const SIGNATURES: [number[], Kind][] = [
  [[0x50, 0x41, 0x52, 0x31], { what: 'a Parquet file', columnar: 'parquet' }], // PAR1
  [[0x41, 0x52, 0x52, 0x4f, 0x57, 0x31], { what: 'an Arrow IPC file', columnar: 'arrow' }], // ARROW1
  [[0xff, 0xff, 0xff, 0xff], { what: 'an Arrow IPC stream', columnar: 'arrow' }], // the continuation marker of its first message
  [[0x1f, 0x8b], { what: 'gzip-compressed', decompress: 'gzip -dc' }],
  [[0x28, 0xb5, 0x2f, 0xfd], { what: 'zstd-compressed', decompress: 'zstd -dc' }],
  [[0x42, 0x5a, 0x68], { what: 'bzip2-compressed', decompress: 'bzip2 -dc' }],
  [[0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00], { what: 'xz-compressed', decompress: 'xz -dc' }],
  [[0x04, 0x22, 0x4d, 0x18], { what: 'LZ4-compressed', decompress: 'lz4 -dc' }],
  [[0x50, 0x4b, 0x03, 0x04], { what: 'a ZIP archive (or a file stored as one, such as .xlsx)', decompress: 'unzip -p' }],
  [[0xff, 0xfe], { what: 'UTF-16 text' }],
  [[0xfe, 0xff], { what: 'UTF-16 text' }],
];

/** Bytes enough to tell every signature above. */
export const SIGNATURE_BYTES = 8;

/**
 * Who reads the JSONL: the commands with --format (ecr score, convert, calibrate, maturity) can
 * read a columnar file as such; the queue reads JSONL only.
 */
export type JsonlReader = 'formats' | 'queue';

/** The error for a file whose first bytes say it is not JSONL, or null when they could start JSONL. */
export function notJsonlError(head: Uint8Array, name: string, reader: JsonlReader = 'formats'): InputError | null {
  const kind = SIGNATURES.find(([sig]) => head.length >= sig.length && sig.every((b, i) => head[i] === b))?.[1];
  if (!kind) return null;
  const stdin = name === '-';
  const shown = stdin ? 'stdin' : name;
  let how: string;
  if (kind.columnar && reader === 'queue') {
    how = `ecr score --queue reads JSONL files only: score it without --queue, or convert it first (ecr convert ${shown} ${stem(shown)}.jsonl)`;
  } else if (kind.columnar === 'parquet') {
    how = stdin
      ? 'Parquet is read from its footer, so save it to a file named .parquet and give that name'
      : 'to read it as Parquet, name it .parquet or pass --format parquet';
  } else if (kind.columnar === 'arrow') {
    how = stdin
      ? 'to read it as Arrow IPC, pass --format arrow'
      : 'to read it as Arrow IPC, name it .arrow (.arrows for the stream format) or pass --format arrow';
  } else if (kind.decompress) {
    how = `JSONL is read uncompressed: decompress it first (${stdin ? `pipe it through ${kind.decompress}` : `${kind.decompress} ${shown} > ${stem(shown)}.jsonl`})`;
  } else {
    how = `JSONL is UTF-8: convert it first (${stdin ? 'pipe it through iconv -f UTF-16 -t UTF-8' : `iconv -f UTF-16 -t UTF-8 ${shown} > ${stem(shown)}.utf8.jsonl`})`;
  }
  return new InputError(`${shown} is ${kind.what}, not JSONL; ${how}`);
}

/** The name without its directory and last extension(s) of a compressed or columnar file, for the advice. */
function stem(name: string): string {
  const base = name.slice(name.lastIndexOf('/') + 1);
  return base.replace(/(\.(jsonl|json|ndjson))?(\.(gz|zst|bz2|xz|lz4|zip|parquet|pq|arrow|arrows|feather|ipc))?$/i, '') || 'records';
}

/** Throws notJsonlError's error when the file's first bytes are such a signature. */
export function refuseNotJsonl(head: Uint8Array, name: string, reader: JsonlReader = 'formats'): void {
  const err = notJsonlError(head, name, reader);
  if (err) throw err;
}

/**
 * `source` with its first bytes checked before any is passed on (works for pipes and stdin too,
 * where nothing can be read twice): the first read fails with notJsonlError's error, and a JSONL
 * input flows through unchanged.
 */
export function checkedJsonlStream(source: Readable | AsyncIterable<Buffer>, name: string, reader: JsonlReader = 'formats'): Readable {
  async function* checked(): AsyncGenerator<Buffer> {
    let head: Buffer | null = Buffer.alloc(0);
    for await (const chunk of source as AsyncIterable<Buffer>) {
      if (head === null) {
        yield chunk;
        continue;
      }
      head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
      if (head.length < SIGNATURE_BYTES) continue;
      refuseNotJsonl(head, name, reader);
      yield head;
      head = null;
    }
    if (head !== null && head.length > 0) {
      refuseNotJsonl(head, name, reader);
      yield head;
    }
  }
  return Readable.from(checked(), { objectMode: false });
}

/** Throws notJsonlError's error when the regular file `file` starts with such a signature. */
export async function refuseNotJsonlFile(file: string, name: string = file, reader: JsonlReader = 'formats'): Promise<void> {
  const handle = await fs.open(file, 'r');
  try {
    const head = new Uint8Array(SIGNATURE_BYTES);
    const { bytesRead } = await handle.read(head, 0, SIGNATURE_BYTES, 0);
    refuseNotJsonl(head.subarray(0, bytesRead), name, reader);
  } finally {
    await handle.close();
  }
}

/**
 * The JSONL input `file` as a checked byte stream: a regular file's first bytes are read once by
 * position (its stream is passed on as it is); any other input (stdin, a pipe) is checked as it
 * flows (checkedJsonlStream).
 */
export async function checkedJsonlInput(file: string, open: () => Readable, regular: boolean, reader: JsonlReader = 'formats'): Promise<Readable> {
  if (!regular) return checkedJsonlStream(open(), file, reader);
  await refuseNotJsonlFile(file, file, reader);
  return open();
}
