/**
 * What a WebGpuBackend is made with. The CLI fills these from its flags and the ECR_WEBGPU_* and
 * ECR_DEBUG variables (src/cli/backend-env.ts); a library user passes them (getBackend's
 * BackendOptions.webgpu, or `new WebGpuBackend(options)`), and gets the defaults otherwise.
 */
import type { AdapterPreference } from './device/kinds.js';
import type { MetricsKernelPreference } from './tuning.js';

export interface WebGpuBackendOptions {
  /** Upload E as unorm16 for every call (also per call: ComputeOptions.compact). */
  compact?: 'unorm16';
  /** Adapter kind for this backend's device (default 'auto': native, then OpenGL ES). */
  adapter?: AdapterPreference;
  /**
   * Who forced `adapter`, as the adapter choice line says it (default "asked for by the adapter
   * option"; the CLI says "forced by --adapter" or "forced by ECR_WEBGPU_ADAPTER").
   */
  adapterReason?: string;
  /**
   * Trajectories per chunk, to bound the GPU and staging memory one call holds (default: chunks
   * of about 256 MiB of buffers, a multiple of 256 trajectories where that fits the device's
   * binding limits; an asked-for size is kept, lowered only to those limits).
   */
  chunkTrajectories?: number;
  /** Force the metrics kernel (diagnostics; default 'auto', see kernel-choice.ts). A kind that cannot run the shape is a UsageError. */
  kernel?: MetricsKernelPreference;
  /** Dawn's disable_robustness toggle on every adapter (true) or on none (false); default: native adapters only. */
  disableRobustness?: boolean;
  /**
   * Let Dawn's own stderr lines through (they are caught and kept as reasons otherwise), and
   * report the adapter choice: to `reportAdapter`, else in one line on stderr.
   */
  debug?: boolean;
  /**
   * Called once with the adapter choice (one line: which adapter, software or hardware, and why
   * the kinds before it were skipped) when the backend first computes on its device, so that
   * `auto` probing a device it then does not use stays quiet. Absent: no report unless `debug`.
   */
  reportAdapter?: (choice: string) => void;
}
