/**
 * Reads the input of `ecr calibrate` and `ecr maturity` (ECR-SPEC section 8): JSONL, Parquet or
 * Arrow whose records are either raw trajectories (section 5; scored here with the given
 * configuration, a window at a time as `ecr score` scores them) or records already scored (`ecr
 * score` output, or the audit log of section 8.1), with optional labels and the
 * dialogue/turn/variant keys the maturity checks use. The input is streamed (labelled-source.ts);
 * the records are kept, as the statistics need every one at once.
 */
import path from 'node:path';
import type { ResolvedConfig } from '../core/config.js';
import { InputError, type InputLocation } from '../core/errors.js';
import { GroupSelector } from '../core/select.js';
import { formatOf, type DataFormat } from '../engine/columnar/format.js';
import type { BackendChoice } from '../backends/backend.js';
import type { BackendOptions } from '../backends/options.js';
import { checkRecord, type CheckedRecord } from '../engine/record.js';
import { GroupKeys } from '../engine/group-keys.js';
import { recordsWindow } from '../engine/score-records.js';
import { scoreWindow, type ScoreSettings } from '../engine/window-scorer.js';
import { openLabelledSource } from './labelled-source.js';

export const METRIC_KEYS = ['EVB', 'CR', 'TS', 'ES', 'PD'] as const;
export type MetricVector = [number, number, number, number, number];

export interface CalibrationRecord {
  /** 1-based line (JSONL) or row (Parquet, Arrow). */
  line: number;
  /** Where the record is, for error messages: its row in a Parquet or Arrow file (absent: `line`). */
  at?: InputLocation;
  id: string | number;
  group: string | number | null;
  /** Dense group index, in order of first appearance. */
  groupIndex: number;
  /** EVB, CR, TS, ES, PD. */
  metrics: MetricVector;
  /** NaN = rank by CCI, as in selection. */
  baseScore: number;
  label: boolean | null;
  dialogue?: string | number;
  turn?: number;
  variant?: string | number;
  /** Raw trajectories only. */
  steps?: number[][];
  embeddings?: number[][];
}

export interface CalibrationSet {
  kind: 'trajectories' | 'scored';
  file: string;
  sha256: string;
  records: CalibrationRecord[];
  groupCount: number;
  labelled: number;
  /** Name of the label field looked up ("correct" unless --labels). */
  labelField: string;
}

export interface ReadOptions {
  config: ResolvedConfig;
  /** Label field name (default "correct"), looked up at the top level, then in `meta`. */
  labels?: string;
  backend?: BackendChoice;
  /** Options of the backend instances that score raw trajectories; default: the defaults. */
  backendOptions?: BackendOptions;
  /** Input format (default: by the file's extension, as ecr score decides it). */
  format?: DataFormat;
}

/** Fields of a scored line besides the label field (ECR-SPEC sections 5 and 8.1). */
const SCORED_FIELDS = new Set([
  'id',
  'group',
  'requestId',
  ...METRIC_KEYS,
  'CCI',
  'admissible',
  'selected',
  'pCorrect',
  'reason',
  'tau',
  'time',
  'dialogue',
  'turn',
  'variant',
  'meta',
  'correct',
  'messages',
]);
/** Calibration fields a raw trajectory may carry besides ECR-SPEC section 5's. */
const EXTRA_FIELDS = ['dialogue', 'turn', 'variant', 'correct'];
/** Scored CCIs from a float32 path agree with a float64 recombination within 1e-5 (section 7). */
const CCI_TOLERANCE = 1e-5;

/** Raw trajectories scored at a time: `ecr score`'s default window, so that `auto` picks a backend as it does there. */
const SCORING_WINDOW = 8192;

/** A field at the top level, else in `meta` (so that files `ecr score` accepts can carry it). */
function lookup(o: Record<string, unknown>, key: string): { value: unknown; field: string } | undefined {
  if (o[key] !== undefined) return { value: o[key], field: key };
  const meta = o.meta;
  if (meta !== null && typeof meta === 'object' && !Array.isArray(meta) && (meta as Record<string, unknown>)[key] !== undefined) {
    return { value: (meta as Record<string, unknown>)[key], field: `meta.${key}` };
  }
  return undefined;
}

function keyValue(o: Record<string, unknown>, key: string, at: InputLocation): string | number | undefined {
  const f = lookup(o, key);
  if (!f) return undefined;
  if (typeof f.value !== 'string' && !(typeof f.value === 'number' && Number.isFinite(f.value))) {
    throw new InputError(`must be a string or number, got ${JSON.stringify(f.value)}`, { ...at, field: f.field });
  }
  return f.value;
}

/** A record's place for an error message: its line, or its row in a columnar file. */
export function whereIs(r: CalibrationRecord): InputLocation {
  return r.at ?? { line: r.line };
}

export function weightedCci(metrics: MetricVector, w: readonly number[]): number {
  return w[0] * (1 - metrics[0]) + w[1] * (1 - metrics[1]) + w[2] * metrics[2] + w[3] * metrics[3] + w[4] * (1 - metrics[4]);
}

