/**
 * Adapter discovery: native (Vulkan/Metal/D3D12, core) first, then Dawn's OpenGL ES backend in
 * compatibility mode on surfaceless EGL (a software rasterizer such as llvmpipe where no GPU
 * exists). Each candidate must also yield a device: an adapter whose device request fails (Mesa's
 * lavapipe under Dawn, for one) is skipped with its reason recorded.
 *
 * The choice can be forced with ECR_WEBGPU_ADAPTER=native|opengles or setWebGpuAdapter().
 */
import { BackendUnavailableError, UsageError } from '../errors.js';

export type AdapterKind = 'native' | 'opengles';
export type AdapterPreference = AdapterKind | 'auto';
export const ADAPTER_PREFERENCES: readonly AdapterPreference[] = ['auto', 'native', 'opengles'];

export interface OpenedDevice {
  /** The instance from create(): must outlive every adapter and device made from it (Dawn aborts otherwise). */
  gpu: GPU;
  adapter: GPUAdapter;
  device: GPUDevice;
  kind: AdapterKind;
  description: string;
  timestamps: boolean;
  /** The device was opened with the `subgroups` feature (WGSL `enable subgroups;`). */
  subgroups: boolean;
  /** Smallest subgroup size the adapter may use (adapter info; 4, the WebGPU minimum, when unreported). */
  subgroupMinSize: number;
  /** Opened with Dawn's `disable_robustness` toggle: no bounds clamps on storage accesses. */
  robustnessDisabled: boolean;
}

export interface OpenDeviceOptions {
  /**
   * Dawn's `disable_robustness` toggle: Tint then emits no bounds clamp around storage and
   * workgroup accesses. Only for shaders that guard every access themselves (ours do: dead lanes
   * read a clamped index and write nothing; the host sizes every binding); an out-of-bounds access
   * would be undefined behaviour. true: on every adapter; 'native': on native adapters only (the
   * backend's default: 2.7x faster metrics kernel on the H200); false/absent: never.
   */
  disableRobustness?: boolean | 'native';
}

let preferenceOverride: AdapterPreference | undefined;

/**
 * Forces the adapter kind for devices opened from now on (the CLI's `--adapter`). 'auto' restores
 * the discovery order. Takes precedence over ECR_WEBGPU_ADAPTER.
 */
export function setWebGpuAdapter(preference: AdapterPreference): void {
  if (!ADAPTER_PREFERENCES.includes(preference)) {
    throw new UsageError(`--adapter must be one of ${ADAPTER_PREFERENCES.join(', ')}, got ${JSON.stringify(preference)}`);
  }
  preferenceOverride = preference;
}

export function adapterPreference(): AdapterPreference {
  if (preferenceOverride) return preferenceOverride;
  const env = process.env.ECR_WEBGPU_ADAPTER;
  if (env === undefined || env === '') return 'auto';
  if (!(ADAPTER_PREFERENCES as readonly string[]).includes(env)) {
    throw new UsageError(`ECR_WEBGPU_ADAPTER must be one of ${ADAPTER_PREFERENCES.join(', ')}, got ${JSON.stringify(env)}`);
  }
  return env as AdapterPreference;
}

function limitOf(adapter: GPUAdapter, name: keyof GPUSupportedLimits): number {
  return adapter.limits[name] as number;
}

/** Only the limits the kernels need, as high as the adapter allows. */
function requiredLimits(adapter: GPUAdapter): Record<string, number> {
  return {
    maxComputeWorkgroupSizeX: Math.min(256, limitOf(adapter, 'maxComputeWorkgroupSizeX')),
    maxComputeInvocationsPerWorkgroup: Math.min(256, limitOf(adapter, 'maxComputeInvocationsPerWorkgroup')),
    maxStorageBuffersPerShaderStage: Math.min(10, limitOf(adapter, 'maxStorageBuffersPerShaderStage')),
    maxStorageBufferBindingSize: limitOf(adapter, 'maxStorageBufferBindingSize'),
    maxBufferSize: limitOf(adapter, 'maxBufferSize'),
    maxComputeWorkgroupStorageSize: limitOf(adapter, 'maxComputeWorkgroupStorageSize'),
  };
}

type CreateFn = (options: string[]) => GPU;

async function loadDawn(): Promise<CreateFn> {
  try {
    const mod = (await import('webgpu')) as { create: CreateFn };
    return mod.create;
  } catch (err) {
    throw new BackendUnavailableError('webgpu', `the "webgpu" package (Dawn) could not be loaded: ${(err as Error).message}`, { cause: err });
  }
}

async function tryKind(create: CreateFn, kind: AdapterKind, options: OpenDeviceOptions): Promise<OpenedDevice | string> {
  let gpu: GPU;
  let adapter: GPUAdapter | null;
  // Dawn's node bindings apply instance flags as adapter and device toggles.
  const unguarded = options.disableRobustness === true || (options.disableRobustness === 'native' && kind === 'native');
  const toggles = unguarded ? ['enable-dawn-features=disable_robustness'] : [];
  try {
    if (kind === 'native') {
      gpu = create(toggles);
      adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
    } else {
      // Dawn's GL backend needs an EGL platform; surfaceless needs no display server.
      process.env.EGL_PLATFORM ??= 'surfaceless';
      gpu = create(['backend=opengles', ...toggles]);
      adapter = await gpu.requestAdapter({ featureLevel: 'compatibility' } as GPURequestAdapterOptions);
    }
  } catch (err) {
    return `${kind}: ${(err as Error).message}`;
  }
  if (!adapter) return `${kind}: no adapter`;
  const timestamps = adapter.features.has('timestamp-query');
  // Requested only where the adapter has it: the lane kernel then uses subgroup shuffles.
  const subgroups = adapter.features.has('subgroups');
  const features: GPUFeatureName[] = [];
  if (timestamps) features.push('timestamp-query');
  if (subgroups) features.push('subgroups');
  try {
    const device = await adapter.requestDevice({
      label: `ecr.webgpu.${kind}`,
      requiredLimits: requiredLimits(adapter),
      requiredFeatures: features,
    });
    const info = adapter.info;
    const description = [info.vendor, info.architecture, info.device, info.description].filter((s) => s).join(' ') || 'unknown adapter';
    const subgroupMinSize = subgroups && typeof info.subgroupMinSize === 'number' && info.subgroupMinSize >= 4 ? info.subgroupMinSize : 4;
    return { gpu, adapter, device, kind, description: `${kind}: ${description}`, timestamps, subgroups: subgroups && device.features.has('subgroups'), subgroupMinSize, robustnessDisabled: unguarded };
  } catch (err) {
    return `${kind}: device request failed: ${(err as Error).message.split('\n')[0]}`;
  }
}

/** Opens a device on the first adapter kind that works; throws BackendUnavailableError listing why each failed. */
export async function openDevice(options: OpenDeviceOptions = {}): Promise<OpenedDevice> {
  const pref = adapterPreference();
  const order: AdapterKind[] = pref === 'auto' ? ['native', 'opengles'] : [pref];
  const create = await loadDawn();
  const reasons: string[] = [];
  for (const kind of order) {
    const r = await tryKind(create, kind, options);
    if (typeof r !== 'string') return r;
    reasons.push(r);
  }
  throw new BackendUnavailableError('webgpu', `no usable WebGPU adapter (${reasons.join('; ')})`);
}
