/**
 * Reads the input of `ecr calibrate` and `ecr maturity` (ECR-SPEC section 8): JSONL whose lines
 * are either raw trajectories (section 5; scored here with the given configuration) or records
 * already scored (`ecr score` output, or the audit log of section 8.1), with optional labels and
 * the dialogue/turn/variant keys the maturity checks use. The whole input is held in memory:
 * the statistics need every record at once.
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { ResolvedConfig } from '../core/config.js';
import { InputError, UsageError, type InputLocation } from '../core/errors.js';
import { formatOf, type DataFormat } from '../engine/columnar/format.js';
import type { BackendChoice } from '../backends/backend.js';
import type { BackendOptions } from '../backends/options.js';
import { checkRecord, parseJsonLine, type TrajectoryRecord } from '../engine/record.js';
import { refuseNotJsonl, SIGNATURE_BYTES } from '../engine/jsonl/not-jsonl.js';
import { scoreRecords } from '../engine/score-records.js';

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
const SCORED_FIELDS = new Set(['id', 'group', 'requestId', ...METRIC_KEYS, 'CCI', 'admissible', 'selected', 'pCorrect', 'reason', 'tau', 'time', 'dialogue', 'turn', 'variant', 'meta', 'correct', 'messages']);
/** Calibration fields a raw trajectory may carry besides ECR-SPEC section 5's. */
const EXTRA_FIELDS = ['dialogue', 'turn', 'variant', 'correct'];
/** Scored CCIs from a float32 path agree with a float64 recombination within 1e-5 (section 7). */
const CCI_TOLERANCE = 1e-5;

