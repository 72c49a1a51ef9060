/**
 * The backend options every command hands down, from its --adapter flag and the environment:
 * ECR_WEBGPU_ADAPTER, ECR_WEBGPU_COMPACT, ECR_WEBGPU_UNSAFE_FAST, ECR_WEBGPU_KERNEL and ECR_DEBUG
 * (docs/cli.md, "Environment variables"). A malformed value is a UsageError naming the variable, raised when a
 * webgpu backend is first made (BackendOptions.webgpu as a function): a run that never uses the
 * GPU is not stopped by it.
 */
import { UsageError } from '../core/errors.js';
import type { BackendOptions } from '../backends/options.js';
import { ADAPTER_PREFERENCES, type AdapterPreference } from '../backends/webgpu/device/kinds.js';
import type { WebGpuBackendOptions } from '../backends/webgpu/options.js';
import { METRICS_KERNEL_PREFERENCES } from '../backends/webgpu/tuning.js';

type Env = Readonly<Record<string, string | undefined>>;

function oneOf<T extends string>(name: string, value: string, allowed: readonly T[]): T {
  if (!(allowed as readonly string[]).includes(value)) throw new UsageError(`${name} must be one of ${allowed.join(', ')}, got ${JSON.stringify(value)}`);
  return value as T;
}

/** `--adapter A`, checked at once (a typo is a usage error whatever the backend). */
export function adapterFlag(value: string | undefined): AdapterPreference | undefined {
  if (value === undefined) return undefined;
  if (!ADAPTER_PREFERENCES.includes(value as AdapterPreference)) {
    throw new UsageError(`--adapter must be one of ${ADAPTER_PREFERENCES.join(', ')}, got ${JSON.stringify(value)}`);
  }
  return value as AdapterPreference;
}

/** ECR_DEBUG lists debug topics, comma-separated; `webgpu` (or `all`, `*`, `1`) turns on the WebGPU ones. */
export function webGpuDebug(env: Env): boolean {
  const topics = (env.ECR_DEBUG ?? '').split(',').map((s) => s.trim().toLowerCase());
  return topics.some((t) => t === 'webgpu' || t === 'all' || t === '*' || t === '1');
}

export interface WebGpuFlags {
  /** --adapter, when the command has it and it was given (wins over ECR_WEBGPU_ADAPTER). */
  adapter?: AdapterPreference;
  /** Name the adapter choice in one line on stderr (score, bench, demo, worker); otherwise only under ECR_DEBUG=webgpu. */
  reportAdapter: boolean;
}

/** The webgpu backend's options from the environment and the command's flags. */
export function webGpuOptionsFromEnv(env: Env, flags: WebGpuFlags): WebGpuBackendOptions {
  const set = (name: string): string | undefined => (env[name] === undefined || env[name] === '' ? undefined : env[name]);
  const adapterEnv = set('ECR_WEBGPU_ADAPTER');
  const compact = set('ECR_WEBGPU_COMPACT');
  const unsafe = set('ECR_WEBGPU_UNSAFE_FAST');
  const kernel = set('ECR_WEBGPU_KERNEL');
  const fromEnv = adapterEnv === undefined ? undefined : oneOf('ECR_WEBGPU_ADAPTER', adapterEnv, ADAPTER_PREFERENCES);
  const options: WebGpuBackendOptions = {
    compact: compact === undefined ? undefined : oneOf('ECR_WEBGPU_COMPACT', compact, ['unorm16'] as const),
    disableRobustness: unsafe === undefined ? undefined : oneOf('ECR_WEBGPU_UNSAFE_FAST', unsafe, ['1', '0'] as const) === '1',
    kernel: kernel === undefined ? undefined : oneOf('ECR_WEBGPU_KERNEL', kernel, METRICS_KERNEL_PREFERENCES),
    debug: webGpuDebug(env),
  };
  if (flags.adapter !== undefined) Object.assign(options, { adapter: flags.adapter, adapterReason: 'forced by --adapter' });
  else if (fromEnv !== undefined) Object.assign(options, { adapter: fromEnv, adapterReason: 'forced by ECR_WEBGPU_ADAPTER' });
  if (flags.reportAdapter)
    options.reportAdapter = (choice) => {
      process.stderr.write(`ecr: webgpu adapter: ${choice}\n`);
    };
  return options;
}

/** One BackendOptions object per command: pass this same object everywhere, so every call shares its instances. */
export function backendOptionsFromEnv(env: Env, flags: WebGpuFlags): BackendOptions {
  return { webgpu: () => webGpuOptionsFromEnv(env, flags) };
}
