/**
 * Scores validated records of mixed shapes: buckets them by shape, runs each bucket as one
 * batch, and offers every result to a selector shared across buckets (and, in the CLI, across
 * windows of a stream), so selection spans a group whatever shapes its members have.
 */
import { allocMetrics, type MetricArrays } from '../core/batch.js';
import { checkRecordShape, toResolvedConfig, type EcrConfig, type ResolvedConfig } from '../core/config.js';
import { UsageError } from '../core/errors.js';
import type { BackendChoice, BackendName, ComputeOptions } from '../backends/backend.js';
import { chooseBackend, getBackend, type BackendOptions } from '../backends/registry.js';
import { GroupSelector } from '../core/select.js';
import { buildAudit, checkOptionsObject, type AuditTrace } from './score-batch.js';
import { metricValuesAt, type MetricValues } from '../core/batch.js';
import { ShapeBucket, shapeKey } from './packer.js';
import { checkRecord, type CheckedRecord, type TrajectoryRecord } from './record.js';
import { GroupKeys } from './group-keys.js';

export { GroupKeys };

export interface WindowScores {
  /** Metrics in window order (record j of the window at position j). */
  metrics: MetricArrays;
  admissible: Uint8Array;
  groupIndex: Int32Array;
  backends: Set<BackendName>;
}

/** Line number (or index) of a record, for error messages. */
export type Locate = (inputIndex: number) => { line?: number; record?: number };

/**
 * Scores one window of records whose first record has input index `firstIndex`. Offers each to
 * `selector` under its global input index.
 */
export async function scoreWindow(
  records: readonly CheckedRecord[],
  firstIndex: number,
  config: ResolvedConfig,
  backend: BackendChoice,
  groups: GroupKeys,
  selector: GroupSelector,
  locate: Locate = (i) => ({ record: i }),
  compute: ComputeOptions = {},
  backendOptions?: BackendOptions,
): Promise<WindowScores> {
  const n = records.length;
  const metrics = allocMetrics(n);
  const admissible = new Uint8Array(n);
  const groupIndex = new Int32Array(n);
  const buckets = new Map<string, ShapeBucket>();
  records.forEach((r, j) => {
    const key = shapeKey(r);
    let b = buckets.get(key);
    if (!b) {
      checkRecordShape(config, r.m, () => ({ ...locate(firstIndex + j), id: String(r.id) }));
      b = new ShapeBucket(r, n);
      buckets.set(key, b);
    }
    groupIndex[j] = groups.indexOf(r.group);
    b.add(r, j, groupIndex[j]);
  });

  const used = new Set<BackendName>();
  for (const bucket of buckets.values()) {
    const batch = bucket.toBatch();
    const name = await chooseBackend(backend, batch, backendOptions);
    used.add(name);
    const out = await (await getBackend(name, backendOptions)).computeMetrics(batch, config, compute);
    bucket.indices.forEach((j, k) => {
      metrics.evb[j] = out.evb[k]; metrics.cr[j] = out.cr[k]; metrics.ts[j] = out.ts[k];
      metrics.es[j] = out.es[k]; metrics.pd[j] = out.pd[k]; metrics.cci[j] = out.cci[k];
    });
  }
  for (let j = 0; j < n; j++) {
    admissible[j] = selector.offer(groupIndex[j], firstIndex + j, metrics.cci[j], records[j].baseScore ?? Number.NaN) ? 1 : 0;
  }
  return { metrics, admissible, groupIndex, backends: used };
}

export interface RecordResult extends MetricValues {
  id: string | number;
  group: string | number | null;
  admissible: boolean;
  selected: boolean;
}

export interface RecordsResult {
  results: RecordResult[];
  /** One audit trace per group, in order of first appearance. */
  audits: AuditTrace[];
  backends: BackendName[];
}

/**
 * The object-level API: a handful of trajectories in, per-trajectory metrics, the selection per
 * group and an audit trace per group out. Shapes may differ between records.
 */
export async function scoreRecords(
  records: readonly TrajectoryRecord[],
  config?: EcrConfig | ResolvedConfig | unknown,
  options: { backend?: BackendChoice; compact?: 'unorm16'; backendOptions?: BackendOptions } = {},
): Promise<RecordsResult> {
  if (!Array.isArray(records)) throw new UsageError(`scoreRecords: records must be an array of trajectory objects, got ${records === null ? 'null' : typeof records}`);
  checkOptionsObject('scoreRecords', options);
  const cfg = toResolvedConfig(config);
  const checked = records.map((r, i) => checkRecord(r, { record: i }, i));
  const groups = new GroupKeys();
  const selector = new GroupSelector(cfg.tau);
  const w = await scoreWindow(checked, 0, cfg, options.backend ?? 'auto', groups, selector, undefined, options.compact ? { compact: options.compact } : {}, options.backendOptions);
  const selections = selector.results();
  const selected = new Set(selections.map((s) => s.selectedIndex));
  const groupNames = groups.keys;
  const results: RecordResult[] = checked.map((r, j) => ({
    id: r.id, group: r.group, ...metricValuesAt(w.metrics, j), admissible: w.admissible[j] === 1, selected: selected.has(j),
  }));
  const membersOf = selections.map(() => [] as number[]);
  checked.forEach((_, j) => membersOf[w.groupIndex[j]].push(j));
  const audits = selections.map((sel) => buildAudit({
    selection: sel, members: membersOf[sel.group], metrics: w.metrics, admissible: w.admissible, config: cfg,
    idOf: (j) => String(checked[j].id), groupName: String(groupNames[sel.group]),
    baseScoreOf: (j) => checked[j].baseScore ?? Number.NaN,
  }));
  return { results, audits, backends: [...w.backends] };
}