/** Reads, validates and (for raw trajectories) scores the input. */
export async function readCalibrationSet(file: string, opts: ReadOptions): Promise<CalibrationSet> {
  const format = formatOf(file, opts.format);
  const source = await openLabelledSource(file, format);
  const labelField = opts.labels ?? 'correct';
  const groupIndex = new Map<string, number>();
  const records: CalibrationRecord[] = [];
  const identity = new GroupIdentity();
  const scoring = new TrajectoryScoring(records, { config: opts.config, backend: opts.backend ?? 'auto', compute: {}, backendOptions: opts.backendOptions });
  let kind: CalibrationSet['kind'] | null = null;

  // One record: a JSONL line's object, or a Parquet/Arrow row's (`here` says which).
  const add = (o: Record<string, unknown>, line: number, here: { line: number } | { row: number }) => {
    const unit = 'line' in here ? 'line' : 'row';
    const lineKind = o.steps !== undefined ? 'trajectories' : o.CCI !== undefined ? 'scored' : null;
    if (lineKind === null) throw new InputError('is neither a trajectory (no "steps") nor a scored record (no "CCI")', { ...here, field: '(record)' });
    if (kind !== null && lineKind !== kind)
      throw new InputError(
        `is a ${lineKind === 'scored' ? 'scored record' : 'trajectory'}, but earlier ${unit}s are ${kind === 'scored' ? 'scored records' : 'trajectories'}; give one kind per file`,
        { ...here, field: '(record)' },
      );
    kind = lineKind;

    const id = o.id === undefined ? line : o.id;
    if (typeof id !== 'string' && typeof id !== 'number')
      throw new InputError(`must be a string or number, got ${JSON.stringify(id)}`, { ...here, field: 'id' });
    const at = { ...here, id: String(id) };
    const labelFound = lookup(o, labelField);
    let label: boolean | null = null;
    if (labelFound) {
      if (typeof labelFound.value !== 'boolean')
        throw new InputError(`label must be true or false, got ${JSON.stringify(labelFound.value)}`, { ...at, field: labelFound.field });
      label = labelFound.value;
    }
    const dialogue = keyValue(o, 'dialogue', at);
    const variant = keyValue(o, 'variant', at);
    const turnValue = keyValue(o, 'turn', at);
    if (turnValue !== undefined && (typeof turnValue !== 'number' || !Number.isInteger(turnValue))) {
      throw new InputError(`must be an integer, got ${JSON.stringify(turnValue)}`, { ...at, field: lookup(o, 'turn')!.field });
    }
    if ((dialogue === undefined) !== (turnValue === undefined)) {
      throw new InputError('"dialogue" and "turn" go together: give both or neither', { ...at, field: dialogue === undefined ? 'turn' : 'dialogue' });
    }

    const base = { line, at: here, id, label, dialogue, turn: turnValue, variant };
    if (lineKind === 'trajectories') {
      const stripped: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(o)) if (!EXTRA_FIELDS.includes(k) && k !== labelField) stripped[k] = v;
      const checked = checkRecord(stripped, here, line);
      const g = indexOfGroup(groupIndex, checked.group);
      identity.check(g, checked.group, checked.id, false, here);
      scoring.add(checked, stripped.id === undefined ? undefined : id);
      records.push({
        ...base,
        id: checked.id,
        group: checked.group,
        groupIndex: g,
        metrics: [0, 0, 0, 0, 0],
        baseScore: checked.baseScore ?? Number.NaN,
        steps: checked.steps,
        embeddings: checked.embeddings,
      });
    } else {
      for (const k of Object.keys(o))
        if (!SCORED_FIELDS.has(k) && k !== labelField)
          throw new InputError(`unknown field in a scored record (known: ${[...SCORED_FIELDS].join(', ')})`, { ...at, field: k });
      const metrics = METRIC_KEYS.map((k) => {
        const x = o[k];
        if (typeof x !== 'number' || !Number.isFinite(x) || x < 0 || x > 1)
          throw new InputError(`must be a number in [0, 1], got ${JSON.stringify(x)}`, { ...at, field: k });
        return x;
      }) as MetricVector;
      const cci = o.CCI;
      if (typeof cci !== 'number' || !Number.isFinite(cci))
        throw new InputError(`must be a finite number, got ${JSON.stringify(cci)}`, { ...at, field: 'CCI' });
      const expected = weightedCci(metrics, opts.config.weights);
      if (Math.abs(expected - cci) > CCI_TOLERANCE) {
        throw new InputError(
          `${cci} is not the configured weights' combination of this record's metrics (${expected}); pass the --config the records were scored with`,
          { ...at, field: 'CCI' },
        );
      }
      const group = o.group === undefined || o.group === null ? null : o.group;
      if (group !== null && typeof group !== 'string' && typeof group !== 'number')
        throw new InputError(`must be a string or number, got ${JSON.stringify(group)}`, { ...at, field: 'group' });
      if (o.selected !== undefined && typeof o.selected !== 'boolean')
        throw new InputError(`must be true or false, got ${JSON.stringify(o.selected)}`, { ...at, field: 'selected' });
      const g = indexOfGroup(groupIndex, group);
      identity.check(g, group, id, o.selected === true, here);
      records.push({ ...base, group, groupIndex: g, metrics, baseScore: Number.NaN });
    }
  };

  for await (const { value, number, here } of source.items) {
    add(value, number, here);
    if (scoring.pending >= SCORING_WINDOW) await scoring.flush();
  }
  await scoring.flush();

  if (records.length === 0) throw new InputError(`${file === '-' ? 'stdin' : file} has no records (${format === 'jsonl' ? 'no non-blank lines' : 'no rows'})`);
  scoring.finish();
  return {
    kind: kind!,
    file: file === '-' ? 'stdin' : path.basename(file),
    sha256: source.sha256(),
    records,
    groupCount: groupIndex.size,
    labelled: records.filter((r) => r.label !== null).length,
    labelField,
  };
}

