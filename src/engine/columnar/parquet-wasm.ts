/**
 * parquet-wasm, loaded on first use: compiling its WebAssembly module takes tens of
 * milliseconds, which a JSONL run should not pay.
 */
type ParquetWasm = typeof import('parquet-wasm/node');

let loading: Promise<ParquetWasm> | null = null;

export function loadParquetWasm(): Promise<ParquetWasm> {
  loading ??= import('parquet-wasm/node');
  return loading;
}
