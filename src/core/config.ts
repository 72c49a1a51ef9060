/**
 * The configuration object of ECR-SPEC section 4: parsing, validation and defaults.
 * `resolveConfig` turns user JSON into a fully-specified `ResolvedConfig`; nothing downstream
 * re-checks or re-defaults options.
 */
import { ConfigError, InputError, type InputLocation } from './errors.js';
import { formatNumber } from './input-ranges.js';
import { plural } from './plural.js';
import { parseCalibration, parseProvenance, type ProbabilityMap, type Provenance } from './probability-map.js';

export type EvbMode = 'trace' | 'max-abs-change';
export type ShrinkTarget = 'identity' | 'scaled-identity';
export type PresetName = 'default' | 'compliance' | 'creative' | 'conversational';
/** CCI weights in the order alpha (EVB), beta (CR), gamma (TS), delta (ES), epsilon (PD). */
export type Weights = readonly [number, number, number, number, number];

/** The user-facing configuration (every key optional). */
export interface EcrConfig {
  weights?: number[] | { alpha: number; beta: number; gamma: number; delta: number; epsilon: number };
  preset?: PresetName;
  tau?: number;
  lambda?: number | 'ledoit-wolf';
  shrinkTarget?: ShrinkTarget;
  evbMode?: EvbMode;
  crWeights?: number[] | null;
  confIndex?: number;
  vmax?: number;
  dmax?: number | null;
  /** CCI -> probability of a correct answer, fitted by `ecr calibrate` (ECR-SPEC section 8). */
  calibration?: ProbabilityMap;
  /** The data `ecr calibrate` fitted this configuration on. */
  provenance?: Provenance;
}

/** A validated configuration with every default filled in. */
export interface ResolvedConfig {
  readonly weights: Weights;
  readonly tau: number;
  readonly lambda: number | 'ledoit-wolf';
  readonly shrinkTarget: ShrinkTarget;
  readonly evbMode: EvbMode;
  /** Per-component CR weights, or null for all ones. Length must equal the batch's m. */
  readonly crWeights: Float64Array | null;
  readonly confIndex: number;
  readonly vmax: number;
  /** Explicit dmax, or null for the spec default (ln A with a policy, 2.0 with E standing in). */
  readonly dmax: number | null;
  /** The calibration map, or null when the configuration has none (no `pCorrect`). */
  readonly calibration: ProbabilityMap | null;
  readonly provenance: Provenance | null;
}

export const PRESETS: Readonly<Record<PresetName, Weights>> = {
  default: [0.2, 0.2, 0.2, 0.2, 0.2],
  compliance: [0.15, 0.3, 0.1, 0.2, 0.25],
  creative: [0.15, 0.1, 0.3, 0.25, 0.1],
  conversational: [0.15, 0.2, 0.15, 0.3, 0.2],
};

export const DEFAULTS = {
  tau: 0.65,
  lambda: 0.4,
  shrinkTarget: 'identity' as ShrinkTarget,
  evbMode: 'trace' as EvbMode,
  confIndex: 0,
  vmax: 0.25,
  /** dmax when E stands in for the policy (the reference engine's constant). */
  dmaxProxy: 2.0,
};

/** The keys of a scoring configuration (ECR-SPEC section 4). */
export const CONFIG_KEYS: ReadonlySet<string> = new Set([
  'weights',
  'preset',
  'tau',
  'lambda',
  'shrinkTarget',
  'evbMode',
  'crWeights',
  'confIndex',
  'vmax',
  'dmax',
  'calibration',
  'provenance',
]);
const KNOWN_KEYS = CONFIG_KEYS;
const WEIGHT_NAMES = ['alpha', 'beta', 'gamma', 'delta', 'epsilon'] as const;
const WEIGHT_SUM_TOLERANCE = 1e-6;

function finiteNumber(key: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isFinite(v))
    throw new ConfigError(`must be a finite number, got ${typeof v === 'number' ? formatNumber(v) : JSON.stringify(v)}`, key);
  return v;
}