async function readInput(file: string): Promise<Buffer> {
  if (file === '-') {
    const chunks: Buffer[] = [];
    for await (const c of process.stdin) chunks.push(c as Buffer);
    return Buffer.concat(chunks);
  }
  try {
    return await fs.readFile(file);
  } catch (err) {
    throw new UsageError(`${file}: cannot read (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
}

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
  const bytes = await readInput(file);
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  const labelField = opts.labels ?? 'correct';
  const format = formatOf(file, opts.format);
  const groupIndex = new Map<string, number>();
  const records: CalibrationRecord[] = [];
  const identity = new GroupIdentity();
  const trajectories: TrajectoryRecord[] = [];
  let kind: CalibrationSet['kind'] | null = null;

  // One record: a JSONL line's object, or a Parquet/Arrow row's (`here` says which).
  const add = (o: Record<string, unknown>, line: number, here: { line: number } | { row: number }) => {
    const unit = 'line' in here ? 'line' : 'row';
    const lineKind = o.steps !== undefined ? 'trajectories' : o.CCI !== undefined ? 'scored' : null;
    if (lineKind === null) throw new InputError('is neither a trajectory (no "steps") nor a scored record (no "CCI")', { ...here, field: '(record)' });
    if (kind !== null && lineKind !== kind) throw new InputError(`is a ${lineKind === 'scored' ? 'scored record' : 'trajectory'}, but earlier ${unit}s are ${kind === 'scored' ? 'scored records' : 'trajectories'}; give one kind per file`, { ...here, field: '(record)' });
    kind = lineKind;

    const id = o.id === undefined ? line : o.id;
    if (typeof id !== 'string' && typeof id !== 'number') throw new InputError(`must be a string or number, got ${JSON.stringify(id)}`, { ...here, field: 'id' });
    const at = { ...here, id: String(id) };
    const labelFound = lookup(o, labelField);
    let label: boolean | null = null;
    if (labelFound) {
      if (typeof labelFound.value !== 'boolean') throw new InputError(`label must be true or false, got ${JSON.stringify(labelFound.value)}`, { ...at, field: labelFound.field });
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

    const base = { line, at: here, id, label, dialogue, turn: turnValue as number | undefined, variant };
    if (lineKind === 'trajectories') {
      const stripped: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(o)) if (!EXTRA_FIELDS.includes(k) && k !== labelField) stripped[k] = v;
      const checked = checkRecord(stripped, here, line);
      trajectories.push(stripped as unknown as TrajectoryRecord);
      const g = indexOfGroup(groupIndex, checked.group);
      identity.check(g, checked.group, checked.id, false, here);
      records.push({ ...base, id: checked.id, group: checked.group, groupIndex: g, metrics: [0, 0, 0, 0, 0], baseScore: checked.baseScore ?? Number.NaN, steps: checked.steps, embeddings: checked.embeddings });
    } else {
      for (const k of Object.keys(o)) if (!SCORED_FIELDS.has(k) && k !== labelField) throw new InputError(`unknown field in a scored record (known: ${[...SCORED_FIELDS].join(', ')})`, { ...at, field: k });
      const metrics = METRIC_KEYS.map((k) => {
        const x = o[k];
        if (typeof x !== 'number' || !Number.isFinite(x) || x < 0 || x > 1) throw new InputError(`must be a number in [0, 1], got ${JSON.stringify(x)}`, { ...at, field: k });
        return x;
      }) as MetricVector;
      const cci = o.CCI;
      if (typeof cci !== 'number' || !Number.isFinite(cci)) throw new InputError(`must be a finite number, got ${JSON.stringify(cci)}`, { ...at, field: 'CCI' });
      const expected = weightedCci(metrics, opts.config.weights);
      if (Math.abs(expected - cci) > CCI_TOLERANCE) {
        throw new InputError(`${cci} is not the configured weights' combination of this record's metrics (${expected}); pass the --config the records were scored with`, { ...at, field: 'CCI' });
      }
      const group = o.group === undefined || o.group === null ? null : o.group;
      if (group !== null && typeof group !== 'string' && typeof group !== 'number') throw new InputError(`must be a string or number, got ${JSON.stringify(group)}`, { ...at, field: 'group' });
      if (o.selected !== undefined && typeof o.selected !== 'boolean') throw new InputError(`must be true or false, got ${JSON.stringify(o.selected)}`, { ...at, field: 'selected' });
      const g = indexOfGroup(groupIndex, group);
      identity.check(g, group, id, o.selected === true, here);
      records.push({ ...base, group, groupIndex: g, metrics, baseScore: Number.NaN });
    }
  };

  if (format === 'jsonl') {
    refuseNotJsonl(bytes.subarray(0, SIGNATURE_BYTES), file);
    bytes.toString('utf8').split('\n').forEach((raw, i) => {
      const line = i + 1;
      const textLine = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
      if (textLine.trim() === '') return;
      const value = parseJsonLine(textLine, line);
      if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new InputError('must be a JSON object', { line, field: '(record)' });
      add(value as Record<string, unknown>, line, { line });
    });
  } else {
    // Loaded only for a columnar input: apache-arrow costs ~0.1 s to load, which JSONL runs (and the library import) should not pay.
    const { columnarRows } = await import('./columnar-rows.js');
    for await (const { row, value } of columnarRows(bytes, format, file === '-' ? 'stdin' : file)) add(value, row, { row });
  }

  if (records.length === 0) throw new InputError(`${file === '-' ? 'stdin' : file} has no records (${format === 'jsonl' ? 'no non-blank lines' : 'no rows'})`);
  if (kind === 'trajectories') {
    const scored = await scoreRecords(trajectories, opts.config, { backend: opts.backend ?? 'auto', backendOptions: opts.backendOptions });
    scored.results.forEach((r, i) => { records[i].metrics = [r.EVB, r.CR, r.TS, r.ES, r.PD]; });
  }
  return {
    kind: kind!, file: file === '-' ? 'stdin' : path.basename(file), sha256, records, groupCount: groupIndex.size,
    labelled: records.filter((r) => r.label !== null).length, labelField,
  };
}

const MERGED_LOGS = 'audit logs from gateways that took the group from the client\'s x-request-id merged every request that sent the same one into one group (one request\'s lines share its "time": re-key the group by it)';

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
    const ids = this.ids[g] ??= new Map();
    const first = ids.get(id);
    if (first !== undefined) {
      throw new InputError(`${name} has id ${JSON.stringify(id)} twice (${unit}s ${first} and ${n}); a (group, id) pair must be unique, and ${MERGED_LOGS}`, { ...here, id: String(id), field: 'id' });
    }
    ids.set(id, n);
    if (!selected) return;
    const before = this.selectedAt[g];
    if (before !== undefined) {
      throw new InputError(`${name} has a second selected record (${unit}s ${before} and ${n}); selection picks one per group, and ${MERGED_LOGS}`, { ...here, id: String(id), field: 'selected' });
    }
    this.selectedAt[g] = n;
  }
}

function indexOfGroup(map: Map<string, number>, group: string | number | null): number {
  const k = group === null ? 'none' : `${typeof group}:${group}`;
  let i = map.get(k);
  if (i === undefined) { i = map.size; map.set(k, i); }
  return i;
}
