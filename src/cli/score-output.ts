/**
 * The result lines of `ecr score` (ECR-SPEC section 5). A line is built in two parts because a
 * record's `selected` flag is known only once its whole group has been seen.
 */
import type { ResolvedConfig } from '../config.js';
import { pCorrectOf } from '../calibration/probability-map.js';
import { EcrError } from '../errors.js';
import type { CheckedRecord } from '../records/record.js';
import type { WindowScores } from '../records/score-records.js';

/**
 * A backend produced NaN or an infinity for a validated record. That is a defect in the engine,
 * not in the input, so it is an internal error (exit 1); printing it would not be JSON.
 */
export class NonFiniteResultError extends EcrError {
  constructor(metric: string, value: number, line: number, id: string | number) {
    super('ECR_INTERNAL_NON_FINITE', `the backend computed ${metric} = ${value} for line ${line}, id ${JSON.stringify(String(id))}; a result must be a finite number, so nothing was written`);
  }
}

/** Record j of window `w` as a result line without `selected` and without the closing brace. */
export function resultPrefix(r: CheckedRecord, w: WindowScores, j: number, line: number, config?: ResolvedConfig): string {
  const m = w.metrics;
  const evb = m.evb[j], cr = m.cr[j], ts = m.ts[j], es = m.es[j], pd = m.pd[j], cci = m.cci[j];
  // One combined test keeps the common path to a single branch.
  if (!Number.isFinite(evb + cr + ts + es + pd + cci)) {
    for (const [name, v] of [['EVB', evb], ['CR', cr], ['TS', ts], ['ES', es], ['PD', pd], ['CCI', cci]] as const) {
      if (!Number.isFinite(v)) throw new NonFiniteResultError(name, v, line, r.id);
    }
  }
  return `{"id":${JSON.stringify(r.id)},"group":${JSON.stringify(r.group)},"EVB":${evb},"CR":${cr},"TS":${ts},`
    + `"ES":${es},"PD":${pd},"CCI":${cci},"admissible":${w.admissible[j] === 1}${pCorrectField(config, cci)}`;
}

/** `,"pCorrect":p` when the configuration carries a calibration map (ecr calibrate), else nothing. */
function pCorrectField(config: ResolvedConfig | undefined, cci: number): string {
  const p = config ? pCorrectOf(config, cci) : null;
  return p === null ? '' : `,"pCorrect":${p}`;
}

/**
 * Completes result prefixes in input order. The selected input indices (one per group) come
 * sorted, so one cursor replaces a set of all selected records.
 */
export class SelectedFlags {
  private next = 0;
  private index = 0;
  constructor(private readonly selected: Uint32Array) {}
  finish(prefix: string): string {
    const isSelected = this.next < this.selected.length && this.selected[this.next] === this.index;
    if (isSelected) this.next++;
    this.index++;
    return `${prefix},"selected":${isSelected}}\n`;
  }
}
