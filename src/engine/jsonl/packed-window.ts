/**
 * One window of `ecr score` built from parsed chunks (jsonl-parse.ts) and scored: the typed
 * arrays of the chunks are copied, a run of same-shape records at a time, into per-shape batches
 * in shared memory (so the cpu backend's threads read them in place), and every score is offered
 * to the selector for the whole input. The streaming counterpart of scoreWindow
 * (score-records.ts), with the same bucketing, configuration check and error.
 */
import type { Batch, MetricArrays } from '../../core/batch.js';
import { allocMetrics } from '../../core/batch.js';
import { checkRecordShape, type ResolvedConfig } from '../../core/config.js';
import type { BackendChoice, BackendName, ComputeOptions } from '../../backends/backend.js';
import { chooseBackend, getBackend, type BackendOptions } from '../../backends/registry.js';
import { allocateSharedMetrics, sharedFloat64 } from '../../backends/cpu/shared.js';
import type { GroupSelector } from '../../core/select.js';
import type { GroupKeys } from '../group-keys.js';
import type { WindowResults } from '../../core/result-line.js';
import { SHAPE_FIELDS, type ParsedChunk } from './jsonl-parse.js';

/** A shared Float64Array that grows by doubling and is reused from window to window. */
class SharedFloats {
  data = sharedFloat64(0);
  length = 0;
  append(src: Float64Array, from: number, to: number): void {
    const need = this.length + (to - from);
    if (need > this.data.length) {
      const next = sharedFloat64(Math.max(need, this.data.length * 2));
      next.set(this.data.subarray(0, this.length));
      this.data = next;
    }
    this.data.set(src.subarray(from, to), this.length);
    this.length = need;
  }
  view(): Float64Array { return this.data.subarray(0, this.length); }
}

class Bucket {
  readonly steps = new SharedFloats();
  readonly embeddings = new SharedFloats();
  readonly expected = new SharedFloats();
  readonly realized = new SharedFloats();
  readonly policy = new SharedFloats();
  /** Window position of each record. */
  positions = new Uint32Array(1024);
  groups = new Int32Array(1024);
  baseScore = new Float64Array(1024);
  size = 0;
  private out: MetricArrays = allocateSharedMetrics(0);
  constructor(readonly t: number, readonly m: number, readonly d: number, readonly a: number, readonly rewards: boolean) {}

  reset(): void {
    this.size = 0;
    for (const f of [this.steps, this.embeddings, this.expected, this.realized, this.policy]) f.length = 0;
  }

  reserve(n: number): void {
    if (this.size + n <= this.positions.length) return;
    const cap = Math.max(this.size + n, this.positions.length * 2);
    const grow = <T extends Uint32Array | Int32Array | Float64Array>(a: T): T => {
      const next = new (a.constructor as new (n: number) => T)(cap);
      next.set(a.subarray(0, this.size));
      return next;
    };
    this.positions = grow(this.positions); this.groups = grow(this.groups); this.baseScore = grow(this.baseScore);
  }

  toBatch(): Batch {
    const n = this.size;
    return {
      n, t: this.t, m: this.m, steps: this.steps.view(),
      ...(this.d ? { d: this.d, embeddings: this.embeddings.view() } : {}),
      ...(this.rewards ? { expected: this.expected.view(), realized: this.realized.view() } : {}),
      ...(this.a ? { a: this.a, policy: this.policy.view() } : {}),
      groups: this.groups.subarray(0, n), baseScore: this.baseScore.subarray(0, n),
    };
  }

  /** Output arrays of the bucket's size, kept between windows (fresh pages cost more than the kernel). */
  outputs(): MetricArrays {
    const n = this.size;
    if (this.out.evb.length < n) this.out = allocateSharedMetrics(Math.max(n, this.out.evb.length * 2));
    const o = this.out;
    return { evb: o.evb.subarray(0, n), cr: o.cr.subarray(0, n), ts: o.ts.subarray(0, n), es: o.es.subarray(0, n), pd: o.pd.subarray(0, n), cci: o.cci.subarray(0, n) };
  }
}

/** Where the next record of a chunk starts in each of its arrays. */
interface Cursor { chunk: ParsedChunk | null; record: number; steps: number; embeddings: number; rewards: number; policy: number }

/** A scored window: what its result lines need, in ordinary (transferable) memory. */
export interface ScoredWindow extends WindowResults {
  lineOf: Uint32Array;
  backends: Set<BackendName>;
}

/** The id of the record whose result line starts with `head` (for messages). */
export function idOfHead(head: string): string {
  return String((JSON.parse(`${head}}`) as { id: string | number }).id);
}

export class PackedWindow {
  /** Records in the window. */
  size = 0;
  /** Line number of each record, in window order. */
  lineOf = new Uint32Array(1024);
  private readonly buckets = new Map<string, Bucket>();
  /** Buckets in order of first appearance in this window. */
  private used: Bucket[] = [];
  private heads: string[] = [];
  private headEnds = new Uint32Array(1025);
  private cursor: Cursor = { chunk: null, record: 0, steps: 0, embeddings: 0, rewards: 0, policy: 0 };

  constructor(private readonly groups: GroupKeys) {}

