/**
 * The options a caller hands down with its backend choice (scoreBatch, the engine's settings, the
 * pipeline, the queue worker, the bench): one object, passed explicitly, never set as a module
 * global. The registry keeps one instance per backend and distinct options (registry.ts).
 */
import type { CpuBackendOptions } from './cpu/index.js';
import type { WebGpuBackendOptions } from './webgpu/options.js';

export interface BackendOptions {
  /** For the `cpu` backend: threads, split thresholds, staging, offload. */
  cpu?: CpuBackendOptions;
  /**
   * For the `webgpu` backend: adapter, compact upload, diagnostics, the adapter report. Or a
   * function returning them, called only when a webgpu backend is made with these options (and
   * then keyed by its identity): the CLI parses its ECR_WEBGPU_* variables there, so that a bad
   * value stops a run that uses the GPU and no other, as when the backend read them itself.
   */
  webgpu?: WebGpuBackendOptions | (() => WebGpuBackendOptions);
}

const functionIds = new WeakMap<object, number>();
let nextFunctionId = 1;

/**
 * A key equal for equal options: plain values by value (object keys sorted), functions by
 * identity. So `{ cpu: { threads: 2 } }` written afresh on every call shares one instance, while
 * two different report callbacks get two.
 */
export function optionsKey(value: unknown): string {
  if (value === undefined) return '';
  if (typeof value === 'function') {
    let id = functionIds.get(value);
    if (id === undefined) {
      id = nextFunctionId++;
      functionIds.set(value, id);
    }
    return `fn#${id}`;
  }
  if (Array.isArray(value)) return `[${value.map(optionsKey).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    const entries = Object.keys(value)
      .sort()
      .map((k) => [k, (value as Record<string, unknown>)[k]] as const)
      .filter(([, v]) => v !== undefined);
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${optionsKey(v)}`).join(',')}}`;
  }
  if (typeof value === 'bigint') return `${value}n`;
  // JSON has no symbols.
  if (typeof value === 'symbol') return String(value);
  return JSON.stringify(value);
}
