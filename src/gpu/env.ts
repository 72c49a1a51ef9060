/**
 * Every environment variable the WebGPU backend reads, parsed in this one place (documented in
 * README.md, "Environment"). A malformed value is a UsageError naming the variable, never a
 * silent default.
 */
import { UsageError } from '../errors.js';

export type AdapterKind = 'native' | 'opengles';
export type AdapterPreference = AdapterKind | 'auto';
export const ADAPTER_PREFERENCES: readonly AdapterPreference[] = ['auto', 'native', 'opengles'];

export interface WebGpuEnv {
  /** ECR_WEBGPU_ADAPTER=auto|native|opengles: which adapter kind to open (default auto). */
  adapter: AdapterPreference;
  /**
   * ECR_DEBUG lists debug topics, comma-separated; `webgpu` (or `all`, `*`, `1`) lets Dawn's own
   * stderr lines through (src/gpu/native-stderr.ts) and reports the adapter choice.
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
  const debugTopics = (set('ECR_DEBUG') ?? '').split(',').map((s) => s.trim().toLowerCase());
  return {
    adapter: adapter === undefined ? 'auto' : oneOf('ECR_WEBGPU_ADAPTER', adapter, ADAPTER_PREFERENCES),
    debug: debugTopics.some((t) => t === 'webgpu' || t === 'all' || t === '*' || t === '1'),
  };
}
