/**
 * What this process may use of its machine: CPUs and memory, as its container sees them.
 * `os.availableParallelism()` counts the cores the process may run on, not a container's CPU
 * quota, and `os.totalmem()` is the host's memory, not the container's limit; so worker pools and
 * cache budgets sized from them alone oversubscribe a container (issue 21). This reads the
 * process's cgroup limits: cgroup v2 (`cpu.max`, `memory.max`) and, on hosts still on v1,
 * `cpu.cfs_quota_us` / `cpu.cfs_period_us` and `memory.limit_in_bytes`. A limit of an ancestor
 * cgroup applies too, so the tightest along the path wins.
 *
 * The rules: CPUs = min(available cores, floor(quota / period)), at least 1 (a fraction of a CPU
 * rounds down, as Go's automaxprocs does: a pool larger than the quota is throttled every period).
 * Memory = min(total memory, the memory limit).
 */
import { readFileSync } from 'node:fs';
import { availableParallelism, totalmem } from 'node:os';
import { join } from 'node:path';

export interface MachineShape {
  /** Threads worth running at once. */
  cpus: number;
  /** Where `cpus` comes from, for the startup line: "4 cores" or "cgroup cpu.max 2 of 16 cores". */
  cpuSource: string;
  /** Bytes this process may use. */
  memoryBytes: number;
  /** Where `memoryBytes` comes from: "total" or "cgroup memory.max". */
  memorySource: string;
}

/** Where to read from (tests pass a temporary directory) and what the OS reports. */
export interface MachineProbe {
  /** The cgroup file system (default /sys/fs/cgroup). */
  cgroupRoot?: string;
  /** The text of /proc/self/cgroup (default: read). */
  procSelfCgroup?: string;
  cores?: number;
  totalMemory?: number;
}

const read = (file: string): string | null => {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    return null;
  }
};

/** The directories from `path` up to the root, deepest first. */
function upwards(root: string, path: string): string[] {
  const parts = path.split('/').filter(Boolean);
  const dirs: string[] = [];
  for (let k = parts.length; k >= 0; k--) dirs.push(join(root, ...parts.slice(0, k)));
  return dirs;
}

/** CPUs of a `cpu.max` text ("max 100000" or "QUOTA PERIOD"), or null when unlimited or unreadable. */
export function cpusOfCpuMax(text: string): number | null {
  const [quota, period] = text.split(/\s+/);
  if (quota === 'max' || quota === undefined) return null;
  const q = Number(quota),
    p = Number(period ?? 100000);
  return q > 0 && p > 0 ? Math.max(1, Math.floor(q / p)) : null;
}

/** Bytes of a memory limit text ("max", or a number; v1's "unlimited" is a huge number), or null. */
function bytesOfLimit(text: string, total: number): number | null {
  if (text === 'max') return null;
  const n = Number(text);
  return Number.isFinite(n) && n > 0 && n < total ? n : null;
}

export function machineShape(probe: MachineProbe = {}): MachineShape {
  const root = probe.cgroupRoot ?? '/sys/fs/cgroup';
  const cores = probe.cores ?? availableParallelism();
  const total = probe.totalMemory ?? totalmem();
  const cgroupText = probe.procSelfCgroup ?? read('/proc/self/cgroup') ?? '';
  let cpuLimit: number | null = null;
  let memoryLimit: number | null = null;
  let cpuFile = '',
    memoryFile = '';
  const tighter = (current: number | null, found: number | null) => found !== null && (current === null || found < current);
  for (const line of cgroupText.split('\n')) {
    // hierarchy-ID:controller-list:cgroup-path
    const a = line.indexOf(':'),
      b = line.indexOf(':', a + 1);
    if (a < 0 || b < 0) continue;
    const hierarchy = line.slice(0, a),
      controllers = line.slice(a + 1, b),
      path = line.slice(b + 1);
    const names = controllers.split(',');
    if (hierarchy === '0' && controllers === '') {
      // cgroup v2: one hierarchy, its files in the process's own directory and its ancestors'.
      for (const dir of upwards(root, path)) {
        const cpu = read(join(dir, 'cpu.max'));
        const cpus = cpu === null ? null : cpusOfCpuMax(cpu);
        if (tighter(cpuLimit, cpus)) [cpuLimit, cpuFile] = [cpus, 'cpu.max'];
        const mem = read(join(dir, 'memory.max'));
        const bytes = mem === null ? null : bytesOfLimit(mem, total);
        if (tighter(memoryLimit, bytes)) [memoryLimit, memoryFile] = [bytes, 'memory.max'];
      }
    } else if (names.includes('cpu')) {
      for (const dir of upwards(join(root, controllers), path)) {
        const quota = read(join(dir, 'cpu.cfs_quota_us'));
        const period = read(join(dir, 'cpu.cfs_period_us'));
        const cpus = quota === null || Number(quota) <= 0 ? null : cpusOfCpuMax(`${quota} ${period ?? 100000}`);
        if (tighter(cpuLimit, cpus)) [cpuLimit, cpuFile] = [cpus, 'cpu.cfs_quota_us'];
      }
    } else if (names.includes('memory')) {
      for (const dir of upwards(join(root, controllers), path)) {
        const mem = read(join(dir, 'memory.limit_in_bytes'));
        const bytes = mem === null ? null : bytesOfLimit(mem, total);
        if (tighter(memoryLimit, bytes)) [memoryLimit, memoryFile] = [bytes, 'memory.limit_in_bytes'];
      }
    }
  }
  const cpus = cpuLimit !== null && cpuLimit < cores ? cpuLimit : cores;
  const memoryBytes = memoryLimit ?? total;
  return {
    cpus,
    cpuSource: cpus < cores ? `cgroup ${cpuFile} ${cpus} of ${cores} cores` : `${cores} cores`,
    memoryBytes,
    memorySource: memoryLimit !== null ? `cgroup ${memoryFile}` : 'total',
  };
}

let cached: MachineShape | null = null;

/** This process's machine shape, read once. */
export function machine(): MachineShape {
  cached ??= machineShape();
  return cached;
}

/**
 * The default byte bound of each pipeline cache: 1/32 of the memory this process may use, between
 * 32 MiB and 512 MiB (64 MiB at 2 GiB, the default before sizing; the four caches and their
 * overhead then stay under a quarter of a small container's memory).
 */
export function defaultCacheBytes(shape: MachineShape = machine()): number {
  const MiB = 1024 * 1024;
  return Math.min(512 * MiB, Math.max(32 * MiB, Math.floor(shape.memoryBytes / 32 / MiB) * MiB));
}
