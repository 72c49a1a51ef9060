/**
 * The result lines of `ecr score` (ECR-SPEC section 5). A line is built in two parts because a
 * record's `selected` flag is known only once its whole group has been seen.
 */
import type { ResolvedConfig } from './config.js';
import { pCorrectOf } from './probability-map.js';
import { EcrError, type InputLocation } from './errors.js';
import type { MetricArrays } from './batch.js';

/**
 * A backend produced NaN or an infinity for a validated record. That is a defect in the engine,
 * not in the input, so it is an internal error (exit 1); printing it would not be JSON. `where`
 * is the record's line (JSONL) or row (Parquet, Arrow), with its id.
 */
export class NonFiniteResultError extends EcrError {
  constructor(metric: string, value: number, where: InputLocation) {
    const at = where.line !== undefined ? `line ${where.line}` : `row ${where.row}`;
    super(
      'ECR_INTERNAL_NON_FINITE',
      `the backend computed ${metric} = ${value} for ${at}, id ${JSON.stringify(String(where.id))}; a result must be a finite number, so nothing was written`,
    );
  }
}

/** What a result line needs of the configuration: the calibration map for `pCorrect`. */
type Calibrated = Pick<ResolvedConfig, 'calibration'>;

/** The start of a result line: `{"id":..,"group":..`. */
export function resultHead(id: string | number, group: string | number | null): string {
  return `{"id":${JSON.stringify(id)},"group":${JSON.stringify(group)}`;
}

/** The metrics part of a result line, without `selected` and the closing brace. */
function resultBody(evb: number, cr: number, ts: number, es: number, pd: number, cci: number, admissible: boolean, config: Calibrated | undefined): string {
  return `,"EVB":${evb},"CR":${cr},"TS":${ts},"ES":${es},"PD":${pd},"CCI":${cci},"admissible":${admissible}${pCorrectField(config, cci)}`;
}

/** The first metric of (evb, cr, ts, es, pd, cci) that is not finite, or null. */
function nonFiniteMetric(evb: number, cr: number, ts: number, es: number, pd: number, cci: number): { metric: string; value: number } | null {
  // One combined test keeps the common path to a single branch.
  if (Number.isFinite(evb + cr + ts + es + pd + cci)) return null;
  for (const [metric, value] of [
    ['EVB', evb],
    ['CR', cr],
    ['TS', ts],
    ['ES', es],
    ['PD', pd],
    ['CCI', cci],
  ] as const) {
    if (!Number.isFinite(value)) return { metric, value };
  }
  return null;
}

/** Record j of scored arrays as a result line without `selected` and without the closing brace. */
export function resultPrefix(
  id: string | number,
  group: string | number | null,
  m: MetricArrays,
  admissible: Uint8Array,
  j: number,
  line: number,
  config?: ResolvedConfig,
): string {
  const evb = m.evb[j],
    cr = m.cr[j],
    ts = m.ts[j],
    es = m.es[j],
    pd = m.pd[j],
    cci = m.cci[j];
  const bad = nonFiniteMetric(evb, cr, ts, es, pd, cci);
  if (bad) throw new NonFiniteResultError(bad.metric, bad.value, { line, id: String(id) });
  return resultHead(id, group) + resultBody(evb, cr, ts, es, pd, cci, admissible[j] === 1, config);
}

/** The scores of a window's records, to be printed (on a parse worker when there are any). */
export interface WindowResults {
  /** Heads from resultHead; record j's is heads.slice(headEnds[j], headEnds[j + 1]). */
  heads: string;
  headEnds: Uint32Array;
  metrics: MetricArrays;
  admissible: Uint8Array;
}

/** The first record of a window whose metrics are not all finite, or null. */
export function firstNonFinite(m: MetricArrays, n: number): { index: number; metric: string; value: number } | null {
  for (let j = 0; j < n; j++) {
    const bad = nonFiniteMetric(m.evb[j], m.cr[j], m.ts[j], m.es[j], m.pd[j], m.cci[j]);
    if (bad) return { index: j, ...bad };
  }
  return null;
}

/**
 * A window's result lines without `selected` and the closing brace, each ending in a newline.
 * The caller has checked the metrics with firstNonFinite (to name the line); a non-finite value
 * here is an internal error all the same, never printed.
 */
export function formatWindow(w: WindowResults, config: Calibrated | undefined): string {
  const { evb, cr, ts, es, pd, cci } = w.metrics;
  const n = w.admissible.length;
  const bad = firstNonFinite(w.metrics, n);
  if (bad) throw new NonFiniteResultError(bad.metric, bad.value, { line: Number.NaN, id: `(window record ${bad.index})` });
  // Numbers as text, all at once: JSON.stringify writes a finite number exactly as String() does
  // (the spec defines both by Number::toString), and one call for the window's 6n numbers costs
  // about half of 6n conversions in template literals (measured; bench/README.md).
  const all = new Array<number>(6 * n);
  for (let j = 0, o = 0; j < n; j++, o += 6) {
    all[o] = evb[j];
    all[o + 1] = cr[j];
    all[o + 2] = ts[j];
    all[o + 3] = es[j];
    all[o + 4] = pd[j];
    all[o + 5] = cci[j];
  }
  const text = n === 0 ? [] : JSON.stringify(all).slice(1, -1).split(',');
  const parts: string[] = new Array<string>(n);
  for (let j = 0, o = 0; j < n; j++, o += 6) {
    parts[j] =
      `${w.heads.slice(w.headEnds[j], w.headEnds[j + 1])},"EVB":${text[o]},"CR":${text[o + 1]},"TS":${text[o + 2]},"ES":${text[o + 3]},"PD":${text[o + 4]},"CCI":${text[o + 5]},"admissible":${w.admissible[j] === 1}${pCorrectField(config, cci[j])}\n`;
  }
  return parts.join('');
}

/** `,"pCorrect":p` when the configuration carries a calibration map (ecr calibrate), else nothing. */
function pCorrectField(config: Calibrated | undefined, cci: number): string {
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

  /**
   * finish() over bytes: `lines` holds whole prefix lines, each ending in a newline; returns them
   * completed. Works on bytes because the results of a large input are read back from the spill
   * file, where decoding every line into a string would cost more than the copy.
   */
  finishLines(bytes: Uint8Array): Buffer {
    const lines = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length); // Buffer.indexOf is memchr
    let count = 0;
    for (let nl = lines.indexOf(10); nl >= 0; nl = lines.indexOf(10, nl + 1)) count++;
    const out = Buffer.allocUnsafe(lines.length + count * SELECTED_FALSE.length);
    let at = 0;
    let start = 0;
    for (let nl = lines.indexOf(10); nl >= 0; nl = lines.indexOf(10, start)) {
      out.set(lines.subarray(start, nl), at);
      at += nl - start;
      const isSelected = this.next < this.selected.length && this.selected[this.next] === this.index;
      if (isSelected) this.next++;
      this.index++;
      const tail = isSelected ? SELECTED_TRUE : SELECTED_FALSE;
      out.set(tail, at);
      at += tail.length;
      start = nl + 1;
    }
    return out.subarray(0, at);
  }
}

const SELECTED_TRUE = Buffer.from(',"selected":true}\n');
const SELECTED_FALSE = Buffer.from(',"selected":false}\n');
