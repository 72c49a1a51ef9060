/**
 * An `ecr worker` process's life without its argv or signals: Redis reached, a backend named for
 * this machine opened (one that cannot run here stops the worker now, not every shard it takes),
 * the shard worker started; later stopped gracefully (the shards in progress finished), or
 * reporting a fatal Redis error, on which the caller ends the process. Loads BullMQ and ioredis.
 */
import { getBackend } from '../backends/registry.js';
import { probeRedis } from './connection.js';
import { redactUrl } from './queue-url.js';
import { startShardWorker, type WorkerSettings } from './shard-worker.js';

export { defaultWorkerName } from './shard-worker.js';

export interface RunningWorker {
  /** Resolves with the error that must stop the worker: Redis refused the URL's database on a reconnection. */
  failed: Promise<Error>;
  /** Lets the shards in progress finish, then disconnects. */
  stop(): Promise<void>;
}

export async function startWorker(s: Omit<WorkerSettings, 'onFatal'>): Promise<RunningWorker> {
  await probeRedis(s.url);
  if (s.backend !== 'auto') await getBackend(s.backend, s.backendOptions);
  let fatal: (err: Error) => void = () => {};
  const failed = new Promise<Error>((resolve) => {
    fatal = resolve;
  });
  const { close } = await startShardWorker({ ...s, onFatal: (err) => fatal(err) });
  s.log(`waiting for shards on ${redactUrl(s.url)} (queue "${s.queueName}", backend ${s.backend}, concurrency ${s.concurrency})`);
  return {
    failed,
    stop: close,
  };
}
