/**
 * The float list columns of a Parquet file (steps, embeddings, policy, expected, realized) read
 * by DuckDB, for `ecr score`: its native Parquet reader decoded the issue-20 files 2.5-4x faster
 * than parquet-wasm with a third of the memory (bench/README.md, "Parquet decoders"). The other columns still come from parquet-wasm (parquet-reader.ts), which keeps
 * their Arrow types exactly as written; this module hands over, for the next n rows, one Arrow
 * Data per column: a list of lists (or a list) of float64 or float32, with the nulls of every
 * level, copied once out of DuckDB's chunks (list-builder.ts). The copy also finds the values'
 * bounds (value-bounds.ts), so the main thread's range check has nothing left to read.
 *
 * DuckDB is loaded only when a Parquet file is scored, with extension autoloading off: it never
 * reaches the network.
 */
import { DataType, Field, Float32, Float64, List, Precision, Type, type Data, type Schema } from 'apache-arrow';
import type { DuckDBConnection, DuckDBDataChunk, DuckDBInstance, DuckDBResult } from '@duckdb/node-api';
import { machine } from '../../core/machine.js';
import { RING_SLOTS } from './ring.js';
import { ListBuilder, type RawVector } from './list-builder.js';

/** The Arrow type a DuckDB list column is handed over as: list<list<float>> or list<float>. */
export function listTypeOf(depth: 1 | 2, float32: boolean): List {
  const leaf = new Field('item', float32 ? new Float32() : new Float64(), true);
  return depth === 2 ? new List(new Field('item', new List(leaf), true)) : new List(leaf);
}

export interface DuckDbConnection {
  instance: DuckDBInstance;
  connection: DuckDBConnection;
}

export function closeDuckDb(db: DuckDbConnection): void {
  db.connection.closeSync();
  db.instance.closeSync();
}

export interface ListColumn {
  name: string;
  depth: 1 | 2;
  float32: boolean;
}

/** Reads `columns` of a Parquet file with DuckDB, n rows at a time, in file order. */
export class DuckDbLists {
  private chunk: DuckDBDataChunk | null = null;
  private vectors: RawVector[] = [];
  private pos = 0;
  private done = false;

  private constructor(
    private readonly instance: DuckDBInstance,
    private readonly connection: DuckDBConnection,
    private readonly result: DuckDBResult,
    private readonly columns: ListColumn[],
  ) {}

  /** A DuckDB instance and connection, made while the file's schema is still being read. */
  static async connect(): Promise<DuckDbConnection> {
    const { DuckDBInstance } = await import('@duckdb/node-api');
    // Half the cores: the cpu backend's workers score on the others while DuckDB decodes (on the
    // 2-core VM, one DuckDB thread scored 400K rows in 2.62 s, two in 2.93 s).
    const threads = String(Math.max(1, Math.floor(machine().cpus / 2)));
    const instance = await DuckDBInstance.create(':memory:', { autoinstall_known_extensions: 'false', autoload_known_extensions: 'false', threads });
    return { instance, connection: await instance.connect() };
  }

  /** Starts reading `columns` of `file` on `db` (closed by close(), or here on failure). */
  static async open(db: DuckDbConnection, file: string, columns: ListColumn[]): Promise<DuckDbLists> {
    try {
      const quote = (name: string) => `"${name.replaceAll('"', '""')}"`;
      const sql = `SELECT ${columns.map((c) => quote(c.name)).join(', ')} FROM read_parquet(?)`;
      const prepared = await db.connection.prepare(sql);
      prepared.bindVarchar(1, file);
      const result = await prepared.stream();
      return new DuckDbLists(db.instance, db.connection, result, columns);
    } catch (err) {
      closeDuckDb(db);
      throw err;
    }
  }

  /**
   * Each column's values buffers, reused in turn: filling fresh memory cost more than decoding on
   * the issue-20 machine (its page faults), so batch k fills the buffer of batch k - RING_SLOTS,
   * and a batch stays valid until RING_SLOTS - 1 more have been taken (ColumnarInput.transient).
   */
  private readonly ring: (Float64Array | Float32Array | null)[][] = [];
  private taken = 0;

  /** The next n rows (fewer only at the end of the file) of every column. */
  async take(n: number): Promise<{ rows: number; data: Data[] }> {
    const slot = this.taken++ % RING_SLOTS;
    const builders = this.columns.map((c, k) => new ListBuilder(c.depth, c.float32, n, (this.ring[k] ??= [])[slot] ?? null));
    let rows = 0;
    while (rows < n) {
      if (!this.chunk || this.pos >= this.chunk.rowCount) {
        if (this.done) break;
        const next = await this.result.fetchChunk();
        if (!next || next.rowCount === 0) {
          this.done = true;
          break;
        }
        this.chunk = next;
        this.pos = 0;
        this.vectors = this.columns.map((_, c) => next.getColumnVector(c) as unknown as RawVector);
      }
      const k = Math.min(n - rows, this.chunk.rowCount - this.pos);
      builders.forEach((b, c) => b.append(this.vectors[c], this.pos, this.pos + k));
      this.pos += k;
      rows += k;
    }
    const data = builders.map((b, c) => b.finish(listTypeOf(this.columns[c].depth, this.columns[c].float32)));
    builders.forEach((b, k) => (this.ring[k][slot] = b.buffer));
    return { rows, data };
  }

  close(): void {
    this.connection.closeSync();
    this.instance.closeSync();
  }
}

const MATRIX_COLUMNS = new Set(['steps', 'embeddings', 'policy']);
const VECTOR_COLUMNS = new Set(['expected', 'realized']);

/** Lists nested `depth` deep around a float32 or float64 leaf: the float32 flag, or null for anything else. */
function floatListLeaf(type: DataType, depth: number): { float32: boolean } | null {
  let t: DataType = type;
  for (let d = 0; d < depth; d++) {
    if (!DataType.isList(t) && !DataType.isFixedSizeList(t) && t.typeId !== Type.LargeList) return null;
    t = (t as unknown as { children: { type: DataType }[] }).children[0].type;
  }
  if (!DataType.isFloat(t) || t.precision === Precision.HALF) return null;
  return { float32: t.precision === Precision.SINGLE };
}

/** The columns of `schema` that DuckDB reads: the scored float lists, by name and nesting. */
export function listColumnsOf(schema: Schema): ListColumn[] {
  const out: ListColumn[] = [];
  for (const f of schema.fields) {
    const depth = MATRIX_COLUMNS.has(f.name) ? 2 : VECTOR_COLUMNS.has(f.name) ? 1 : 0;
    const type: DataType = (f as { type: DataType }).type;
    const leaf = depth ? floatListLeaf(type, depth) : null;
    if (leaf) out.push({ name: f.name, depth: depth as 1 | 2, float32: leaf.float32 });
  }
  return out;
}
