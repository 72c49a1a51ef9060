/**
 * `ecr score --queue redis://HOST:PORT INPUT... --out DIR [--work-dir DIR]`: the same scoring as
 * `ecr score`, spread over `ecr worker` processes through a BullMQ queue (src/queue/).
 *
 * Each input is planned into shards that never split a group (src/queue/shard-plan.ts), the
 * shards are enqueued and scored by the workers, and when every shard of every input has
 * completed, each input's output is assembled in input order and renamed into DIR under the
 * input's file name. As in a single-process run, nothing is written when any record is invalid,
 * and an existing output is replaced only on success.
 */
import { parseArgs } from 'node:util';
import os from 'node:os';
import path from 'node:path';
import { stat } from 'node:fs/promises';
import { toResolvedConfig } from '../config.js';
import { UsageError } from '../errors.js';
import { checkQueueUrl } from '../queue/queue-url.js';
import { planShards } from '../queue/shard-plan.js';
import { DEFAULT_QUEUE_NAME, SHARD_JOB_FORMAT, type ShardJob } from '../queue/shard-job.js';
import { concatenateInto, createRunDir, placeInput } from '../queue/run-dir.js';
import { cleanUpOnInterrupt, removeOnInterrupt } from './interrupt.js';
import { maxLineBytes, positiveIntegerFlag, exitForOutputFailure, OutputWriteError, describeFsError, inspectInput, readJsonConfig, type InputInfo } from './io.js';
import { openOutput, type Output } from './out-file.js';
import { refuseNotJsonlFile } from '../records/not-jsonl.js';

export const OPTIONS = {
  queue: { type: 'string' },
  'queue-name': { type: 'string', default: DEFAULT_QUEUE_NAME },
  out: { type: 'string' },
  'work-dir': { type: 'string' },
  config: { type: 'string' },
  window: { type: 'string', default: '8192' },
  'shard-bytes': { type: 'string', default: String(16 << 20) },
  attempts: { type: 'string', default: '3' },
  'no-worker-notice': { type: 'string', default: '2000' },
  help: { type: 'boolean', short: 'h' },
} as const;

const HELP = `usage: ecr score --queue redis://HOST:PORT INPUT... --out DIR [--work-dir DIR] [--config FILE]

Scores the inputs on the "ecr worker" processes of a BullMQ queue and writes DIR/<input's file name>
for each input: the same bytes as "ecr score INPUT --out FILE" on one process.
  --queue URL             the Redis server of the queue (redis:// or rediss://)
  --queue-name NAME       BullMQ queue name (default ${DEFAULT_QUEUE_NAME}; the same as the workers')
  --out DIR               an existing directory for the outputs (each replaced only when the whole run succeeded)
  --work-dir DIR          shared directory for shard inputs and outputs (default TMPDIR; several machines: a shared filesystem)
  --config FILE           ECR configuration, as for ecr score
  --window N              records scored per batch in a worker (default 8192)
  --shard-bytes N         target shard size in bytes (default 16777216); a shard never splits a group
  --attempts N            tries per shard before the run fails (default 3)
  --no-worker-notice MS   say so when no worker has been connected this long (default 2000)
  -h, --help              print this help
Inputs must be regular files. Exit codes: 0 success, 2 bad input or arguments (the message names line and field),
1 Redis unreachable or a shard failed for another reason, 130/143 interrupted.
The backend is each worker's choice (ecr worker --backend).`;



