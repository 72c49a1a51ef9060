/**
 * Backend lookup and the `auto` choice. Backends are loaded lazily so that scoring on the CPU
 * never loads Dawn.
 */
import { BackendUnavailableError } from '../errors.js';
import type { BackendChoice, BackendName, ScoreBackend } from './backend.js';

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
    case 'webgpu':
      throw new BackendUnavailableError('webgpu', 'the WebGPU backend is not built yet; use --backend cpu');
  }
}

/** Returns the shared instance of a named backend (created on first use). */
export function getBackend(name: BackendName): Promise<ScoreBackend> {
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

/** Resolves `auto` to a concrete backend name for the given work. */
export async function chooseBackend(choice: BackendChoice, _hint?: WorkHint): Promise<BackendName> {
  if (choice !== 'auto') return choice;
  return 'cpu';
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
