/**
 * `ecr score --queue redis://HOST:PORT INPUT... --out DIR [--work-dir DIR]`: the same scoring as
 * `ecr score`, spread over `ecr worker` processes through a BullMQ queue. The arguments, the
 * signal handlers and the exit code; the run itself is src/queue/score-run.ts.
 */
import os from 'node:os';
import path from 'node:path';
import { toResolvedConfig } from '../core/config.js';
import { UsageError } from '../core/errors.js';
import { checkQueueUrl, redactUrl } from '../queue/queue-url.js';
import { checkQueueName, DEFAULT_QUEUE_NAME, FIXED_BACKENDS, type FixedBackend } from '../queue/shard-job.js';
import { adoptRun, checkRunInputs, prepareQueue, resumeRun, submitRun, type QueueRunSettings } from '../queue/score-run.js';
import { DEFAULT_MAX_LINE_BYTES } from '../engine/io/lines.js';
import { parseArgs } from '../core/parse-args.js';
import { cleanUpOnInterrupt } from './interrupt.js';
import { positiveIntegerFlag, exitForOutputFailure, readJsonConfig } from './io.js';

/** The default --orphan-grace: a day to notice a killed submitter and collect its run with --resume. */
const DEFAULT_ORPHAN_GRACE_S = 86_400;
/** Below this a live run on another machine (heartbeat seen late through a shared filesystem) could be swept. */
const MIN_ORPHAN_GRACE_S = 300;

export const OPTIONS = {
  queue: { type: 'string' },
  'queue-name': { type: 'string', default: DEFAULT_QUEUE_NAME },
  out: { type: 'string' },
  'work-dir': { type: 'string' },
  config: { type: 'string' },
  window: { type: 'string' },
  'shard-bytes': { type: 'string' },
  backend: { type: 'string' },
  compact: { type: 'string' },
  attempts: { type: 'string', default: '3' },
  'no-worker-notice': { type: 'string', default: '2000' },
  timeout: { type: 'string' },
  resume: { type: 'string' },
  'orphan-grace': { type: 'string', default: String(DEFAULT_ORPHAN_GRACE_S) },
  help: { type: 'boolean', short: 'h' },
} as const;

const HELP = `usage: ecr score --queue redis://HOST:PORT INPUT... --out DIR [--work-dir DIR] [--config FILE]
       ecr score --queue redis://HOST:PORT --resume RUN [--work-dir DIR] [--out DIR]

Scores the inputs on the "ecr worker" processes of a BullMQ queue and writes DIR/<input's file name>
for each input: the same bytes as "ecr score INPUT --out FILE" on one process (see --backend).
  --queue URL             the Redis server of the queue (redis://, rediss:// or redis+sentinel://, with /db if any)
  --queue-name NAME       BullMQ queue name (default ${DEFAULT_QUEUE_NAME}; the same as the workers')
  --out DIR               an existing directory for the outputs (each replaced only when the whole run succeeded)
  --work-dir DIR          shared directory for shard inputs and outputs (default TMPDIR; several machines: a shared filesystem)
  --config FILE           ECR configuration, as for ecr score
  --window N              records scored per batch in a worker (default 8192)
  --shard-bytes N         target shard size in bytes (default 16777216); a shard never splits a group
  --backend B             compute every shard with B (cpu, cpu-reference or webgpu) whatever the workers' own --backend
  --compact unorm16       with --backend webgpu: upload E as unorm16
  --attempts N            tries per shard before the run fails (default 3)
  --no-worker-notice MS   say so when no worker has been connected this long (default 2000)
  --timeout S             stop waiting S seconds after queueing, leaving the run for --resume (default: no limit)
  --resume RUN            collect the run RUN (ecr-run-...) in --work-dir whose submitter was killed or timed out
  --orphan-grace S        remove runs in --work-dir whose submitter has been gone S seconds (default ${DEFAULT_ORPHAN_GRACE_S}; 0 = never)
  -h, --help              print this help
Inputs must be regular files, unchanged until the run ends. Exit codes: 0 success, 2 bad input or arguments (the
message names line and field), 1 Redis unreachable, a shard failed for another reason or --timeout, 130/143 interrupted.
Without --backend each worker uses its own, and the submitter warns when a run's shards were computed by different backends.`;

const warn = (line: string) => process.stderr.write(`ecr score: ${line}\n`);

