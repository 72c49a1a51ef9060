/**
 * The calibration map saved in a configuration (`"calibration"`, ECR-SPEC section 8) and the
 * record of the data a configuration was calibrated on (`"provenance"`): their validation, and
 * `pCorrectOf`, the calibrated probability that an answer with a given CCI is correct.
 */
import { ConfigError } from './errors.js';

/** A piecewise-linear non-decreasing map given by its knots (x ascending). */
export interface IsotonicMap {
  method: 'isotonic';
  cci: number[];
  p: number[];
}
/** p = 1 / (1 + exp(-(a * cci + b))). */
export interface PlattMap {
  method: 'platt';
  a: number;
  b: number;
}
export type ProbabilityMap = IsotonicMap | PlattMap;

export function applyProbabilityMap(map: ProbabilityMap, cci: number): number {
  if (map.method === 'platt') return 1 / (1 + Math.exp(-(map.a * cci + map.b)));
  const { cci: xs, p } = map;
  if (cci <= xs[0]) return p[0];
  if (cci >= xs[xs.length - 1]) return p[p.length - 1];
  let lo = 0,
    hi = xs.length - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (xs[mid] <= cci) lo = mid;
    else hi = mid;
  }
  return p[lo] + ((cci - xs[lo]) / (xs[hi] - xs[lo])) * (p[hi] - p[lo]);
}

/** Where a calibrated configuration came from. */
export interface Provenance {
  file: string;
  sha256: string;
  records: number;
  groups: number;
  labelled: number;
  date: string;
  command?: string;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function onlyKeys(o: Record<string, unknown>, allowed: readonly string[], key: string): void {
  for (const k of Object.keys(o)) if (!allowed.includes(k)) throw new ConfigError(`unknown key "${k}" (known: ${allowed.join(', ')})`, key);
}

function finite(v: unknown, key: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new ConfigError(`must be a finite number, got ${JSON.stringify(v)}`, key);
  return v;
}

/** Validates `config.calibration`: `{"method": "isotonic", "cci": [...], "p": [...]}` or `{"method": "platt", "a", "b"}`. */
export function parseCalibration(v: unknown): ProbabilityMap {
  const key = 'calibration';
  if (!isObject(v)) throw new ConfigError('must be an object {"method": "isotonic", "cci": [...], "p": [...]} or {"method": "platt", "a": .., "b": ..}', key);
  if (v.method === 'platt') {
    onlyKeys(v, ['method', 'a', 'b'], key);
    return { method: 'platt', a: finite(v.a, `${key}.a`), b: finite(v.b, `${key}.b`) };
  }
  if (v.method !== 'isotonic') throw new ConfigError(`"method" must be "isotonic" or "platt", got ${JSON.stringify(v.method)}`, key);
  onlyKeys(v, ['method', 'cci', 'p'], key);
  if (!Array.isArray(v.cci) || !Array.isArray(v.p) || v.cci.length === 0 || v.cci.length !== v.p.length) {
    throw new ConfigError('"cci" and "p" must be non-empty arrays of equal length', key);
  }
  const cci = v.cci.map((x, i) => finite(x, `${key}.cci[${i}]`));
  const p = v.p.map((x, i) => finite(x, `${key}.p[${i}]`));
  for (let i = 0; i < cci.length; i++) {
    if (cci[i] < 0 || cci[i] > 1) throw new ConfigError(`${cci[i]} is outside [0, 1]`, `${key}.cci[${i}]`);
    if (p[i] < 0 || p[i] > 1) throw new ConfigError(`${p[i]} is outside [0, 1]`, `${key}.p[${i}]`);
    if (i > 0 && cci[i] <= cci[i - 1]) throw new ConfigError('must be strictly increasing', `${key}.cci[${i}]`);
    if (i > 0 && p[i] < p[i - 1]) throw new ConfigError('must be non-decreasing (an isotonic map)', `${key}.p[${i}]`);
  }
  return { method: 'isotonic', cci, p };
}

/** Validates `config.provenance`. */
export function parseProvenance(v: unknown): Provenance {
  const key = 'provenance';
  if (!isObject(v)) throw new ConfigError('must be an object {file, sha256, records, groups, labelled, date}', key);
  onlyKeys(v, ['file', 'sha256', 'records', 'groups', 'labelled', 'date', 'command'], key);
  const str = (k: string) => {
    if (typeof v[k] !== 'string') throw new ConfigError(`must be a string, got ${JSON.stringify(v[k])}`, `${key}.${k}`);
    return v[k];
  };
  const count = (k: string) => {
    const x = finite(v[k], `${key}.${k}`);
    if (!Number.isInteger(x) || x < 0) throw new ConfigError(`must be a non-negative integer, got ${x}`, `${key}.${k}`);
    return x;
  };
  const sha256 = str('sha256');
  if (!/^[0-9a-f]{64}$/.test(sha256)) throw new ConfigError('must be 64 lowercase hex digits', `${key}.sha256`);
  const out: Provenance = { file: str('file'), sha256, records: count('records'), groups: count('groups'), labelled: count('labelled'), date: str('date') };
  if (v.command !== undefined) out.command = str('command');
  return out;
}

/**
 * The calibrated probability that an answer is correct, from its CCI, or null when the
 * configuration carries no calibration map. Only meaningful for CCIs computed with the same
 * weights and options the map was fitted with (the calibrated configuration's own).
 */
export function pCorrectOf(config: { readonly calibration: ProbabilityMap | null }, cci: number): number | null {
  return config.calibration ? applyProbabilityMap(config.calibration, cci) : null;
}
