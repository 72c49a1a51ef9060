/**
 * `ecr bench`: throughput of one backend on a deterministic synthetic batch (src/bench/).
 * Human-readable by default; --json prints exactly one JSON object on stdout.
 */
import type { ParseArgsConfig } from 'node:util';
import { UsageError } from '../core/errors.js';
import { toResolvedConfig } from '../core/config.js';
import { BACKEND_CHOICES, type BackendChoice } from '../backends/backend.js';
import { runBench, type BenchResult } from '../bench/run-bench.js';
import { parseFlags, readJsonConfig } from './io.js';
import { adapterFlag, backendOptionsFromEnv } from './backend-env.js';

const HELP = `usage: ecr bench [options]

Times computeMetrics on a synthetic batch of N trajectories of T steps x M components
(half stable, half drifting), generated once and untimed; reports the median of R runs.
  --backend B      auto | webgpu | cpu | cpu-reference (default auto)
  --n N            trajectories in the batch (default 100000)
  --t T            steps per trajectory, >= 2 (default 5)
  --m M            components per step (default 8)
  --d D            add step embeddings of width D (TS on embeddings)
  --a A            add a policy of width A (PD on the policy)
  --reps R         timed runs; the median is reported (default 5)
  --warmup W       untimed runs before them (default 1)
  --seed S         seed of the synthetic batch (default 12345)
  --config FILE    ECR configuration JSON (ECR-SPEC section 4; default: the defaults)
  --dtype DT       float64 | float32: element type of the inputs (default float64)
  --unshared       inputs in ordinary memory (default for cpu: SharedArrayBuffer, read in place by its worker threads)
  --covariance     also return the shrunk covariance matrices
  --reuse-outputs  pass the same output arrays to every call (ComputeOptions.out) instead of fresh ones per call
  --adapter A      WebGPU adapter: auto | native | opengles (default auto: native, then OpenGL ES; also ECR_WEBGPU_ADAPTER); the chosen one is named on stderr
  --compact unorm16  upload E to the GPU as 16-bit fixed point (webgpu only)
  --json           print one JSON object instead of the table
  -h, --help       print this help`;

/** Input bytes beyond which a run would exhaust memory rather than measure anything. */
const MAX_INPUT_BYTES = 16 * 2 ** 30;

function integerArg(name: string, raw: string | undefined, min: number): number | undefined {
  if (raw === undefined) return undefined;
  const v = Number(raw);
  if (raw.trim() === '' || !Number.isInteger(v) || v < min) throw new UsageError(`--${name} must be an integer >= ${min}, got "${raw}"`);
  return v;
}

/** The flags `ecr bench` accepts; HELP explains each (test/cli-surface.test.ts checks). */
export const OPTIONS = {
  backend: { type: 'string', default: 'auto' },
  n: { type: 'string', default: '100000' },
  t: { type: 'string', default: '5' },
  m: { type: 'string', default: '8' },
  d: { type: 'string' },
  a: { type: 'string' },
  reps: { type: 'string', default: '5' },
  warmup: { type: 'string', default: '1' },
  config: { type: 'string' },
  dtype: { type: 'string', default: 'float64' },
  unshared: { type: 'boolean', default: false },
  covariance: { type: 'boolean', default: false },
  'reuse-outputs': { type: 'boolean', default: false },
  seed: { type: 'string', default: '12345' },
  json: { type: 'boolean', default: false },
  adapter: { type: 'string' },
  compact: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies NonNullable<ParseArgsConfig['options']>;

export async function main(argv: string[]): Promise<number> {
  const values = parseFlags(argv, OPTIONS, HELP);
  if (values.help) {
    process.stdout.write(HELP + '\n');
    return 0;
  }

  const backend = values.backend as BackendChoice;
  if (!BACKEND_CHOICES.includes(backend)) throw new UsageError(`--backend must be one of ${BACKEND_CHOICES.join(', ')}, got "${values.backend}"`);
  const n = integerArg('n', values.n, 1)!;
  const t = integerArg('t', values.t, 2)!;
  const m = integerArg('m', values.m, 1)!;
  const d = integerArg('d', values.d, 1);
  const a = integerArg('a', values.a, 1);
  const reps = integerArg('reps', values.reps, 1)!;
  const warmup = integerArg('warmup', values.warmup, 0)!;
  const seed = integerArg('seed', values.seed, 0)!;
  if (values.dtype !== 'float64' && values.dtype !== 'float32') throw new UsageError(`--dtype must be float64 or float32, got "${values.dtype}"`);
  const dtype = values.dtype;
  const bytesPer = dtype === 'float32' ? 4 : 8;
  const inputBytes = n * t * (m + (d ?? 0) + (a ?? 0)) * bytesPer;
  if (inputBytes > MAX_INPUT_BYTES) {
    throw new UsageError(`the batch would need ${(inputBytes / 2 ** 30).toFixed(1)} GiB of input; reduce --n (limit ${MAX_INPUT_BYTES / 2 ** 30} GiB)`);
  }
  const backendOptions = backendOptionsFromEnv(process.env, { adapter: adapterFlag(values.adapter), reportAdapter: true });
  if (values.compact !== undefined && values.compact !== 'unorm16') throw new UsageError(`--compact must be "unorm16", got "${values.compact}"`);
  const config = toResolvedConfig(values.config ? await readJsonConfig(values.config) : {});

  const result = await runBench({
    backend,
    n,
    t,
    m,
    d,
    a,
    reps,
    warmup,
    config,
    dtype,
    seed,
    shared: values.unshared ? false : undefined,
    covariance: values.covariance,
    reuseOutputs: values['reuse-outputs'],
    backendOptions,
    ...(values.compact ? { compact: 'unorm16' as const } : {}),
  });
  process.stdout.write(values.json ? JSON.stringify(result) + '\n' : formatHuman(result));
  return 0;
}

function formatHuman(r: BenchResult): string {
  const rate = (x: number) => Math.round(x).toLocaleString('en-US');
  const ms = (x: number) => x.toFixed(x < 10 ? 3 : 1);
  const lines = [
    `backend      ${r.backend}`,
    `batch        n=${r.n} t=${r.t} m=${r.m} d=${r.d ?? '-'} a=${r.a ?? '-'} (${r.dtype}, ${r.shared ? 'shared memory' : 'ordinary memory'}${r.reuseOutputs ? ', reused outputs' : ''})`,
    `time         ${ms(r.msPerBatch)} ms per batch (median of ${r.reps}; min ${ms(r.minMs)}, max ${ms(r.maxMs)}; ${r.warmup} warm-up)`,
    `throughput   ${rate(r.trajPerSec)} trajectories/s`,
  ];
  if (r.stages)
    lines.push(
      `stages       ${Object.entries(r.stages)
        .map(([k, v]) => `${k} ${ms(v)} ms`)
        .join(', ')}`,
    );
  if (r.kernelTrajPerSec !== undefined) lines.push(`kernel       ${ms(r.kernelMs!)} ms, ${rate(r.kernelTrajPerSec)} trajectories/s`);
  return lines.join('\n') + '\n';
}
