/**
 * The one window scorer. Every scoring path hands it a window as one Batch per shape
 * (shape-buckets.ts): scoreBatch (one batch, the whole window), scoreRecords and the
 * calibration input (records packed per shape), the JSONL stream (packed-window.ts; the queue's
 * shard worker scores through it) and the columnar blocks (score-columnar.ts). It checks each
 * shape against the configuration, runs each part on its backend, writes the metrics into
 * window order, refuses non-finite results, and offers every row to the selector, which may
 * span many windows. It is the engine's only caller of the backend registry.
 */
import { allocMetrics, type Batch, type MetricArrays } from '../core/batch.js';
import { checkConfigAgainstShape, checkRecordShape, type ResolvedConfig } from '../core/config.js';
import type { InputLocation } from '../core/errors.js';
import { NonFiniteResultError, firstNonFinite } from '../core/result-line.js';
import type { GroupSelector } from '../core/select.js';
import type { BackendChoice, BackendName, ComputeOptions, ScoreBackend } from '../backends/backend.js';
import { chooseBackend, getBackend, type BackendOptions } from '../backends/registry.js';

/** How the engine scores, whatever the input: the configuration and the backend. */
export interface ScoreSettings {
  config: ResolvedConfig;
  backend: BackendChoice;
  compute: ComputeOptions;
  /** Options of the backend instances (adapter, threads, ...); default: the defaults. */
  backendOptions?: BackendOptions;
}

/** The rows of one shape in a window. */
export interface WindowPart {
  batch: Batch;
  /** Window row of each batch row; null when the part is the whole window in order (written in place). */
  rows: Int32Array | null;
  /** Arrays for the backend to write a scattered part's metrics into (the caller reuses them); absent: the backend allocates. */
  out?: MetricArrays;
}

export interface ScoringWindow {
  /** Rows in the window. */
  n: number;
  /** In order of each shape's first row: shapes are checked in this order. */
  parts: readonly WindowPart[];
  /** Input index of row 0: row j is offered to the selector as candidate firstIndex + j. */
  firstIndex: number;
  /** Group index of each row; null: every row in group 0. */
  groups: Int32Array | Uint32Array | null;
  /** Selection score of each row, NaN = CCI; null: none given. */
  baseScore: Float64Array | null;
  /**
   * Where row j came from, with its id, for messages (asked only on failure). Null: the window
   * is a caller's batch, and a configuration that does not fit its shape is a ConfigError.
   */
  locate: ((j: number) => InputLocation) | null;
  /**
   * Where the metrics go, n values each: a whole-window part is computed straight into them.
   * Absent: a whole-window part's metrics are the backend's own arrays (no copy); otherwise
   * arrays in ordinary memory are allocated.
   */
  metrics?: MetricArrays;
  /** Refuse a non-finite result with NonFiniteResultError naming its row (output paths; needs locate). */
  requireFinite?: boolean;
  /** The calling thread has other work meanwhile (reading the next block): the cpu backend offloads (CpuBackendOptions.offload). */
  offload?: boolean;
}

export interface WindowScores {
  /** In window order. */
  metrics: MetricArrays;
  admissible: Uint8Array;
  /** The backend of each part, in part order. */
  backends: BackendName[];
}

/** The engine's one way to a backend instance (what the registry needs to make one goes here). */
function backendNamed(name: BackendName, options: BackendOptions | undefined): Promise<ScoreBackend> {
  return getBackend(name, options);
}

/** The options of a caller that reads its next block meanwhile: the cpu backend computes on its workers only. */
function offloaded(options: BackendOptions | undefined): BackendOptions {
  return { ...options, cpu: { ...options?.cpu, offload: true } };
}

/** Checks each shape once, in part order, against the configuration. */
function checkShapes(w: ScoringWindow, config: ResolvedConfig): void {
  const locate = w.locate;
  for (const part of w.parts) {
    if (locate === null) {
      checkConfigAgainstShape(config, part.batch.m);
      continue;
    }
    const first = part.rows === null ? 0 : part.rows[0];
    checkRecordShape(config, part.batch.m, () => locate(first));
  }
}

function noMetrics(): MetricArrays {
  const z = new Float64Array(0);
  return { evb: z, cr: z, ts: z, es: z, pd: z, cci: z };
}

/** Scores the window and offers each row to `selector`. */
export async function scoreWindow(w: ScoringWindow, s: ScoreSettings, selector: GroupSelector): Promise<WindowScores> {
  checkShapes(w, s.config);
  const n = w.n;
  let metrics: MetricArrays | null = w.metrics ?? null;
  if (metrics === null && !(w.parts.length === 1 && w.parts[0].rows === null)) metrics = allocMetrics(n);
  const backends: BackendName[] = [];
  const backendOptions = w.offload ? offloaded(s.backendOptions) : s.backendOptions;
  for (const part of w.parts) {
    const name = await chooseBackend(s.backend, part.batch, backendOptions);
    backends.push(name);
    const backend = await backendNamed(name, backendOptions);
    const rows = part.rows;
    const into = rows === null ? (metrics ?? undefined) : part.out;
    const options: ComputeOptions = into === undefined ? s.compute : { ...s.compute, out: into };
    const out = part.batch.n === 0 ? noMetrics() : await backend.computeMetrics(part.batch, s.config, options);
    if (rows === null) {
      metrics = out;
      continue;
    }
    const m = metrics!;
    for (let k = 0; k < rows.length; k++) {
      const j = rows[k];
      m.evb[j] = out.evb[k];
      m.cr[j] = out.cr[k];
      m.ts[j] = out.ts[k];
      m.es[j] = out.es[k];
      m.pd[j] = out.pd[k];
      m.cci[j] = out.cci[k];
    }
  }
  // A window with no parts has no rows.
  metrics ??= noMetrics();
  if (w.requireFinite) {
    const bad = firstNonFinite(metrics, n);
    if (bad) throw new NonFiniteResultError(bad.metric, bad.value, w.locate!(bad.index));
  }
  const admissible = new Uint8Array(n);
  const { cci } = metrics;
  const groups = w.groups,
    base = w.baseScore,
    first = w.firstIndex;
  for (let j = 0; j < n; j++) {
    admissible[j] = selector.offer(groups === null ? 0 : groups[j], first + j, cci[j], base === null ? Number.NaN : base[j]) ? 1 : 0;
  }
  return { metrics, admissible, backends };
}

/**
 * Starts the cpu backend's workers when it is the chosen backend, so that they boot while the
 * caller opens its input (a GPU device is not opened ahead: an input that fails its first row
 * would waste it). `offload`: the instance the caller's offloading windows will use.
 */
export async function warmUpBackend(s: ScoreSettings, offload = false): Promise<void> {
  if (s.backend === 'cpu') (await backendNamed('cpu', offload ? offloaded(s.backendOptions) : s.backendOptions)).warmUp?.();
}
