/**
 * `ecr serve`: the OpenAI-compatible ECR gateway (src/server/). Listens until SIGTERM or SIGINT,
 * then shuts down gracefully and exits 0. Logs are JSON lines on stdout, the first of which
 * carries the URL it listens on.
 */
import { startGateway } from '../server/app.js';
import { resolveServeConfig, usage } from '../server/config.js';
import { closeOnSignal } from '../server/shutdown.js';

export async function main(argv: string[]): Promise<number> {
  const config = resolveServeConfig(argv);
  if (config === 'help') { process.stdout.write(usage() + '\n'); return 0; }
  const { app, gateway, url } = await startGateway(config);
  app.log.info({ url, upstream: config.upstream, auth: config.apiKeys.length > 0, ecr_all: config.ecrAll, max_concurrent: config.maxConcurrent }, 'ecr serve listening');
  await closeOnSignal(app, gateway);
  // Keep-alive sockets to the upstream would otherwise hold the event loop open after close.
  setTimeout(() => process.exit(process.exitCode ?? 0), 200).unref();
  return 0;
}