/**
 * Smallest vmax and dmax: ES and PD divide by them, and the WebGPU kernels hold them as float32,
 * where a smaller value becomes 0 (or a denormal that GPUs flush to 0) and the quotient NaN.
 */
export const MIN_DIVISOR = 1e-30;

function divisor(key: string, v: unknown): number {
  const x = finiteNumber(key, v);
  if (x <= 0) throw new ConfigError(`must be positive, got ${x}`, key);
  if (x < MIN_DIVISOR) throw new ConfigError(`must be at least ${MIN_DIVISOR} (the GPU holds it as a float32), got ${x}`, key);
  return x;
}

function inUnitInterval(key: string, v: unknown): number {
  const x = finiteNumber(key, v);
  if (x < 0 || x > 1) throw new ConfigError(`must be in [0, 1], got ${x}`, key);
  return x;
}

function oneOf<T extends string>(key: string, v: unknown, allowed: readonly T[]): T {
  if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) {
    throw new ConfigError(`must be one of ${allowed.map((a) => JSON.stringify(a)).join(', ')}, got ${JSON.stringify(v)}`, key);
  }
  return v as T;
}

function parseWeights(v: unknown): Weights {
  let w: number[];
  if (Array.isArray(v)) {
    if (v.length !== 5) throw new ConfigError(`must have 5 entries (alpha, beta, gamma, delta, epsilon), got ${v.length}`, 'weights');
    w = v.map((x, i) => finiteNumber(`weights[${i}]`, x));
  } else if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    for (const k of Object.keys(o)) {
      if (!(WEIGHT_NAMES as readonly string[]).includes(k)) throw new ConfigError(`unknown weight "${k}" (expected ${WEIGHT_NAMES.join(', ')})`, 'weights');
    }
    w = WEIGHT_NAMES.map((k) => {
      if (!(k in o)) throw new ConfigError(`missing "${k}"`, 'weights');
      return finiteNumber(`weights.${k}`, o[k]);
    });
  } else {
    throw new ConfigError('must be an array of 5 numbers or an object {alpha, beta, gamma, delta, epsilon}', 'weights');
  }
  w.forEach((x, i) => {
    if (x < 0) throw new ConfigError(`must be non-negative, got ${x}`, `weights.${WEIGHT_NAMES[i]}`);
  });
  const sum = w.reduce((a, b) => a + b, 0);
  if (Math.abs(sum - 1) > WEIGHT_SUM_TOLERANCE) throw new ConfigError(`must sum to 1 (within ${WEIGHT_SUM_TOLERANCE}), sum is ${sum}`, 'weights');
  return [w[0], w[1], w[2], w[3], w[4]];
}

