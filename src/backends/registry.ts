/**
 * Backend lookup and the `auto` choice. Backends are loaded lazily so that scoring on the CPU
 * never loads Dawn.
 */
import { BackendUnavailableError, UsageError } from '../core/errors.js';
import { BACKEND_CHOICES, type BackendChoice, type BackendName, type ScoreBackend } from './backend.js';

const BACKEND_NAMES: readonly BackendName[] = ['cpu-reference', 'cpu', 'webgpu'];

/** A name from a caller (JavaScript or a config) that is not a backend, as a UsageError listing the real ones. */
function unknownBackend(name: unknown, allowed: readonly string[]): UsageError {
  return new UsageError(`unknown backend ${typeof name === 'string' ? JSON.stringify(name) : String(name)}: expected one of ${allowed.join(', ')}`);
}

const instances = new Map<BackendName, Promise<ScoreBackend>>();

async function load(name: BackendName): Promise<ScoreBackend> {
  switch (name) {
    case 'cpu-reference': {
      const { CpuReferenceBackend } = await import('./cpu-reference.js');
      return new CpuReferenceBackend();
    }
    case 'cpu': {
      const { CpuBackend } = await import('./cpu/index.js');
      return new CpuBackend();
    }
    case 'webgpu': {
      const { WebGpuBackend } = await import('./webgpu/index.js');
      const backend = new WebGpuBackend();
      // Open the device now, so an unavailable GPU fails here (BackendUnavailableError) rather than mid-batch.
      await backend.describe();
      return backend;
    }
  }
}

/** Returns the shared instance of a named backend (created on first use). */
export function getBackend(name: BackendName): Promise<ScoreBackend> {
  if (!BACKEND_NAMES.includes(name)) {
    return Promise.reject((name as string) === 'auto' ? new UsageError('getBackend needs a concrete backend name; resolve "auto" with chooseBackend first') : unknownBackend(name, BACKEND_NAMES));
  }
  let p = instances.get(name);
  if (!p) {
    p = load(name);
    instances.set(name, p);
    // A failed load must not be cached: the next call may run where the backend is available.
    p.catch(() => instances.delete(name));
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

let webgpuProbe: Promise<{ ok: true; adapter: string } | { ok: false; reason: string }> | null = null;

/** Opens the WebGPU backend once per process (cached) and reports whether it runs on hardware. */
function probeWebGpu() {
  webgpuProbe ??= getBackend('webgpu').then(
    async (b) => ({ ok: true as const, adapter: (await (b as import('./webgpu/index.js').WebGpuBackend).describe()).adapter }),
    (err: Error) => ({ ok: false as const, reason: err.message }),
  );
  return webgpuProbe;
}

/**
 * Resolves `auto` to a concrete backend name for the given work: the CPU backend unless the batch
 * is big enough for the measured cost model (src/backends/webgpu/cost-model.ts) to favour a
 * hardware WebGPU adapter. Without an adapter, `auto` stays on the CPU with a one-line warning.
 */
export async function chooseBackend(choice: BackendChoice, hint?: WorkHint): Promise<BackendName> {
  if (!BACKEND_CHOICES.includes(choice)) throw unknownBackend(choice, BACKEND_CHOICES);
  if (choice !== 'auto') return choice;
  if (!hint) return 'cpu';
  const { worthProbing, isSoftwareAdapter } = await import('./webgpu/cost-model.js');
  if (!worthProbing(hint)) return 'cpu';
  const probe = await probeWebGpu();
  if (!probe.ok) {
    warnOnce(`ecr: auto backend: using cpu, WebGPU unavailable (${probe.reason})`);
    return 'cpu';
  }
  if (isSoftwareAdapter(probe.adapter)) {
    warnOnce(`ecr: auto backend: using cpu, the only WebGPU adapter is a software one (${probe.adapter})`);
    return 'cpu';
  }
  // Never a backend that cannot run the shape (a trajectory over the device's binding limit).
  const webgpu = (await getBackend('webgpu')) as import('./webgpu/index.js').WebGpuBackend;
  const unfit = await webgpu.unsupported(hint);
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

/** Disposes every backend instance created so far (lets the process exit cleanly). */
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
