#!/usr/bin/env node
/**
 * `ecr` command-line entry: dispatches to one module per subcommand (src/cli/*.ts). Each
 * subcommand returns its exit code; errors are mapped to codes here: 2 for bad input or usage,
 * 1 for a failure the engine reports by type (a backend that cannot run here, the GPU, the LLM
 * server), each as one line; only an untyped error (a bug) prints its stack, as a bug report.
 */
import { readFileSync } from 'node:fs';
import { EcrError, isUserError } from './core/errors.js';
import { disposeBackends } from './backends/registry.js';

const USAGE = `usage: ecr <command> [options]

commands:
  score FILE|-    score a JSONL, Parquet or Arrow file of trajectories (ECR-SPEC section 5)
  convert IN OUT  convert trajectories between JSONL, Parquet and Arrow IPC, validating every row
  bench           time a backend on a synthetic batch
  run PROMPT      run the full ECR pipeline against an OpenAI-compatible server
  bench-pipeline  time the pipeline against a loopback OpenAI-compatible server
  serve           an OpenAI-compatible ECR gateway in front of an LLM server
  demo            score the bundled examples and print a table and an audit trace
  calibrate FILE  choose tau (and weights) from data, calibrate pCorrect, write a config and a report
  maturity FILE   the paper's maturity checks M1-M4 (exit 3 when one fails, 4 when too little data)
  worker          score the shards of "ecr score --queue" runs from a Redis queue

options:
  -h, --help      print this help
  -V, --version   print the version of ecr-engine

Run "ecr <command> --help" for a command's options.`;

/** The package's version, read from the package.json beside dist/ (and src/) at run time. */
function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

type Command = (argv: string[]) => Promise<number>;

const COMMANDS: Record<string, () => Promise<Command>> = {
  score: async () => (await import('./cli/score.js')).main,
  convert: async () => (await import('./cli/convert.js')).main,
  bench: async () => (await import('./cli/bench.js')).main,
  run: async () => (await import('./cli/run.js')).main,
  'bench-pipeline': async () => (await import('./cli/bench-pipeline.js')).main,
  serve: async () => (await import('./cli/serve.js')).main,
  demo: async () => (await import('./cli/demo.js')).main,
  calibrate: async () => (await import('./cli/calibrate.js')).main,
  maturity: async () => (await import('./cli/maturity.js')).main,
  worker: async () => (await import('./cli/worker.js')).main,
};

async function cliMain(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd === undefined) {
    process.stderr.write(USAGE + '\n');
    return 2;
  }
  if (cmd === '--help' || cmd === '-h' || cmd === 'help') {
    process.stdout.write(USAGE + '\n');
    return 0;
  }
  if (cmd === '--version' || cmd === '-V') {
    process.stdout.write(packageVersion() + '\n');
    return 0;
  }
  const loader = COMMANDS[cmd];
  if (!loader) {
    process.stderr.write(`ecr: unknown command "${cmd}"\n${USAGE}\n`);
    return 2;
  }
  try {
    return await (
      await loader()
    )(rest);
  } catch (err) {
    if (isUserError(err)) {
      process.stderr.write(`ecr ${cmd}: ${(err as Error).message}\n`);
      return 2;
    }
    if (err instanceof EcrError) {
      // Typed failures (BackendUnavailableError, GpuError, LLM errors) carry their whole story in
      // the message; a stack would only say where it was thrown.
      process.stderr.write(`ecr ${cmd}: ${err.message}\n`);
      return 1;
    }
    process.stderr.write(`ecr ${cmd}: internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    return 1;
  } finally {
    await disposeBackends();
  }
}

// A reader that goes away early (`ecr demo | head`) ends a command that prints to stdout quietly, as
// a shell tool ends on SIGPIPE. Results written through a Sink (ecr score) report it themselves:
// the Sink's own listener is then present, and the run ends with its one-line message and exit 1.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (process.stdout.listenerCount('error') > 1) return;
  if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  process.stderr.write(`ecr: cannot write to stdout: ${err.message}\n`);
  process.exit(1);
});

cliMain(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`ecr: ${String(err)}\n`);
    process.exitCode = 1;
  },
);
