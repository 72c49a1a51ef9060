/**
 * `scoreBatch`: validate, compute metrics on a backend, derive admissibility and the per-group
 * selection, and offer an audit trace per group.
 */
import { metricValuesAt, validateBatch, type Batch, type MetricArrays, type MetricValues } from '../core/batch.js';
import { toResolvedConfig, type EcrConfig, type ResolvedConfig, type Weights } from '../core/config.js';
import type { BackendChoice, BackendName } from '../backends/backend.js';
import type { BackendOptions } from '../backends/options.js';
import { UsageError } from '../core/errors.js';
import { GroupSelector, type GroupSelection, type SelectionReason } from '../core/select.js';
import { scoreWindow } from './window-scorer.js';

export interface ScoreOptions {
  backend?: BackendChoice;
  /** Options of the backend instances to score on (adapter, threads, ...); default: the defaults. */
  backendOptions?: BackendOptions;
  /** Return the shrunk covariance matrices in `metrics.covariance`. */
  covariance?: boolean;
  /** Upload E to the GPU as unorm16 (webgpu only; ignored by the CPU backends, which read E exactly). */
  compact?: 'unorm16';
  /** Skip validation (the caller has validated, e.g. the JSONL reader). */
  trusted?: boolean;
  /** Optional ids for the audit trace, [n]. */
  ids?: readonly string[];
  /** Optional group names for the audit trace, indexed by group index. */
  groupNames?: readonly string[];
}

export interface CandidateAudit extends MetricValues {
  index: number;
  id: string;
  admissible: boolean;
  baseScore: number;
}

export interface AuditTrace {
  group: string;
  selectedIndex: number;
  selectedId: string;
  reason: SelectionReason;
  tau: number;
  weights: NamedWeights;
  baseScore: 'cci' | 'provided';
  candidates: CandidateAudit[];
}

export interface BatchResult {
  backend: BackendName;
  config: ResolvedConfig;
  metrics: MetricArrays;
  admissible: Uint8Array;
  /** 1 for the selected trajectory of each group. */
  selected: Uint8Array;
  /** One entry per group index (size 0 and selectedIndex -1 for indices with no members). */
  groups: GroupSelection[];
  /** Builds the audit trace of one group (on demand: a million-row batch needs none). */
  audit(group: number): AuditTrace;
}

/** The CCI weights by name, as audit traces and results show them. */
export interface NamedWeights {
  alpha: number;
  beta: number;
  gamma: number;
  delta: number;
  epsilon: number;
}

export function weightsObject(w: Weights): NamedWeights {
  return { alpha: w[0], beta: w[1], gamma: w[2], delta: w[3], epsilon: w[4] };
}

export async function scoreBatch(batch: Batch, config?: EcrConfig | ResolvedConfig, options: ScoreOptions = {}): Promise<BatchResult> {
  checkOptionsObject('scoreBatch', options);
  const cfg = toResolvedConfig(config);
  if (!options.trusted) validateBatch(batch);
  const selector = new GroupSelector(cfg.tau);
  // The batch is one window of one shape: the backend's own arrays are the result (no copy).
  const w = await scoreWindow(
    {
      n: batch.n,
      parts: [{ batch, rows: null }],
      firstIndex: 0,
      groups: batch.groups ?? null,
      baseScore: batch.baseScore ?? null,
      locate: null,
    },
    {
      config: cfg,
      backend: options.backend ?? 'auto',
      compute: { covariance: options.covariance, compact: options.compact },
      backendOptions: options.backendOptions,
    },
    selector,
  );
  return batchResult(batch, cfg, w.backends[0], w.metrics, w.admissible, selector, options);
}

/** JavaScript callers can pass anything: `null` options must be a UsageError, not a TypeError on `.backend`. */
export function checkOptionsObject(fn: string, options: unknown): void {
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new UsageError(`${fn}: options must be an object, got ${options === null ? 'null' : Array.isArray(options) ? 'an Array' : typeof options}`);
  }
}

/** The selection and the audit of a scored batch whose rows were offered to `selector`. */
function batchResult(
  batch: Batch,
  cfg: ResolvedConfig,
  backend: BackendName,
  out: MetricArrays,
  admissible: Uint8Array,
  selector: GroupSelector,
  options: ScoreOptions,
): BatchResult {
  const n = batch.n;
  const groups = selector.results();
  const selected = new Uint8Array(n);
  for (const g of groups) if (g.selectedIndex >= 0) selected[g.selectedIndex] = 1;
  const metrics: MetricArrays = { evb: out.evb, cr: out.cr, ts: out.ts, es: out.es, pd: out.pd, cci: out.cci };
  if (out.covariance) metrics.covariance = out.covariance;
  const idOf = (i: number) => options.ids?.[i] ?? String(i);
  const groupOf = (i: number) => (batch.groups ? batch.groups[i] : 0);
  return {
    backend,
    config: cfg,
    metrics,
    admissible,
    selected,
    groups,
    audit(group: number): AuditTrace {
      const sel = groups[group];
      if (!sel) throw new UsageError(`audit: no group with index ${group} (the batch has group indices 0..${groups.length - 1})`);
      const members: number[] = [];
      for (let i = 0; i < n; i++) if (groupOf(i) === group) members.push(i);
      return buildAudit({
        selection: sel,
        members,
        metrics,
        admissible,
        config: cfg,
        idOf,
        groupName: options.groupNames?.[group] ?? String(group),
        baseScoreOf: (i) => (batch.baseScore ? batch.baseScore[i] : Number.NaN),
      });
    },
  };
}

export interface AuditSource {
  selection: GroupSelection;
  /** Indices (into `metrics`) of the group's members, in input order. */
  members: readonly number[];
  metrics: MetricArrays;
  admissible: Uint8Array;
  config: ResolvedConfig;
  idOf: (i: number) => string;
  groupName: string;
  /** A member's provided base score, NaN where none was given. */
  baseScoreOf: (i: number) => number;
}

/** The audit trace of one group: who was selected, why, and every candidate's numbers. */
export function buildAudit(src: AuditSource): AuditTrace {
  let provided = false;
  const candidates = src.members.map((i): CandidateAudit => {
    const b = src.baseScoreOf(i);
    if (!Number.isNaN(b)) provided = true;
    return {
      index: i,
      id: src.idOf(i),
      ...metricValuesAt(src.metrics, i),
      admissible: src.admissible[i] === 1,
      baseScore: Number.isNaN(b) ? src.metrics.cci[i] : b,
    };
  });
  const sel = src.selection;
  return {
    group: src.groupName,
    selectedIndex: sel.selectedIndex,
    selectedId: sel.selectedIndex >= 0 ? src.idOf(sel.selectedIndex) : '',
    reason: sel.reason,
    tau: src.config.tau,
    weights: weightsObject(src.config.weights),
    baseScore: provided ? 'provided' : 'cci',
    candidates,
  };
}
