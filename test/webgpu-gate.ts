/**
 * Opens the WebGPU backend for the webgpu test files. Without an adapter the tests are skipped
 * with the reason printed, unless ECR_REQUIRE_WEBGPU=1 (the CI), where a missing adapter fails.
 */
import { WebGpuBackend, type WebGpuBackendOptions } from '../src/backends/webgpu/index.js';
import type { WebGpuTuning } from '../src/backends/webgpu/tuning.js';

export interface WebGpuGate {
  available: boolean;
  reason: string;
  adapter: string;
}

export async function webGpuGate(): Promise<WebGpuGate> {
  const probe = new WebGpuBackend();
  try {
    const { adapter } = await probe.describe();
    return { available: true, reason: '', adapter };
  } catch (err) {
    const reason = (err as Error).message;
    if (process.env.ECR_REQUIRE_WEBGPU === '1') throw new Error(`ECR_REQUIRE_WEBGPU=1 but no WebGPU adapter could be opened: ${reason}`, { cause: err });
    console.warn(`skipping WebGPU tests: ${reason}`);
    return { available: false, reason, adapter: '' };
  } finally {
    await probe.dispose();
  }
}

/** A backend from public options and internal tuning in one object (split by key; kernel and disableRobustness go in as tuning). */
export function newBackend(options: WebGpuBackendOptions & WebGpuTuning = {}): WebGpuBackend {
  const { compact, adapter, adapterReason, chunkTrajectories, debug, reportAdapter, ...tuning } = options;
  return new WebGpuBackend({ compact, adapter, adapterReason, chunkTrajectories, debug, reportAdapter }, tuning);
}
