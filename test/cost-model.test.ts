/** `auto`'s cost model scales the cpu backend's measured rate with this machine's CPUs (issue 21). */
import { describe, expect, it } from 'vitest';
import { CostModel, MEASURED_CPUS, cpuEstimateMs, gpuEstimateMs, worthProbing } from '../src/backends/webgpu/cost-model.js';

const shape = { n: 4_000_000, t: 5, m: 8 };
const values = shape.n * shape.t * shape.m;

describe('the cost model', () => {
  it('gives the measured CPU rate on the measured machine, and divides it by the worker count elsewhere', () => {
    expect(cpuEstimateMs(shape, MEASURED_CPUS)).toBeCloseTo((values * CostModel.cpuNsPerValue) / 1e6, 9);
    expect(cpuEstimateMs(shape, 2)).toBeCloseTo(8 * cpuEstimateMs(shape, MEASURED_CPUS), 9);
    expect(cpuEstimateMs(shape, 64)).toBeCloseTo(cpuEstimateMs(shape, MEASURED_CPUS) / 4, 9);
  });

  it('probes for a GPU on a 16-core or 2-core machine, not on a 64-core one, where the CPU is faster', () => {
    expect(gpuEstimateMs(shape)).toBeLessThan(cpuEstimateMs(shape, MEASURED_CPUS));
    expect(worthProbing(shape, MEASURED_CPUS)).toBe(true);
    expect(worthProbing(shape, 2)).toBe(true);
    expect(worthProbing(shape, 64)).toBe(false);
  });

  it('never probes below the minimum size, whatever the machine', () => {
    expect(worthProbing({ n: 1000, t: 5, m: 8 }, 1)).toBe(false);
  });
});
