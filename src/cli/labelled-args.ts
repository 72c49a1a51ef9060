/**
 * What `ecr calibrate` and `ecr maturity` share: the input (JSONL, Parquet or Arrow), its
 * configuration, the label field and the backend that scores raw trajectories, checked alike.
 */
import { toResolvedConfig, type ResolvedConfig } from '../core/config.js';
import { UsageError } from '../core/errors.js';
import { BACKEND_CHOICES, type BackendChoice } from '../backends/backend.js';
import { readCalibrationSet, type CalibrationSet } from '../calibration/labelled-input.js';
import { formatOf } from '../engine/columnar/format.js';
import { readJsonConfig } from './io.js';
import { backendOptionsFromEnv } from './backend-env.js';

/** The parseArgs options of the input. */
export const LABELLED_INPUT_OPTIONS = {
  config: { type: 'string' },
  labels: { type: 'string' },
  backend: { type: 'string', default: 'auto' },
  format: { type: 'string' },
} as const;

/** Fields of trajectories and scored records that cannot hold the label. */
const RESERVED_FIELDS = new Set([
  'id',
  'group',
  'requestId',
  'steps',
  'embeddings',
  'expected',
  'realized',
  'policy',
  'baseScore',
  'meta',
  'EVB',
  'CR',
  'TS',
  'ES',
  'PD',
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
  'messages',
]);

export interface LabelledInputArgs {
  config?: string;
  labels?: string;
  backend?: string;
  format?: string;
}

/** Checks the arguments, then reads (and for raw trajectories scores) the one INPUT. */
export async function readLabelledInput(v: LabelledInputArgs, positionals: string[], help: string): Promise<{ set: CalibrationSet; config: ResolvedConfig }> {
  if (positionals.length !== 1) throw new UsageError(`expected exactly one INPUT file or -, got ${positionals.length}\n${help}`);
  const backend = (v.backend ?? 'auto') as BackendChoice;
  if (!BACKEND_CHOICES.includes(backend)) throw new UsageError(`--backend must be one of ${BACKEND_CHOICES.join(', ')}, got "${v.backend}"`);
  if (v.labels !== undefined && (v.labels === '' || RESERVED_FIELDS.has(v.labels))) {
    throw new UsageError(`--labels needs a field name other than the record's own fields (${[...RESERVED_FIELDS].join(', ')}), got "${v.labels}"`);
  }
  const format = formatOf(positionals[0], v.format);
  const config = toResolvedConfig(v.config ? await readJsonConfig(v.config) : {});
  // Raw trajectories are scored: the adapter line only under ECR_DEBUG=webgpu, as for any library caller.
  const backendOptions = backendOptionsFromEnv(process.env, { reportAdapter: false });
  const set = await readCalibrationSet(positionals[0], { config, labels: v.labels, backend, backendOptions, format });
  return { set, config };
}
