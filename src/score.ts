/**
 * `scoreBatch`: validate, compute metrics on a backend, derive admissibility and the per-group
 * selection, and offer an audit trace per group.
 */
import { validateBatch, type Batch, type MetricArrays } from './batch.js';
import { checkConfigAgainstShape, toResolvedConfig, type EcrConfig, type ResolvedConfig, type Weights } from './config.js';
import type { BackendChoice, BackendName } from './backends/backend.js';
import { chooseBackend, getBackend } from './backends/registry.js';
import { GroupSelector, type GroupSelection, type SelectionReason } from './select.js';

export interface ScoreOptions {
  backend?: BackendChoice;
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

export interface CandidateAudit {
  index: number;
  id: string;
  EVB: number;
  CR: number;
  TS: number;
  ES: number;
  PD: number;
  CCI: number;
  admissible: boolean;
  baseScore: number;
}

export interface AuditTrace {
  group: string;
  selectedIndex: number;
  selectedId: string;
  reason: SelectionReason;
  tau: number;
  weights: { alpha: number; beta: number; gamma: number; delta: number; epsilon: number };
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

export function weightsObject(w: Weights) {
  return { alpha: w[0], beta: w[1], gamma: w[2], delta: w[3], epsilon: w[4] };
}

export async function scoreBatch(batch: Batch, config?: EcrConfig | ResolvedConfig, options: ScoreOptions = {}): Promise<BatchResult> {
  const cfg = toResolvedConfig(config);
  if (!options.trusted) validateBatch(batch);
  checkConfigAgainstShape(cfg, batch.m);
  const name = await chooseBackend(options.backend ?? 'auto', batch);
  const backend = await getBackend(name);
  const out = batch.n === 0 ? emptyOutput() : await backend.computeMetrics(batch, cfg, { covariance: options.covariance, compact: options.compact });
  return finishBatch(batch, cfg, name, out, options);
}

function emptyOutput(): MetricArrays {
  const z = new Float64Array(0);
  return { evb: z, cr: z, ts: z, es: z, pd: z, cci: z };
}

/** Derives admissibility, selection and audit from computed metrics. */
export function finishBatch(
  batch: Batch,
  cfg: ResolvedConfig,
  backend: BackendName,
  out: MetricArrays & { admissible?: Uint8Array; groupSelected?: Int32Array },
  options: ScoreOptions = {},
): BatchResult {
  const n = batch.n;
  const selector = new GroupSelector(cfg.tau);
  const admissible = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const g = batch.groups ? batch.groups[i] : 0;
    admissible[i] = selector.offer(g, i, out.cci[i], batch.baseScore ? batch.baseScore[i] : Number.NaN) ? 1 : 0;
  }
  const groups = selector.results();
  const selected = new Uint8Array(n);
  for (const g of groups) if (g.selectedIndex >= 0) selected[g.selectedIndex] = 1;
  const metrics: MetricArrays = { evb: out.evb, cr: out.cr, ts: out.ts, es: out.es, pd: out.pd, cci: out.cci };
  if (out.covariance) metrics.covariance = out.covariance;
  const idOf = (i: number) => options.ids?.[i] ?? String(i);
  return {
    backend, config: cfg, metrics, admissible, selected, groups,
    audit(group: number): AuditTrace {
      const sel = groups[group];
      if (!sel) throw new RangeError(`no group with index ${group}`);
      const candidates: CandidateAudit[] = [];
      let provided = false;
      for (let i = 0; i < n; i++) {
        if ((batch.groups ? batch.groups[i] : 0) !== group) continue;
        const b = batch.baseScore ? batch.baseScore[i] : Number.NaN;
        if (!Number.isNaN(b)) provided = true;
        candidates.push({
          index: i, id: idOf(i), EVB: metrics.evb[i], CR: metrics.cr[i], TS: metrics.ts[i], ES: metrics.es[i], PD: metrics.pd[i],
          CCI: metrics.cci[i], admissible: admissible[i] === 1, baseScore: Number.isNaN(b) ? metrics.cci[i] : b,
        });
      }
      return {
        group: options.groupNames?.[group] ?? String(group),
        selectedIndex: sel.selectedIndex,
        selectedId: sel.selectedIndex >= 0 ? idOf(sel.selectedIndex) : '',
        reason: sel.reason,
        tau: cfg.tau,
        weights: weightsObject(cfg.weights),
        baseScore: provided ? 'provided' : 'cci',
        candidates,
      };
    },
  };
}
