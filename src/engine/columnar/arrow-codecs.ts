/**
 * The body codecs of compressed Arrow IPC (LZ4 frame, pyarrow's write_feather default; zstd,
 * as Polars and pyarrow write it on request), registered with apache-arrow's codec registry on
 * first import, so that every reader of the process (ecr score, convert, calibrate; the file
 * ring too) decodes them. Only decoding is registered: ecr writes Arrow files uncompressed.
 *
 * zstd: fzstd, pure JavaScript (about 25 kB, no dependencies, nothing built or downloaded at
 * install), by the author of fflate and the most used pure-JS zstd decoder. The alternatives
 * are native (@mongodb-js/zstd, zstd-napi: a binary per platform) or an Emscripten build of
 * most of a megabyte (zstd-codec). LZ4 frame: lz4-frame.ts says why it is decoded here.
 */
import { CompressionType, compressionRegistry } from 'apache-arrow';
import { decompress as zstdDecompress } from 'fzstd';
import { decodeLz4Frames } from './lz4-frame.js';

function zstdDecode(data: Uint8Array): Uint8Array {
  try {
    return zstdDecompress(data);
  } catch (err) {
    throw new Error(`a zstd frame cannot be decoded (${(err as Error).message})`, { cause: err });
  }
}

compressionRegistry.set(CompressionType.LZ4_FRAME, { decode: decodeLz4Frames });
compressionRegistry.set(CompressionType.ZSTD, { decode: zstdDecode });
