/**
 * The object-level API, scoreRecords: trajectories of mixed shapes as one window, packed per
 * shape (recordsWindow, which calibration shares) for the window scorer, whose selector spans
 * the shapes, so selection spans a group whatever shapes its members have.
 */
import { toResolvedConfig, type EcrConfig, type ResolvedConfig } from '../core/config.js';
import { UsageError } from '../core/errors.js';
import type { BackendChoice, BackendName } from '../backends/backend.js';
import type { BackendOptions } from '../backends/options.js';
import { GroupSelector } from '../core/select.js';
import { buildAudit, checkOptionsObject, type AuditTrace } from './score-batch.js';
import { metricValuesAt, type MetricValues } from '../core/batch.js';
import { ShapeBucket, ShapeBuckets, recordShapeKey } from './shape-buckets.js';
import { checkRecord, type CheckedRecord, type TrajectoryRecord } from './record.js';
import { GroupKeys } from './group-keys.js';
import { scoreWindow, type ScoringWindow } from './window-scorer.js';

/**
 * Checked records as a window for the window scorer: packed per shape, each record's group
 * interned in `groups`; record j is candidate `firstIndex + j` and is named "record
 * firstIndex + j" in messages.
 */
export function recordsWindow(records: readonly CheckedRecord[], firstIndex: number, groups: GroupKeys): ScoringWindow {
  const n = records.length;
  const buckets = new ShapeBuckets<ShapeBucket>();
  const groupIndex = new Int32Array(n);
  const baseScore = new Float64Array(n);
  for (let j = 0; j < n; j++) {
    const r = records[j];
    groupIndex[j] = groups.indexOf(r.group);
    baseScore[j] = r.baseScore ?? Number.NaN;
    buckets.get(recordShapeKey(r), () => ShapeBucket.of(r, n)).addRecord(r, j);
  }
  return {
    n,
    firstIndex,
    groups: groupIndex,
    baseScore,
    parts: buckets.used.map((b) => ({ batch: b.toBatch(), rows: b.rows() })),
    locate: (j) => ({ record: firstIndex + j, id: String(records[j].id) }),
  };
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

/** Options of scoreRecords: the backend, as for scoreBatch. */
export interface ScoreRecordsOptions {
  backend?: BackendChoice;
  /** Upload E to the GPU as unorm16 (webgpu only). */
  compact?: 'unorm16';
  backendOptions?: BackendOptions;
}

/**
 * The object-level API: a handful of trajectories in, per-trajectory metrics, the selection per
 * group and an audit trace per group out. Shapes may differ between records.
 */
export async function scoreRecords(
  records: readonly TrajectoryRecord[],
  // eslint-disable-next-line @typescript-eslint/no-redundant-type-constituents -- the union names what callers pass; `unknown` admits untyped JSON, which is checked
  config?: EcrConfig | ResolvedConfig | unknown,
  options: ScoreRecordsOptions = {},
): Promise<RecordsResult> {
  if (!Array.isArray(records))
    throw new UsageError(`scoreRecords: records must be an array of trajectory objects, got ${records === null ? 'null' : typeof records}`);
  checkOptionsObject('scoreRecords', options);
  const cfg = toResolvedConfig(config);
  const checked = records.map((r, i) => checkRecord(r, { record: i }, i));
  const groups = new GroupKeys();
  const selector = new GroupSelector(cfg.tau);
  const window = recordsWindow(checked, 0, groups);
  const w = await scoreWindow(
    window,
    { config: cfg, backend: options.backend ?? 'auto', compute: options.compact ? { compact: options.compact } : {}, backendOptions: options.backendOptions },
    selector,
  );
  const selections = selector.results();
  const selected = new Set(selections.map((s) => s.selectedIndex));
  const groupNames = groups.keys;
  const results: RecordResult[] = checked.map((r, j) => ({
    id: r.id,
    group: r.group,
    ...metricValuesAt(w.metrics, j),
    admissible: w.admissible[j] === 1,
    selected: selected.has(j),
  }));
  const membersOf = selections.map(() => [] as number[]);
  checked.forEach((_, j) => membersOf[window.groups![j]].push(j));
  const audits = selections.map((sel) =>
    buildAudit({
      selection: sel,
      members: membersOf[sel.group],
      metrics: w.metrics,
      admissible: w.admissible,
      config: cfg,
      idOf: (j) => String(checked[j].id),
      groupName: String(groupNames[sel.group]),
      baseScoreOf: (j) => checked[j].baseScore ?? Number.NaN,
    }),
  );
  return { results, audits, backends: [...new Set(w.backends)] };
}
