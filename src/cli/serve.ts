/**
 * `ecr serve`: the OpenAI-compatible ECR gateway (src/server/). Listens until SIGTERM or SIGINT,
 * then shuts down gracefully and exits 0. Logs are JSON lines on stdout, the first of which
 * carries the URL it listens on.
 */
import { startGateway } from '../server/app.js';
import { resolveServeConfig, usage } from '../server/config.js';
import { closeOnSignal } from '../server/shutdown.js';
import { redactUrl } from '../core/redact-url.js';
import { machine } from '../core/machine.js';
import { backendOptionsFromEnv } from './backend-env.js';

export async function main(argv: string[]): Promise<number> {
  const settings = resolveServeConfig(argv, process.env);
  if (settings === 'help') {
    process.stdout.write(usage() + '\n');
    return 0;
  }
  // The gateway scores on the cpu unless a batch is large enough for the GPU: then ECR_WEBGPU_* and ECR_DEBUG apply.
  const config = { ...settings, backendOptions: backendOptionsFromEnv(process.env, { reportAdapter: false }) };
  const { app, gateway, url } = await startGateway(config);
  const shape = machine();
  app.log.info(
    {
      url,
      upstream: redactUrl(config.upstream),
      auth: config.apiKeys.length > 0,
      ecr_all: config.ecrAll,
      max_concurrent: config.maxConcurrent,
      // What the pools and the cache default were sized from (core/machine.ts).
      cpus: shape.cpus,
      cpu_source: shape.cpuSource,
      memory_bytes: shape.memoryBytes,
      memory_source: shape.memorySource,
      cache_max_bytes: config.cacheMaxBytes,
    },
    'ecr serve listening',
  );
  // logrotate moves the file and sends SIGHUP: keep writing to the path, not the moved file.
  const reopen = () => {
    gateway.auditLog?.reopen();
    app.log.info({ file: config.auditLog }, 'audit log reopened');
  };
  if (gateway.auditLog) process.on('SIGHUP', reopen);
  await closeOnSignal(app, gateway);
  process.removeListener('SIGHUP', reopen);
  // Keep-alive sockets to the upstream would otherwise hold the event loop open after close.
  setTimeout(() => process.exit(process.exitCode ?? 0), 200).unref();
  return 0;
}
