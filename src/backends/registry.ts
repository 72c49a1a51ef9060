/**
 * Backend lookup and the `auto` choice. Backends are loaded lazily so that scoring on the CPU
 * never loads Dawn. One instance per backend and distinct BackendOptions (options.ts), made on
 * first use with those options; a caller that passes none shares the default instance.
 */
import { describeValue } from '../core/batch.js';
import { UsageError } from '../core/errors.js';
import { BACKEND_CHOICES, type BackendChoice, type BackendName, type ScoreBackend } from './backend.js';
import { optionsKey, type BackendOptions } from './options.js';

export type { BackendOptions } from './options.js';

const BACKEND_NAMES: readonly BackendName[] = ['cpu-reference', 'cpu', 'webgpu'];

/** A name from a caller (JavaScript or a config) that is not a backend, as a UsageError listing the real ones. */
function unknownBackend(name: unknown, allowed: readonly string[]): UsageError {
  return new UsageError(`unknown backend ${typeof name === 'string' ? JSON.stringify(name) : String(name)}: expected one of ${allowed.join(', ')}`);
}

const instances = new Map<string, Promise<ScoreBackend>>();

/** The instance key: only the options of the backend named count (cpu options do not split webgpu instances). */
function instanceKey(name: BackendName, options: BackendOptions | undefined): string {
  if (options !== undefined && (typeof options !== 'object' || options === null)) {
    throw new UsageError(`backend options must be an object, got ${describeValue(options)}`);
  }
  if (name === 'cpu') return `cpu${optionsKey(options?.cpu)}`;
  if (name === 'webgpu') return `webgpu${optionsKey(options?.webgpu)}`;
  return name;
}

async function load(name: BackendName, options: BackendOptions | undefined): Promise<ScoreBackend> {
  switch (name) {
    case 'cpu-reference': {
      const { CpuReferenceBackend } = await import('./cpu-reference.js');
      return new CpuReferenceBackend();
    }
    case 'cpu': {
      const { CpuBackend } = await import('./cpu/index.js');
      return new CpuBackend(options?.cpu);
    }
    case 'webgpu': {
      const { WebGpuBackend } = await import('./webgpu/index.js');
      const webgpu = options?.webgpu;
      const backend = new WebGpuBackend(typeof webgpu === 'function' ? webgpu() : webgpu);
      // Open the device now, so an unavailable GPU fails here (BackendUnavailableError) rather than mid-batch.
      await backend.describe();
      return backend;
    }
  }
}

/** Returns the shared instance of a named backend for these options (created on first use). */
export function getBackend(name: BackendName, options?: BackendOptions): Promise<ScoreBackend> {
  if (!BACKEND_NAMES.includes(name)) {
    return Promise.reject(
      (name as string) === 'auto'
        ? new UsageError('getBackend needs a concrete backend name; resolve "auto" with chooseBackend first')
        : unknownBackend(name, BACKEND_NAMES),
    );
  }
  let key: string;
  try {
    key = instanceKey(name, options);
  } catch (err) {
    // Options the caller computes on reading (the CLI parses its environment then) fail as the backend's construction would.
    return Promise.reject(err);
  }
  let p = instances.get(key);
  if (!p) {
    p = load(name, options);
    instances.set(key, p);
    // A failed load must not be cached: the next call may run where the backend is available.
    p.catch(() => instances.delete(key));
  }
  return p;
}

/** Shape hint for `auto`: the size of the work decides whether the GPU pays for its overhead. */
export interface WorkHint {
  n: number;
  t: number;
  m: number;
  d?: number;
  a?: number;
}

type Probe = { ok: true; adapter: string } | { ok: false; reason: string };
const webgpuProbes = new Map<string, Promise<Probe>>();

/** Opens the WebGPU backend once per process and options (cached) and reports whether it runs on hardware. */
function probeWebGpu(options: BackendOptions | undefined): Promise<Probe> {
  let key: string;
  try {
    key = instanceKey('webgpu', options);
  } catch (err) {
    return Promise.resolve({ ok: false, reason: (err as Error).message });
  }
  let probe = webgpuProbes.get(key);
  if (!probe) {
    probe = getBackend('webgpu', options).then(
      async (b) => ({ ok: true as const, adapter: (await (b as import('./webgpu/index.js').WebGpuBackend).describe()).adapter }),
      (err: Error) => ({ ok: false as const, reason: err.message }),
    );
    webgpuProbes.set(key, probe);
  }
  return probe;
}

/**
 * Resolves `auto` to a concrete backend name for the given work: the CPU backend unless the batch
 * is big enough for the measured cost model (src/backends/webgpu/cost-model.ts) to favour a
 * hardware WebGPU adapter. Without an adapter, `auto` stays on the CPU with a one-line warning.
 */
export async function chooseBackend(choice: BackendChoice, hint?: WorkHint, options?: BackendOptions): Promise<BackendName> {
  if (!BACKEND_CHOICES.includes(choice)) throw unknownBackend(choice, BACKEND_CHOICES);
  if (choice !== 'auto') return choice;
  if (!hint) return 'cpu';
  const { worthProbing, isSoftwareAdapter } = await import('./webgpu/cost-model.js');
  if (!worthProbing(hint)) return 'cpu';
  const probe = await probeWebGpu(options);
  if (!probe.ok) {
    warnOnce(`ecr: auto backend: using cpu, WebGPU unavailable (${probe.reason})`);
    return 'cpu';
  }
  if (isSoftwareAdapter(probe.adapter)) {
    warnOnce(`ecr: auto backend: using cpu, the only WebGPU adapter is a software one (${probe.adapter})`);
    return 'cpu';
  }
  // Never a backend that cannot run the shape (a trajectory over the device's binding limit).
  const { internalsOf } = await import('./webgpu/internals.js');
  const unfit = await internalsOf(await getBackend('webgpu', options)).unsupported(hint);
  if (unfit) {
    warnOnce(`ecr: auto backend: using cpu, this batch cannot run on the WebGPU device (${unfit})`);
    return 'cpu';
  }
  return 'webgpu';
}

const warned = new Set<string>();
function warnOnce(line: string): void {
  if (warned.has(line)) return;
  warned.add(line);
  process.stderr.write(`${line}\n`);
}

/** Disposes every backend instance created so far, for every option set (lets the process exit cleanly). */
export async function disposeBackends(): Promise<void> {
  const all = [...instances.values()];
  instances.clear();
  for (const p of all) {
    try {
      const b = await p;
      await b.dispose?.();
    } catch {
      // A backend that failed to load has nothing to dispose.
    }
  }
}
