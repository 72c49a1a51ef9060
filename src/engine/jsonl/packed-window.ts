/**
 * One window of `ecr score` built from parsed chunks (jsonl-parse.ts) and scored: the typed
 * arrays of the chunks are copied, a run of same-shape records at a time, into per-shape batches
 * in shared memory (so the cpu backend's threads read them in place), and the window goes to the
 * window scorer, which offers every score to the selector for the whole input.
 */
import { allocMetrics } from '../../core/batch.js';
import type { BackendName } from '../../backends/backend.js';
import type { GroupSelector } from '../../core/select.js';
import type { GroupKeys } from '../group-keys.js';
import type { WindowResults } from '../../core/result-line.js';
import { grown } from '../floats.js';
import { ShapeBucket, ShapeBuckets, shapeKey } from '../shape-buckets.js';
import { scoreWindow, type ScoreSettings } from '../window-scorer.js';
import { SHAPE_FIELDS, type ParsedChunk } from './jsonl-parse.js';

/** Where the next record of a chunk starts in each of its arrays. */
interface Cursor {
  chunk: ParsedChunk | null;
  record: number;
  steps: number;
  embeddings: number;
  rewards: number;
  policy: number;
}

/** A scored window: what its result lines need, in ordinary (transferable) memory. */
export interface ScoredWindow extends WindowResults {
  lineOf: Uint32Array;
  /** The backend of each shape, in order of first appearance. */
  backends: BackendName[];
}

/** The id of the record whose result line starts with `head` (for messages). */
export function idOfHead(head: string): string {
  return String((JSON.parse(`${head}}`) as { id: string | number }).id);
}

export class PackedWindow {
  /** Records in the window. */
  size = 0;
  /** Line number, group index and selection score of each record, in window order. */
  lineOf = new Uint32Array(1024);
  private groupOf = new Int32Array(1024);
  private baseOf = new Float64Array(1024);
  /** Buckets in shared memory, reused from window to window. */
  private readonly buckets = new ShapeBuckets<ShapeBucket>();
  private heads: string[] = [];
  private headEnds = new Uint32Array(1025);
  private cursor: Cursor = { chunk: null, record: 0, steps: 0, embeddings: 0, rewards: 0, policy: 0 };

  constructor(private readonly groups: GroupKeys) {}

  /** Appends records [from, to) of `chunk`; successive calls for one chunk must be consecutive. */
  add(chunk: ParsedChunk, from: number, to: number): void {
    const c = this.cursor;
    if (c.chunk !== chunk) {
      this.cursor = { chunk, record: 0, steps: 0, embeddings: 0, rewards: 0, policy: 0 };
    }
    const cur = this.cursor;
    if (cur.record !== from) throw new Error(`records of a chunk added out of order (${cur.record} then ${from})`);
    const need = this.size + (to - from);
    if (need > this.lineOf.length) {
      this.lineOf = grown(this.lineOf, this.size, need);
      this.groupOf = grown(this.groupOf, this.size, need);
      this.baseOf = grown(this.baseOf, this.size, need);
      this.headEnds = grown(this.headEnds, this.size + 1, this.lineOf.length + 1);
    }
    const ce = chunk.headEnds;
    this.heads.push(chunk.heads.slice(ce[from], ce[to]));
    const shift = this.headEnds[this.size] - ce[from];
    for (let k = from; k < to; k++) this.headEnds[this.size + 1 + k - from] = ce[k + 1] + shift;
    const sh = chunk.shapes;
    const lineOf = this.lineOf,
      groupOf = this.groupOf,
      baseOf = this.baseOf;
    let i = from;
    while (i < to) {
      // A run of records with the shape of record i.
      const o = i * SHAPE_FIELDS;
      const t = sh[o],
        m = sh[o + 1],
        d = sh[o + 2],
        a = sh[o + 3],
        r = sh[o + 4];
      let end = i + 1;
      while (end < to) {
        const p = end * SHAPE_FIELDS;
        if (sh[p] !== t || sh[p + 1] !== m || sh[p + 2] !== d || sh[p + 3] !== a || sh[p + 4] !== r) break;
        end++;
      }
      const n = end - i;
      const b = this.buckets.get(shapeKey(t, m, d, a, r), () => new ShapeBucket(t, m, d, a, r === 1, 0, true));
      b.reserve(n);
      b.steps.append(chunk.steps, cur.steps, (cur.steps += n * t * m));
      if (d) b.embeddings.append(chunk.embeddings, cur.embeddings, (cur.embeddings += n * t * d));
      if (r) {
        b.expected.append(chunk.expected, cur.rewards, cur.rewards + n * t);
        b.realized.append(chunk.realized, cur.rewards, (cur.rewards += n * t));
      }
      if (a) b.policy.append(chunk.policy, cur.policy, (cur.policy += n * t * a));
      const pos = b.positions;
      for (let k = i; k < end; k++) {
        const j = this.size++;
        pos[b.size++] = j;
        groupOf[j] = this.groups.indexOfEncoded(chunk.groupBytes, chunk.groupEnds[k], chunk.groupEnds[k + 1]);
        baseOf[j] = chunk.baseScore[k];
        lineOf[j] = chunk.lineOf[k];
      }
      i = end;
    }
    cur.record = to;
  }

  /**
   * Scores the window, whose first record has input index `firstIndex`, offers each record to
   * `selector`, and empties the window.
   */
  async score(firstIndex: number, settings: ScoreSettings, selector: GroupSelector): Promise<ScoredWindow> {
    const n = this.size;
    const heads = this.heads.join('');
    const headEnds = this.headEnds.slice(0, n + 1);
    const lineOf = this.lineOf.slice(0, n);
    try {
      const w = await scoreWindow(
        {
          n,
          firstIndex,
          groups: this.groupOf.subarray(0, n),
          baseScore: this.baseOf.subarray(0, n),
          // Each bucket's metrics land in its reused shared outputs, then in window order in
          // ordinary memory, which goes to a format worker.
          parts: this.buckets.used.map((b) => ({ batch: b.toBatch(), rows: b.rows(), out: b.outputs() })),
          metrics: allocMetrics(n),
          requireFinite: true,
          locate: (j) => ({ line: lineOf[j], id: idOfHead(heads.slice(headEnds[j], headEnds[j + 1])) }),
        },
        settings,
        selector,
      );
      return { heads, headEnds, metrics: w.metrics, admissible: w.admissible, lineOf, backends: w.backends };
    } finally {
      this.clear();
    }
  }

  /** Empties the window without scoring it. */
  clear(): void {
    this.buckets.reset();
    this.heads = [];
    this.size = 0;
  }
}