export async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv, allowPositionals: true,
      options: { ...OPTIONS, backend: { type: 'string' }, adapter: { type: 'string' }, compact: { type: 'string' } },
    });
  } catch (err) {
    throw new UsageError(`${(err as Error).message}\n${HELP}`);
  }
  const { values, positionals } = parsed;
  if (values.help) { process.stdout.write(HELP + '\n'); return 0; }
  for (const flag of ['backend', 'adapter', 'compact'] as const) {
    if (values[flag] !== undefined) throw new UsageError(`--${flag} is chosen by each worker with --queue (ecr worker --${flag} ...), not by the submitter`);
  }
  const url = checkQueueUrl(values.queue ?? '');
  if (positionals.length === 0) throw new UsageError(`expected at least one input FILE\n${HELP}`);
  if (values.out === undefined) throw new UsageError('--out DIR is required with --queue (one output file per input is written there)');
  const window = positiveIntegerFlag('window', values.window);
  const shardBytes = positiveIntegerFlag('shard-bytes', values['shard-bytes']);
  const attempts = positiveIntegerFlag('attempts', values.attempts);
  const noWorkerNoticeMs = positiveIntegerFlag('no-worker-notice', values['no-worker-notice']);
  const lineCap = maxLineBytes();
  const workDir = values['work-dir'] ?? os.tmpdir();

  const infos: InputInfo[] = [];
  const names = new Map<string, string>();
  for (const input of positionals) {
    if (input === '-') throw new UsageError('--queue needs its inputs as files (the workers read byte ranges of them); save stdin to a file first');
    const info = await inspectInput(input);
    if (!info.stat?.isFile()) throw new UsageError(`${input}: --queue needs a regular file (the workers read byte ranges of it)`);
    await refuseNotJsonlFile(input, input, 'queue');
    const base = path.basename(input);
    const clash = names.get(base);
    if (clash !== undefined) throw new UsageError(`${clash} and ${input} would both be written to --out ${path.join(values.out, base)}; give inputs different file names`);
    names.set(base, input);
    infos.push(info);
  }
  const outDir = await stat(values.out).catch((err) => { throw new UsageError(`cannot write --out ${values.out}: ${describeFsError(err)}`); });
  if (!outDir.isDirectory()) throw new UsageError(`--out ${values.out} must be a directory with --queue (one output file per input is written there)`);
  const rawConfig = values.config ? await readJsonConfig(values.config) : {};
  toResolvedConfig(rawConfig); // a bad configuration fails here, before anything is queued
  // BullMQ and ioredis load only once the arguments are known to be good.
  const { probeRedis } = await import('../queue/connection.js');
  const { runShardJobs } = await import('../queue/submit.js');
  await probeRedis(url);

  const stopCleanup = cleanUpOnInterrupt();
  const outputs: Output[] = [];
  try {
    // Opened (and so checked) before any input is read, as in a single-process run.
    for (let i = 0; i < positionals.length; i++) outputs.push(await openOutput(path.join(values.out, path.basename(positionals[i])), infos[i]));
    const run = await createRunDir(workDir, rawConfig);
    const forget = removeOnInterrupt(run.dir);
    try {
      const jobs: ShardJob[] = [];
      const shardFiles: string[][] = [];
      for (let i = 0; i < positionals.length; i++) {
        const input = await placeInput(run, positionals[i], i);
        const plan = await planShards(input, shardBytes, lineCap);
        shardFiles.push(plan.shards.map((_, k) => path.join(run.shardsDir, `${i}-${k}.jsonl`)));
        plan.shards.forEach((shard, k) => jobs.push({
          format: SHARD_JOB_FORMAT, run: run.id, inputName: positionals[i], inputIndex: i, input,
          start: shard.start, end: shard.end, firstLine: shard.firstLine, records: shard.records,
          output: shardFiles[i][k], config: run.config, window, lineCap, index: k, count: plan.shards.length,
        }));
        if (plan.records === 0) {
          process.stderr.write(`ecr score: warning: no records in ${positionals[i]} (empty or blank lines only); wrote an empty ${path.join(values.out, path.basename(positionals[i]))}\n`);
        }
      }
      await runShardJobs(jobs, { url, queueName: values['queue-name'], attempts, noWorkerNoticeMs });
      for (let i = 0; i < outputs.length; i++) {
        try {
          await concatenateInto(shardFiles[i], outputs[i].sink);
        } catch (err) {
          throw new OutputWriteError(`--out ${path.join(values.out, path.basename(positionals[i]))}`, err);
        }
      }
      for (const out of outputs) await out.commit();
    } finally {
      await run.remove();
      forget();
    }
  } catch (err) {
    await Promise.allSettled(outputs.map((o) => o.abort()));
    return exitForOutputFailure('ecr score', err);
  } finally {
    stopCleanup();
  }
  return 0;
}
