/** The machine shape from cgroup files (issue 21): written to a temporary root, as a container shows them. */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cpusOfCpuMax, defaultCacheBytes, machineShape } from '../src/core/machine.js';

const GiB = 1024 ** 3,
  MiB = 1024 ** 2;

/** A cgroup root with `files` (path relative to the root -> content). */
function cgroupRoot(files: Record<string, string>): string {
  const root = mkdtempSync(path.join(os.tmpdir(), 'ecr-cgroup-'));
  for (const [file, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(root, file)), { recursive: true });
    writeFileSync(path.join(root, file), text + '\n');
  }
  return root;
}

describe('machineShape', () => {
  it('cgroup v2: CPUs from cpu.max (a fraction rounds down), memory from memory.max', () => {
    const root = cgroupRoot({ 'kubepods/pod1/cpu.max': '150000 100000', 'kubepods/pod1/memory.max': String(GiB) });
    const m = machineShape({ cgroupRoot: root, procSelfCgroup: '0::/kubepods/pod1', cores: 8, totalMemory: 16 * GiB });
    expect(m).toEqual({ cpus: 1, cpuSource: 'cgroup cpu.max 1 of 8 cores', memoryBytes: GiB, memorySource: 'cgroup memory.max' });
  });

  it("cgroup v2: an ancestor's tighter limit applies", () => {
    const root = cgroupRoot({ 'a/cpu.max': '200000 100000', 'a/b/cpu.max': 'max 100000', 'memory.max': String(3 * GiB), 'a/b/memory.max': 'max' });
    const m = machineShape({ cgroupRoot: root, procSelfCgroup: '0::/a/b', cores: 16, totalMemory: 64 * GiB });
    expect([m.cpus, m.memoryBytes]).toEqual([2, 3 * GiB]);
  });

  it('no limit (max), or a quota above the cores: the cores and the total memory', () => {
    const root = cgroupRoot({ 'cpu.max': 'max 100000', 'memory.max': 'max', 'big/cpu.max': '3200000 100000' });
    expect(machineShape({ cgroupRoot: root, procSelfCgroup: '0::/', cores: 4, totalMemory: 8 * GiB })).toEqual({
      cpus: 4,
      cpuSource: '4 cores',
      memoryBytes: 8 * GiB,
      memorySource: 'total',
    });
    expect(machineShape({ cgroupRoot: root, procSelfCgroup: '0::/big', cores: 4, totalMemory: 8 * GiB }).cpus).toBe(4);
  });

  it('cgroup v1: cpu.cfs_quota_us / cpu.cfs_period_us and memory.limit_in_bytes; -1 and the huge "unlimited" are no limit', () => {
    const root = cgroupRoot({
      'cpu,cpuacct/docker/abc/cpu.cfs_quota_us': '300000',
      'cpu,cpuacct/docker/abc/cpu.cfs_period_us': '100000',
      'memory/docker/abc/memory.limit_in_bytes': String(2 * GiB),
      'cpu,cpuacct/free/cpu.cfs_quota_us': '-1',
      'memory/free/memory.limit_in_bytes': '9223372036854771712',
    });
    const limited = machineShape({ cgroupRoot: root, procSelfCgroup: '4:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc', cores: 8, totalMemory: 16 * GiB });
    expect(limited).toEqual({ cpus: 3, cpuSource: 'cgroup cpu.cfs_quota_us 3 of 8 cores', memoryBytes: 2 * GiB, memorySource: 'cgroup memory.limit_in_bytes' });
    const free = machineShape({ cgroupRoot: root, procSelfCgroup: '4:memory:/free\n3:cpu,cpuacct:/free', cores: 8, totalMemory: 16 * GiB });
    expect([free.cpus, free.memoryBytes]).toEqual([8, 16 * GiB]);
  });

  it('no cgroup files at all (not Linux, or an unreadable /sys): the cores and the total memory', () => {
    const m = machineShape({ cgroupRoot: path.join(os.tmpdir(), 'no-such-cgroup-root'), procSelfCgroup: '', cores: 2, totalMemory: GiB });
    expect([m.cpus, m.memoryBytes]).toEqual([2, GiB]);
  });
});

describe('cpusOfCpuMax', () => {
  it('reads "QUOTA PERIOD", with at least one CPU', () => {
    expect(cpusOfCpuMax('400000 100000')).toBe(4);
    expect(cpusOfCpuMax('50000 100000')).toBe(1);
    expect(cpusOfCpuMax('max 100000')).toBeNull();
  });
});

describe('defaultCacheBytes', () => {
  const shape = (memoryBytes: number) => ({ cpus: 2, cpuSource: '', memoryBytes, memorySource: '' });
  it('is 1/32 of the memory, between 32 MiB and 512 MiB', () => {
    expect(defaultCacheBytes(shape(2 * GiB))).toBe(64 * MiB);
    expect(defaultCacheBytes(shape(512 * MiB))).toBe(32 * MiB);
    expect(defaultCacheBytes(shape(64 * GiB))).toBe(512 * MiB);
  });
});
