/**
 * `ecr bench-pipeline`: the arguments and the summary of the pipeline benchmark
 * (src/bench/pipeline-bench.ts, its scenarios and targets) or, with --gateway, of the gateway
 * benchmark (src/bench/gateway.ts).
 */
import type { ParseArgsConfig } from 'node:util';
import { parseArgs } from '../core/parse-args.js';
import { UsageError } from '../core/errors.js';
import { runScenario, SCENARIOS } from '../bench/pipeline-bench.js';

const USAGE = `usage: ecr bench-pipeline [--server inproc|child] [--runs N] [--scenario small|ignore-n|small-embed|large|all] [--json]
       ecr bench-pipeline --gateway overhead|concurrency|passthrough|all [--runs N] [--duration S] [--json]
       ecr bench-pipeline --gateway l2-hit|cache-overhead --redis URL [--runs N] [--json]`;

const HELP = `${USAGE}

Times the full pipeline against the loopback OpenAI-compatible server (no network, no model)
and compares it with the bare HTTP call chain; with --gateway, times ecr serve (src/bench/gateway.ts).
  --server S     child: the loopback server in a child process, with its own event loop, as a real server (default);
                 inproc: in this process
  --runs N       timed runs per scenario, after 2 warm-up runs (default 7)
  --scenario S   small (K=4, H=1, 20 ms per call) | ignore-n (the same, server ignores n) | small-embed (the same, server embeddings) | large (K=64, H=4, 50 ms) | all (default)
  --gateway G    overhead | concurrency | passthrough | all: ecr serve through the openai client against the loopback
  --duration S   seconds of the --gateway concurrency run (default 30)
  --redis URL    the Redis of the --gateway l2-hit and cache-overhead runs (e.g. redis-server --port 6390 --save '')
  --json         print one JSON object instead of the summary
  -h, --help     print this help`;

/** The flags `ecr bench-pipeline` accepts; HELP explains each (test/cli-surface.test.ts checks). */
export const OPTIONS = {
  server: { type: 'string', default: 'child' },
  runs: { type: 'string', default: '7' },
  scenario: { type: 'string', default: 'all' },
  json: { type: 'boolean', default: false },
  gateway: { type: 'string' },
  duration: { type: 'string', default: '30' },
  redis: { type: 'string' },
  help: { type: 'boolean', short: 'h', default: false },
} as const satisfies NonNullable<ParseArgsConfig['options']>;

export async function main(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: OPTIONS,
      strict: true,
      allowPositionals: false,
    }));
  } catch (e) {
    throw new UsageError(`${(e as Error).message}\n${USAGE}`);
  }
  if (values.help) {
    process.stdout.write(HELP + '\n');
    return 0;
  }
  if (values.gateway !== undefined) {
    return (await import('../bench/gateway.js')).runGatewayBench(values.gateway, {
      runs: argv.includes('--runs') ? Number(values.runs) : undefined,
      durationS: Number(values.duration),
      json: values.json,
      redis: values.redis,
    });
  }
  if (values.server !== 'inproc' && values.server !== 'child') throw new UsageError(`--server must be inproc or child\n${USAGE}`);
  const runs = Number(values.runs);
  if (!Number.isInteger(runs) || runs < 1) throw new UsageError(`--runs must be a positive integer\n${USAGE}`);
  const names = values.scenario === 'all' ? Object.keys(SCENARIOS) : [values.scenario];
  for (const n of names) if (!SCENARIOS[n]) throw new UsageError(`unknown scenario "${n}"\n${USAGE}`);

  const results = [];
  for (const n of names) results.push(await runScenario(SCENARIOS[n], values.server, runs));
  if (values.json) {
    process.stdout.write(JSON.stringify({ node: process.version, results }) + '\n');
    return 0;
  }
  const f = (x: number) => x.toFixed(1);
  for (const r of results) {
    const c = r.cold.calls!;
    process.stdout.write(
      `${r.scenario}: K=${r.k} H=${r.horizon} latency=${r.latencyMs}ms maxParallel=${r.maxParallel}${r.ignoreN ? ' (server ignores n)' : ''}${r.embeddings ? ' (embedding model)' : ''} server=${r.server} runs=${r.runs}\n` +
        `  floor   median ${f(r.transportFloor.medianMs)} ms (min ${f(r.transportFloor.minMs)}): the same HTTP call chain, transport and JSON only\n` +
        `  cold    median ${f(r.cold.medianMs)} ms (min ${f(r.cold.minMs)}, max ${f(r.cold.maxMs)}); target <= ${f(r.cold.targetMs)} ms (critical path ${r.criticalPathMs} ms)${r.cold.medianMs <= r.cold.targetMs ? '' : '  MISSED'}\n` +
        `          generations ${c.generations} (expected K+K*H = ${r.cold.expectedGenerations}); HTTP chat requests ${c.generateRequests} generate + ${c.unrollRequests} unroll; embed requests ${c.embedRequests}; parallel speedup ${f(r.cold.medianParallelSpeedup)}x\n`,
    );
    if (r.repeat) {
      const rc = r.repeat.calls!;
      process.stdout.write(
        `  repeat  median ${r.repeat.medianMs.toFixed(2)} ms (min ${r.repeat.minMs.toFixed(2)}, max ${r.repeat.maxMs.toFixed(2)}); target <= 5 ms${r.repeat.medianMs <= 5 ? '' : '  MISSED'}; chat requests ${rc.generateRequests + rc.unrollRequests}\n`,
      );
    }
  }
  return 0;
}