/** Validates user JSON (an object, or undefined for all defaults) and fills in defaults. */
export function resolveConfig(raw: unknown = {}): ResolvedConfig {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new ConfigError('must be a JSON object');
  const o = raw as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (!KNOWN_KEYS.has(k)) throw new ConfigError(`unknown key (known keys: ${[...KNOWN_KEYS].join(', ')})`, k);
  }
  if (o.weights !== undefined && o.preset !== undefined) {
    throw new ConfigError('give either "weights" or "preset", not both', 'weights');
  }
  const weights =
    o.weights !== undefined
      ? parseWeights(o.weights)
      : o.preset !== undefined
        ? PRESETS[oneOf('preset', o.preset, Object.keys(PRESETS) as PresetName[])]
        : PRESETS.default;

  const tau = o.tau === undefined ? DEFAULTS.tau : inUnitInterval('tau', o.tau);
  const lambda =
    o.lambda === undefined
      ? DEFAULTS.lambda
      : o.lambda === 'ledoit-wolf'
        ? ('ledoit-wolf' as const)
        : typeof o.lambda === 'number'
          ? inUnitInterval('lambda', o.lambda)
          : (() => {
              throw new ConfigError(`must be a number in [0, 1] or "ledoit-wolf", got ${JSON.stringify(o.lambda)}`, 'lambda');
            })();
  const shrinkTarget = o.shrinkTarget === undefined ? DEFAULTS.shrinkTarget : oneOf('shrinkTarget', o.shrinkTarget, ['identity', 'scaled-identity'] as const);
  const evbMode = o.evbMode === undefined ? DEFAULTS.evbMode : oneOf('evbMode', o.evbMode, ['trace', 'max-abs-change'] as const);

  let crWeights: Float64Array | null = null;
  if (o.crWeights !== undefined && o.crWeights !== null) {
    if (!Array.isArray(o.crWeights) || o.crWeights.length === 0)
      throw new ConfigError('must be a non-empty array of numbers in [0, 1], one per component', 'crWeights');
    crWeights = Float64Array.from(o.crWeights, (x, i) => inUnitInterval(`crWeights[${i}]`, x));
  }

  let confIndex = DEFAULTS.confIndex;
  if (o.confIndex !== undefined) {
    confIndex = finiteNumber('confIndex', o.confIndex);
    if (!Number.isInteger(confIndex) || confIndex < 0) throw new ConfigError(`must be a non-negative integer, got ${confIndex}`, 'confIndex');
  }
  const vmax = o.vmax === undefined ? DEFAULTS.vmax : divisor('vmax', o.vmax);
  const dmax = o.dmax === undefined || o.dmax === null ? null : divisor('dmax', o.dmax);
  const calibration = o.calibration === undefined ? null : parseCalibration(o.calibration);
  const provenance = o.provenance === undefined ? null : parseProvenance(o.provenance);
  const resolved: ResolvedConfig = { weights, tau, lambda, shrinkTarget, evbMode, crWeights, confIndex, vmax, dmax, calibration, provenance };
  resolvedConfigs.add(resolved);
  return resolved;
}

// Configs produced by resolveConfig, so APIs that take either form do not parse twice.
const resolvedConfigs = new WeakSet<object>();

/** Accepts user JSON (an {@link EcrConfig}, checked here) or an already-resolved config. */
export function toResolvedConfig(config: unknown): ResolvedConfig {
  if (typeof config === 'object' && config !== null && resolvedConfigs.has(config)) return config as ResolvedConfig;
  return resolveConfig(config === undefined ? {} : config);
}

/** Checks the options that depend on the batch's component count m. */
export function checkConfigAgainstShape(config: ResolvedConfig, m: number): void {
  if (config.crWeights && config.crWeights.length !== m) {
    throw new ConfigError(`has ${plural(config.crWeights.length, 'entry', 'entries')} but the trajectories have m = ${m} components`, 'crWeights');
  }
  if (config.confIndex >= m) throw new ConfigError(`is ${config.confIndex} but the trajectories have only m = ${m} components`, 'confIndex');
}

/**
 * checkConfigAgainstShape for input records: a configuration that does not fit their m is an
 * input error naming the first record of that shape (`where`, asked only on failure) and "steps".
 */
export function checkRecordShape(config: ResolvedConfig, m: number, where: () => InputLocation): void {
  try {
    checkConfigAgainstShape(config, m);
  } catch (err) {
    if (err instanceof ConfigError)
      throw new InputError(`${plural(m, 'component')} per step ${m === 1 ? 'does' : 'do'} not fit the configuration: ${err.message}`, {
        ...where(),
        field: 'steps',
      });
    throw err;
  }
}

/** The dmax in force for a batch: explicit, else ln(A) with a policy, else the proxy constant. */
export function effectiveDmax(config: ResolvedConfig, policyWidth: number | undefined): number {
  if (config.dmax !== null) return config.dmax;
  if (policyWidth !== undefined) {
    // ln(1) = 0 would divide by zero; a one-action policy can never diverge, so any positive dmax gives PD = 0.
    return policyWidth > 1 ? Math.log(policyWidth) : 1;
  }
  return DEFAULTS.dmaxProxy;
}
