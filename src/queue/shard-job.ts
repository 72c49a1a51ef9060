/**
 * What a shard job carries in Redis, and how its failure travels back.
 *
 * A payload holds paths in the shared work directory, a byte range and a few numbers, never
 * records: Redis memory grows with the number of shards, not with the data.
 */
import { ConfigError, EcrError, InputError, UsageError } from '../core/errors.js';

/** Bumped when the payload changes, so an older worker refuses a job it would misread. */
export const SHARD_JOB_FORMAT = 2;

/** The default BullMQ queue name of `ecr score --queue` and `ecr worker`. */
export const DEFAULT_QUEUE_NAME = 'ecr-score';

/**
 * Checks `--queue-name`. BullMQ refuses an empty name and one with ':' (its key separator) only
 * when the Queue or Worker is made, by a throw that left the connections open (a stack, then a
 * hang); whitespace and control characters are refused too: the name is repeated in the commands
 * the submitter suggests, and such a name is a typo far more often than a choice.
 */
export function checkQueueName(name: string): string {
  if (name === '') throw new UsageError('--queue-name must not be empty');
  if (name.includes(':')) throw new UsageError(`--queue-name must not contain ":" (BullMQ separates its Redis keys with it), got ${JSON.stringify(name)}`);
  // eslint-disable-next-line no-control-regex -- control characters are what this refuses
  if (/[\s\x00-\x1f\x7f]/.test(name)) throw new UsageError(`--queue-name must not contain spaces or control characters, got ${JSON.stringify(name)}`);
  if (name.length > 256) throw new UsageError(`--queue-name must be at most 256 characters, got ${name.length}`);
  return name;
}

/** The backends a run may fix for all its shards (`ecr score --queue --backend B`). */
export const FIXED_BACKENDS = ['cpu', 'cpu-reference', 'webgpu'] as const;
export type FixedBackend = (typeof FIXED_BACKENDS)[number];

export interface ShardJob {
  format: typeof SHARD_JOB_FORMAT;
  /** The run this shard belongs to (one `ecr score --queue` invocation). */
  run: string;
  /** The input as the user named it, for messages, and its position on the command line. */
  inputName: string;
  inputIndex: number;
  /** The input's bytes in the work directory (a hard link or a copy of the user's file). */
  input: string;
  /** Byte range [start, end) of `input`, beginning at line `firstLine`. */
  start: number;
  end: number;
  firstLine: number;
  /** Non-blank lines in the range, as the submitter counted them. */
  records: number;
  /** Where the shard's result lines go (written beside it, then renamed). */
  output: string;
  /** The configuration file of the run (JSON as given to --config, `{}` without one). */
  config: string;
  /** Scoring window and line-length cap of the submitter, so memory and errors match its settings. */
  window: number;
  lineCap: number;
  /** Shard `index` of `count` of this input, for messages. */
  index: number;
  count: number;
  /** Size and mtime of `input` when the shards were planned: a worker refuses to read it changed. */
  inputSize: number;
  inputMtimeMs: number;
  /** The backend the run fixed for every shard (null: the worker's own --backend), and its compact option. */
  backend: FixedBackend | null;
  compact: 'unorm16' | null;
}

export interface ShardResult {
  records: number;
  worker: string;
  /** What computed the shard: the backend(s) used, e.g. "cpu", "cpu+webgpu" under auto, "webgpu (unorm16)". */
  backend: string;
}

const NUMBER_FIELDS = ['inputIndex', 'start', 'end', 'firstLine', 'records', 'window', 'lineCap', 'index', 'count', 'inputSize'] as const;
const STRING_FIELDS = ['run', 'inputName', 'input', 'output', 'config'] as const;

/** Checks a payload read from Redis; anything else is a job this worker cannot run. */
export function checkShardJob(data: unknown): ShardJob {
  const d = data as Record<string, unknown> | null;
  if (typeof d !== 'object' || d === null) throw new UsageError('the job has no payload object');
  if (d.format !== SHARD_JOB_FORMAT) {
    throw new UsageError(
      `the job's payload format is ${JSON.stringify(d.format)}, this worker reads format ${SHARD_JOB_FORMAT} (is the submitter a different ecr-engine version?)`,
    );
  }
  for (const k of NUMBER_FIELDS) {
    if (!Number.isSafeInteger(d[k]) || (d[k] as number) < 0) throw new UsageError(`the job's payload field "${k}" is not a non-negative integer`);
  }
  for (const k of STRING_FIELDS) {
    if (typeof d[k] !== 'string' || d[k] === '') throw new UsageError(`the job's payload field "${k}" is not a string`);
  }
  if (typeof d.inputMtimeMs !== 'number' || !Number.isFinite(d.inputMtimeMs)) throw new UsageError('the job\'s payload field "inputMtimeMs" is not a number');
  if (d.backend !== null && !FIXED_BACKENDS.includes(d.backend as FixedBackend))
    throw new UsageError(`the job's payload field "backend" is ${JSON.stringify(d.backend)}, not one of ${FIXED_BACKENDS.join(', ')} or null`);
  if (d.compact !== null && d.compact !== 'unorm16')
    throw new UsageError(`the job's payload field "compact" is ${JSON.stringify(d.compact)}, not "unorm16" or null`);
  return d as unknown as ShardJob;
}

/** The job id of shard `index` of input `input` in run `run` (BullMQ ids may not contain ':'). */
export const shardJobId = (run: string, input: number, index: number) => `${run}.${input}.${index}`;

/*
 * BullMQ keeps only the message of a failed job (`failedReason`). The worker puts the error's
 * class in front, so the submitter can fail with the same kind of error (and exit code) a
 * single-process run would: bad input stays exit 2 with its message naming line and field.
 */
type Kind = 'InputError' | 'ConfigError' | 'UsageError' | 'EcrError' | 'Error';
const MARK = /^\[ecr:(InputError|ConfigError|UsageError|EcrError|Error)(?::([A-Z0-9_]+))?\] /;

export function encodeFailure(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  let kind: Kind = 'Error';
  if (err instanceof InputError) kind = 'InputError';
  else if (err instanceof ConfigError) kind = 'ConfigError';
  else if (err instanceof UsageError) kind = 'UsageError';
  else if (err instanceof EcrError) kind = 'EcrError';
  const code = err instanceof EcrError && kind === 'EcrError' ? `:${err.code}` : '';
  return `[ecr:${kind}${code}] ${message}`;
}

/** A typed failure of the whole run (not a user error: exit 1). */
export class ShardFailedError extends EcrError {
  constructor(message: string, code = 'ECR_SHARD_FAILED') {
    super(code, message);
  }
}

/**
 * The error a failed shard ends the run with. User errors keep their message as it is, as a
 * single-process run prints it; other failures say which shard failed, where, and how often.
 */
export function decodeFailure(reason: string, where: string): Error {
  const m = MARK.exec(reason);
  const kind = (m?.[1] ?? 'Error') as Kind;
  const message = m ? reason.slice(m[0].length) : reason;
  if (kind === 'InputError') return new InputError(message);
  if (kind === 'ConfigError' || kind === 'UsageError') return new UsageError(message);
  return new ShardFailedError(`${where} failed: ${message}`, m?.[2]);
}