/**
 * Scores the raw trajectories a window at a time, writing each one's metrics into its record. A
 * scoring failure (a configuration that does not fit the records' m, an unavailable backend) is
 * reported only once every record has been read and checked, as when the whole input was scored
 * at its end: an invalid record later in the input is reported first.
 */
class TrajectoryScoring {
  private window: CheckedRecord[] = [];
  /** Each pending trajectory's id as given (undefined: none; messages then name it by index). */
  private ids: (string | number | undefined)[] = [];
  private first = 0;
  /** Boxed, so that a falsy thrown value still counts as a failure. */
  private failure: { error: unknown } | null = null;
  private readonly groups = new GroupKeys();
  private readonly selector: GroupSelector;

  constructor(
    private readonly records: CalibrationRecord[],
    private readonly settings: ScoreSettings,
  ) {
    this.selector = new GroupSelector(settings.config.tau);
  }

  get pending(): number {
    return this.window.length;
  }

  /** A trajectory, whose record is the next in `records`. */
  add(r: CheckedRecord, id: string | number | undefined): void {
    this.window.push(r);
    this.ids.push(id);
  }

  async flush(): Promise<void> {
    const rs = this.window,
      ids = this.ids,
      first = this.first;
    if (rs.length === 0) return;
    this.window = [];
    this.ids = [];
    this.first += rs.length;
    if (this.failure !== null) return;
    try {
      const w = recordsWindow(rs, first, this.groups);
      // Trajectories are named as the object API names them: by their index, and the id given or that index.
      w.locate = (j) => ({ record: first + j, id: String(ids[j] ?? first + j) });
      const { metrics: m } = await scoreWindow(w, this.settings, this.selector);
      for (let j = 0; j < rs.length; j++) this.records[first + j].metrics = [m.evb[j], m.cr[j], m.ts[j], m.es[j], m.pd[j]];
    } catch (err) {
      this.failure = { error: err };
    }
  }

  /** Throws the scoring failure, if there was one. */
  finish(): void {
    if (this.failure !== null) throw this.failure.error;
  }
}

const MERGED_LOGS =
  'audit logs from gateways that took the group from the client\'s x-request-id merged every request that sent the same one into one group (one request\'s lines share its "time": re-key the group by it)';

/**
 * Refuses what a merged group looks like: an id seen twice in one group, or a group with two
 * selected records (selection picks one per group, so lift and fallback over such a group would
 * be computed on a mixture). Holds one id -> line map per group, keyed by the id values the
 * records keep anyway, and one line per group for `selected`: no line text.
 */
class GroupIdentity {
  private readonly ids: Map<string | number, number>[] = [];
  private readonly selectedAt: number[] = [];

  check(g: number, group: string | number | null, id: string | number, selected: boolean, here: { line: number } | { row: number }): void {
    const unit = 'line' in here ? 'line' : 'row';
    const n = 'line' in here ? here.line : here.row;
    const name = group === null ? 'the shared group (no "group")' : `group ${JSON.stringify(group)}`;
    const ids = (this.ids[g] ??= new Map());
    const first = ids.get(id);
    if (first !== undefined) {
      throw new InputError(`${name} has id ${JSON.stringify(id)} twice (${unit}s ${first} and ${n}); a (group, id) pair must be unique, and ${MERGED_LOGS}`, {
        ...here,
        id: String(id),
        field: 'id',
      });
    }
    ids.set(id, n);
    if (!selected) return;
    const before = this.selectedAt[g];
    if (before !== undefined) {
      throw new InputError(`${name} has a second selected record (${unit}s ${before} and ${n}); selection picks one per group, and ${MERGED_LOGS}`, {
        ...here,
        id: String(id),
        field: 'selected',
      });
    }
    this.selectedAt[g] = n;
  }
}

function indexOfGroup(map: Map<string, number>, group: string | number | null): number {
  const k = group === null ? 'none' : `${typeof group}:${group}`;
  let i = map.get(k);
  if (i === undefined) {
    i = map.size;
    map.set(k, i);
  }
  return i;
}