function fixedBackend(backend: string | undefined, compact: string | undefined): { backend: FixedBackend | null; compact: 'unorm16' | null } {
  if (backend === undefined) {
    if (compact !== undefined)
      throw new UsageError("--compact with --queue needs --backend webgpu (without --backend, --compact is each worker's choice: ecr worker --compact)");
    return { backend: null, compact: null };
  }
  if (!FIXED_BACKENDS.includes(backend as FixedBackend)) {
    throw new UsageError(
      `--backend with --queue fixes the backend of every shard: one of ${FIXED_BACKENDS.join(', ')}, got "${backend}" (leave it out to let each worker use its own)`,
    );
  }
  if (compact !== undefined && (compact !== 'unorm16' || backend !== 'webgpu'))
    throw new UsageError(`--compact must be "unorm16", with --backend webgpu; got --compact ${compact} --backend ${backend}`);
  return { backend: backend as FixedBackend, compact: compact === undefined ? null : 'unorm16' };
}

export async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, options: { ...OPTIONS, adapter: { type: 'string' } } });
  } catch (err) {
    throw new UsageError(`${(err as Error).message}\n${HELP}`);
  }
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(HELP + '\n');
    return 0;
  }
  if (values.adapter !== undefined) throw new UsageError('--adapter is chosen by each worker with --queue (ecr worker --adapter ...), not by the submitter');
  const url = values.queue ?? '';
  checkQueueUrl(url);
  const queueName = checkQueueName(values['queue-name']);
  const attempts = positiveIntegerFlag('attempts', values.attempts);
  const noWorkerNoticeMs = positiveIntegerFlag('no-worker-notice', values['no-worker-notice']);
  const timeoutMs = values.timeout === undefined ? null : positiveIntegerFlag('timeout', values.timeout) * 1000;
  const graceS = values['orphan-grace'] === '0' ? 0 : positiveIntegerFlag('orphan-grace', values['orphan-grace']);
  if (graceS !== 0 && graceS < MIN_ORPHAN_GRACE_S) {
    throw new UsageError(
      `--orphan-grace must be 0 (never remove) or at least ${MIN_ORPHAN_GRACE_S} seconds (a live submitter on another machine could look gone for longer), got ${graceS}`,
    );
  }
  const workDir = values['work-dir'] ?? os.tmpdir();
  const resumeCommand = (id: string) =>
    `ecr score --queue ${redactUrl(url)}${queueName === DEFAULT_QUEUE_NAME ? '' : ` --queue-name ${queueName}`} --resume ${id} --work-dir ${path.resolve(workDir)}`;
  const common: QueueRunSettings = { url, queueName, attempts, noWorkerNoticeMs, timeoutMs, workDir, resumeCommand, warn };

  if (values.resume !== undefined) {
    if (positionals.length > 0) throw new UsageError(`--resume takes no INPUT: the run's inputs are in its directory (got ${positionals.join(' ')})`);
    for (const flag of ['config', 'window', 'shard-bytes', 'backend', 'compact'] as const) {
      if (values[flag] !== undefined) throw new UsageError(`--${flag} is the run's own with --resume (fixed when it was submitted)`);
    }
    const adopted = await adoptRun(common, values.resume, values.out, graceS * 1000);
    return guarded(() => resumeRun(common, adopted, values.out));
  }

  const fixed = fixedBackend(values.backend, values.compact);
  if (positionals.length === 0) throw new UsageError(`expected at least one input FILE\n${HELP}`);
  if (values.out === undefined) throw new UsageError('--out DIR is required with --queue (one output file per input is written there)');
  const window = positiveIntegerFlag('window', values.window ?? '8192');
  const shardBytes = positiveIntegerFlag('shard-bytes', values['shard-bytes'] ?? String(16 << 20));
  const infos = await checkRunInputs(positionals, values.out);
  const rawConfig = values.config ? await readJsonConfig(values.config) : {};
  toResolvedConfig(rawConfig); // a bad configuration fails here, before anything is queued
  // BullMQ and ioredis load only once the arguments are known to be good.
  await prepareQueue(common, graceS * 1000);
  const outDir = values.out;
  return guarded(() => submitRun(common, { inputs: positionals, infos, outDir, rawConfig, window, shardBytes, lineCap: DEFAULT_MAX_LINE_BYTES, fixed }));
}

/** A run with SIGINT/SIGTERM cleaning up its temporary files, and a failed output as exit 1. */
async function guarded(run: () => Promise<number>): Promise<number> {
  const stopCleanup = cleanUpOnInterrupt();
  try {
    return await run();
  } catch (err) {
    return exitForOutputFailure('ecr score', err);
  } finally {
    stopCleanup();
  }
}
