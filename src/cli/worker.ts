/**
 * `ecr worker --queue redis://HOST:PORT [--backend B] [--concurrency N]`: scores the shards that
 * `ecr score --queue` enqueues (src/queue/worker-run.ts), until SIGINT or SIGTERM, after which the
 * shards in progress are finished and the worker exits 0 (a second signal exits at once; BullMQ
 * then hands the unfinished shards to another worker).
 */
import { BACKEND_CHOICES, type BackendChoice, type ComputeOptions } from '../backends/backend.js';
import { UsageError } from '../core/errors.js';
import { checkQueueUrl } from '../queue/queue-url.js';
import { checkQueueName, DEFAULT_QUEUE_NAME } from '../queue/shard-job.js';
import { adapterFlag, backendOptionsFromEnv } from './backend-env.js';
import { parseFlags, parseThreadsFlag, positiveIntegerFlag } from './io.js';

export const OPTIONS = {
  queue: { type: 'string' },
  'queue-name': { type: 'string', default: DEFAULT_QUEUE_NAME },
  backend: { type: 'string', default: 'auto' },
  adapter: { type: 'string' },
  compact: { type: 'string' },
  concurrency: { type: 'string', default: '1' },
  threads: { type: 'string' },
  name: { type: 'string' },
  'lock-duration': { type: 'string', default: '30000' },
  'stalled-interval': { type: 'string', default: '30000' },
  help: { type: 'boolean', short: 'h' },
} as const;

const HELP = `usage: ecr worker --queue redis://HOST:PORT [--backend auto|webgpu|cpu|cpu-reference] [--concurrency N]

Scores the shards of distributed "ecr score --queue" runs, until SIGINT or SIGTERM.
  --queue URL             the Redis server of the queue (redis://, rediss:// or redis+sentinel://, with password and /db if any)
  --queue-name NAME       BullMQ queue name (default ${DEFAULT_QUEUE_NAME}; the same as the submitter's)
  --backend B             scoring backend for this machine (default auto; a run fixed with ecr score --backend uses its own)
  --adapter A             WebGPU adapter: auto, native or opengles (also ECR_WEBGPU_ADAPTER)
  --compact unorm16       upload E to the GPU as unorm16 (webgpu only)
  --concurrency N         shards scored at once by this process (default 1)
  --threads N             JSONL parse threads per shard, as ecr score --threads (default: one per core; 0 = none)
  --name NAME             name in logs and on the jobs it processes (default HOST:PID)
  --lock-duration MS      how long a shard stays with a worker that stopped answering (default 30000)
  --stalled-interval MS   how often this worker looks for such shards (default 30000); tests use small values
  -h, --help              print this help
Exit codes: 0 stopped by SIGINT/SIGTERM after finishing its shards, 1 Redis unreachable at start or the --backend
cannot run here, 2 bad arguments or a Redis database (the URL's /db) the server does not have.`;

export async function main(argv: string[]): Promise<number> {
  const values = parseFlags(argv, OPTIONS, HELP);
  if (values.help) {
    process.stdout.write(HELP + '\n');
    return 0;
  }
  if (values.queue === undefined) throw new UsageError(`--queue redis://HOST:PORT is required\n${HELP}`);
  const url = values.queue;
  checkQueueUrl(url);
  const queueName = checkQueueName(values['queue-name']);
  const backend = values.backend as BackendChoice;
  if (!BACKEND_CHOICES.includes(backend)) throw new UsageError(`--backend must be one of ${BACKEND_CHOICES.join(', ')}, got "${values.backend}"`);
  const backendOptions = backendOptionsFromEnv(process.env, { adapter: adapterFlag(values.adapter), reportAdapter: true });
  if (values.compact !== undefined && values.compact !== 'unorm16') throw new UsageError(`--compact must be "unorm16", got "${values.compact}"`);
  const compute: ComputeOptions = values.compact ? { compact: 'unorm16' } : {};
  const concurrency = positiveIntegerFlag('concurrency', values.concurrency);
  const threads = parseThreadsFlag(values.threads);
  const lockDurationMs = positiveIntegerFlag('lock-duration', values['lock-duration']);
  const stalledIntervalMs = positiveIntegerFlag('stalled-interval', values['stalled-interval']);
  // BullMQ and ioredis load only once the arguments are known to be good.
  const { defaultWorkerName, startWorker } = await import('../queue/worker-run.js');
  const name = values.name ?? defaultWorkerName();
  const log = (line: string) => process.stderr.write(`ecr worker ${name}: ${line}\n`);
  const running = await startWorker({
    url,
    queueName,
    backend,
    compute,
    backendOptions,
    threads,
    concurrency,
    lockDurationMs,
    stalledIntervalMs,
    name,
    log,
  });
  const stopped = await new Promise<Error | null>((resolve) => {
    void running.failed.then(resolve);
    const stop = (signal: NodeJS.Signals) => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      log(`${signal}: finishing the shards in progress (again to stop at once)`);
      const now = (s: NodeJS.Signals) => process.exit(s === 'SIGINT' ? 130 : 143);
      process.once('SIGINT', now);
      process.once('SIGTERM', now);
      resolve(null);
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  if (stopped) {
    // Redis refused the database on a reconnection. The process ends without closing BullMQ:
    // closing waits on connections that reconnect forever to a server refusing the database (the
    // worker then never exited), and BullMQ drops its error listeners as it closes, so ioredis
    // printed each refusal as an "Unhandled error event" stack. Ending the process abandons the
    // shards in progress; their locks expire and BullMQ hands them to a worker once Redis is fixed.
    log(`stopping: ${stopped.message}`);
    setTimeout(() => process.exit(process.exitCode ?? 2), 100).unref();
    throw stopped;
  }
  await running.stop();
  log('stopped');
  return 0;
}
