/**
 * Every environment variable the WebGPU backend reads, parsed in this one place (documented in
 * README.md, "Environment"). A malformed value is a UsageError naming the variable, never a
 * silent default.
 */
import { UsageError } from '../../../core/errors.js';

export type AdapterKind = 'native' | 'opengles';
export type AdapterPreference = AdapterKind | 'auto';
export const ADAPTER_PREFERENCES: readonly AdapterPreference[] = ['auto', 'native', 'opengles'];

export interface WebGpuEnv {
  /** ECR_WEBGPU_ADAPTER=auto|native|opengles: which adapter kind to open (default auto). */
  adapter: AdapterPreference;
  /** ECR_WEBGPU_COMPACT=unorm16: upload E as unorm16 unless the caller says otherwise (what `ecr bench` and `ecr score` pick up). */
  compact?: 'unorm16';
  /** ECR_WEBGPU_UNSAFE_FAST=1|0: Dawn's disable_robustness on every adapter (1) or on none (0); default native adapters only. */
  disableRobustness?: boolean;
  /** ECR_WEBGPU_KERNEL: forces the metrics kernel (diagnostics, the device script); checked against the kernel list by the backend. */
  kernel?: string;
  /**
   * ECR_DEBUG lists debug topics, comma-separated; `webgpu` (or `all`, `*`, `1`) lets Dawn's own
   * stderr lines through (src/backends/webgpu/device/native-stderr.ts) and reports the adapter choice.
   */
  debug: boolean;
}

function oneOf<T extends string>(name: string, value: string, allowed: readonly T[]): T {
  if (!(allowed as readonly string[]).includes(value)) throw new UsageError(`${name} must be one of ${allowed.join(', ')}, got ${JSON.stringify(value)}`);
  return value as T;
}

export function readWebGpuEnv(env: Readonly<Record<string, string | undefined>> = process.env): WebGpuEnv {
  const set = (name: string): string | undefined => (env[name] === undefined || env[name] === '' ? undefined : env[name]);
  const adapter = set('ECR_WEBGPU_ADAPTER');
  const compact = set('ECR_WEBGPU_COMPACT');
  const unsafe = set('ECR_WEBGPU_UNSAFE_FAST');
  const debugTopics = (set('ECR_DEBUG') ?? '').split(',').map((s) => s.trim().toLowerCase());
  return {
    adapter: adapter === undefined ? 'auto' : oneOf('ECR_WEBGPU_ADAPTER', adapter, ADAPTER_PREFERENCES),
    compact: compact === undefined ? undefined : oneOf('ECR_WEBGPU_COMPACT', compact, ['unorm16'] as const),
    disableRobustness: unsafe === undefined ? undefined : oneOf('ECR_WEBGPU_UNSAFE_FAST', unsafe, ['1', '0'] as const) === '1',
    kernel: set('ECR_WEBGPU_KERNEL'),
    debug: debugTopics.some((t) => t === 'webgpu' || t === 'all' || t === '*' || t === '1'),
  };
}