  /** Appends records [from, to) of `chunk`; successive calls for one chunk must be consecutive. */
  add(chunk: ParsedChunk, from: number, to: number): void {
    const c = this.cursor;
    if (c.chunk !== chunk) { this.cursor = { chunk, record: 0, steps: 0, embeddings: 0, rewards: 0, policy: 0 }; }
    const cur = this.cursor;
    if (cur.record !== from) throw new Error(`records of a chunk added out of order (${cur.record} then ${from})`);
    if (this.size + (to - from) > this.lineOf.length) {
      const next = new Uint32Array(Math.max(this.size + (to - from), this.lineOf.length * 2));
      next.set(this.lineOf.subarray(0, this.size));
      this.lineOf = next;
      const ends = new Uint32Array(next.length + 1);
      ends.set(this.headEnds.subarray(0, this.size + 1));
      this.headEnds = ends;
    }
    const ce = chunk.headEnds;
    this.heads.push(chunk.heads.slice(ce[from], ce[to]));
    const shift = this.headEnds[this.size] - ce[from];
    for (let k = from; k < to; k++) this.headEnds[this.size + 1 + k - from] = ce[k + 1] + shift;
    const sh = chunk.shapes;
    let i = from;
    while (i < to) {
      // A run of records with the shape of record i.
      const o = i * SHAPE_FIELDS;
      const t = sh[o], m = sh[o + 1], d = sh[o + 2], a = sh[o + 3], r = sh[o + 4];
      let end = i + 1;
      while (end < to) {
        const p = end * SHAPE_FIELDS;
        if (sh[p] !== t || sh[p + 1] !== m || sh[p + 2] !== d || sh[p + 3] !== a || sh[p + 4] !== r) break;
        end++;
      }
      const n = end - i;
      const key = `${t}:${m}:${d}:${a}:${r}`;
      let b = this.buckets.get(key);
      if (!b) { b = new Bucket(t, m, d, a, r === 1); this.buckets.set(key, b); }
      if (b.size === 0) this.used.push(b);
      b.reserve(n);
      b.steps.append(chunk.steps, cur.steps, cur.steps += n * t * m);
      if (d) b.embeddings.append(chunk.embeddings, cur.embeddings, cur.embeddings += n * t * d);
      if (r) { b.expected.append(chunk.expected, cur.rewards, cur.rewards + n * t); b.realized.append(chunk.realized, cur.rewards, cur.rewards += n * t); }
      if (a) b.policy.append(chunk.policy, cur.policy, cur.policy += n * t * a);
      for (let k = i; k < end; k++) {
        const j = b.size++;
        b.positions[j] = this.size;
        b.groups[j] = this.groups.indexOfEncoded(chunk.groupBytes, chunk.groupEnds[k], chunk.groupEnds[k + 1]);
        b.baseScore[j] = chunk.baseScore[k];
        this.lineOf[this.size++] = chunk.lineOf[k];
      }
      i = end;
    }
    cur.record = to;
  }

  /**
   * Scores the window, whose first record has input index `firstIndex`, offers each record to
   * `selector`, and empties the window.
   */
  async score(firstIndex: number, config: ResolvedConfig, backend: BackendChoice, selector: GroupSelector, compute: ComputeOptions, backendOptions?: BackendOptions): Promise<ScoredWindow> {
    const n = this.size;
    const metrics = allocMetrics(n);
    const admissible = new Uint8Array(n);
    const groupOf = new Int32Array(n);
    const baseOf = new Float64Array(n);
    const backends = new Set<BackendName>();
    const heads = this.heads.join('');
    const headEnds = this.headEnds.slice(0, n + 1);
    const lineOf = this.lineOf.slice(0, n);
    try {
      // As scoreWindow: the first record of each shape is checked against the configuration.
      // `used` is already in that order: a bucket joins it at its first record of the window.
      for (const b of this.used) {
        const j = b.positions[0];
        checkRecordShape(config, b.m, () => ({ line: this.lineOf[j], id: idOfHead(heads.slice(headEnds[j], headEnds[j + 1])) }));
      }
      for (const b of this.used) {
        const batch = b.toBatch();
        const name = await chooseBackend(backend, batch, backendOptions);
        backends.add(name);
        const out = await (await getBackend(name, backendOptions)).computeMetrics(batch, config, { ...compute, out: b.outputs() });
        const pos = b.positions;
        for (let k = 0; k < b.size; k++) {
          const j = pos[k];
          metrics.evb[j] = out.evb[k]; metrics.cr[j] = out.cr[k]; metrics.ts[j] = out.ts[k];
          metrics.es[j] = out.es[k]; metrics.pd[j] = out.pd[k]; metrics.cci[j] = out.cci[k];
          groupOf[j] = b.groups[k]; baseOf[j] = b.baseScore[k];
        }
      }
      for (let j = 0; j < n; j++) admissible[j] = selector.offer(groupOf[j], firstIndex + j, metrics.cci[j], baseOf[j]) ? 1 : 0;
      return { heads, headEnds, metrics, admissible, lineOf, backends };
    } finally {
      this.clear();
    }
  }

  /** Empties the window without scoring it. */
  clear(): void {
    for (const b of this.used) b.reset();
    this.used = [];
    this.heads = [];
    this.size = 0;
  }
}
