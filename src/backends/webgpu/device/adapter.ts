/**
 * Adapter discovery: native (Vulkan on Linux, Metal, D3D12; core) first, then Dawn's OpenGL ES
 * backend in compatibility mode on surfaceless EGL (a software rasterizer such as llvmpipe where
 * no GPU exists). Each candidate must also yield a device: an adapter whose device request fails
 * (Mesa's lavapipe under Dawn, for one) is skipped with its reason recorded.
 *
 * Dawn's own stderr lines during discovery are caught (native-stderr.ts) and kept as the reasons,
 * unless the caller asks for them (OpenDeviceOptions.debug). Everything comes in as options: the
 * kind (the CLI's --adapter and ECR_WEBGPU_ADAPTER arrive here as `adapter`), nothing is read
 * from the environment but what the native libraries read themselves (native-env.ts).
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { BackendUnavailableError, UsageError } from '../../../core/errors.js';
import { ADAPTER_PREFERENCES, type AdapterKind, type AdapterPreference } from './kinds.js';
import { ensureEglPlatform, ldLibraryPath } from './native-env.js';
import { dawnMessages, withNativeStderrCaught } from './native-stderr.js';

export type { AdapterKind, AdapterPreference } from './kinds.js';

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
  /** One line: which adapter, software or hardware, and why the kinds before it were skipped. */
  choice: string;
}

export interface OpenDeviceOptions {
  /** The adapter kind (default 'auto': native, then OpenGL ES). */
  adapter?: AdapterPreference;
  /**
   * Who forced a kind other than 'auto', as the choice line says it (default "asked for by the
   * adapter option"; the CLI says "forced by --adapter" or "forced by ECR_WEBGPU_ADAPTER").
   */
  adapterReason?: string;
  /**
   * Dawn's `disable_robustness` toggle: Tint then emits no bounds clamp around storage and
   * workgroup accesses. Only for shaders that guard every access themselves (ours do: dead lanes
   * read a clamped index and write nothing; the host sizes every binding); an out-of-bounds access
   * would be undefined behaviour. true: on every adapter; 'native': on native adapters only (the
   * backend's default: 2.7x faster metrics kernel on the H200); false/absent: never.
   */
  disableRobustness?: boolean | 'native';
  /** Let Dawn's own stderr lines through instead of catching them (the CLI's ECR_DEBUG=webgpu). */
  debug?: boolean;
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

/** The native backend Dawn's node bindings pick on this platform (GPU.cpp's kDefaultBackendType). */
function nativeApi(): string {
  return process.platform === 'darwin' ? 'Metal' : process.platform === 'win32' ? 'D3D12' : 'Vulkan';
}

/**
 * Whether the Vulkan loader can be found the way the dynamic linker would look for it
 * (`libraryPath`, by default this process's LD_LIBRARY_PATH; /etc/ld.so.cache; the usual directories). Without it Dawn's Vulkan probe
 * fails anyway, after printing "Couldn't load Vulkan" with a C++ source location to fd 2, which
 * no capture can hold back when stderr is a socket (as under a Node parent's spawn): `auto` does
 * not ask. Only Linux; elsewhere the native API (Metal, D3D12) needs no loader probe.
 */
export function vulkanLoaderPresent(libraryPath: string = ldLibraryPath()): boolean {
  if (process.platform !== 'linux') return true;
  const name = 'libvulkan.so.1';
  const dirs = libraryPath.split(':').filter((d) => d !== '');
  if (dirs.some((d) => existsSync(path.join(d, name)))) return true;
  try {
    if (readFileSync('/etc/ld.so.cache').includes(name)) return true;
  } catch {
    // no cache: fall back to the usual directories
  }
  const triplet = process.arch === 'arm64' ? 'aarch64-linux-gnu' : 'x86_64-linux-gnu';
  return ['/lib', '/usr/lib', '/lib64', '/usr/lib64', '/usr/local/lib', `/lib/${triplet}`, `/usr/lib/${triplet}`].some((d) => existsSync(path.join(d, name)));
}

/** A Dawn call with its stderr lines caught unless the caller asked to see them (`debug`). */
function quietly<T>(debug: boolean, call: () => T, notes: string[]): T {
  if (debug) return call();
  const { result, caught } = withNativeStderrCaught(call);
  notes.push(...dawnMessages(caught));
  return result;
}

/** Why a kind was skipped, from Dawn's caught messages where it gave any (the Vulkan loader's, for one). */
function skipReason(kind: AdapterKind, fallback: string, notes: readonly string[]): string {
  const loader = notes.find((n) => /couldn't load|cannot open|not found|failed/i.test(n));
  return `${kind === 'native' ? `no ${nativeApi()} adapter` : 'no OpenGL ES adapter'} (${loader ?? fallback})`;
}

async function tryKind(create: CreateFn, kind: AdapterKind, options: OpenDeviceOptions, debug: boolean): Promise<OpenedDevice | string> {
  let gpu: GPU;
  let adapter: GPUAdapter | null;
  const notes: string[] = [];
  // Dawn's node bindings apply instance flags as adapter and device toggles.
  const unguarded = options.disableRobustness === true || (options.disableRobustness === 'native' && kind === 'native');
  const toggles = unguarded ? ['enable-dawn-features=disable_robustness'] : [];
  try {
    if (kind === 'native') {
      gpu = create(toggles);
      adapter = await quietly(debug, () => gpu.requestAdapter({ powerPreference: 'high-performance' }), notes);
    } else {
      ensureEglPlatform();
      gpu = create(['backend=opengles', ...toggles]);
      adapter = await quietly(debug, () => gpu.requestAdapter({ featureLevel: 'compatibility' }), notes);
    }
  } catch (err) {
    return skipReason(kind, (err as Error).message.split('\n')[0], notes);
  }
  if (!adapter) return skipReason(kind, 'Dawn found none', notes);
  const timestamps = adapter.features.has('timestamp-query');
  // Requested only where the adapter has it: the lane kernel then uses subgroup shuffles.
  const subgroups = adapter.features.has('subgroups');
  const features: GPUFeatureName[] = [];
  if (timestamps) features.push('timestamp-query');
  if (subgroups) features.push('subgroups');
  try {
    const device = await quietly(
      debug,
      () =>
        adapter.requestDevice({
          label: `ecr.webgpu.${kind}`,
          requiredLimits: requiredLimits(adapter),
          requiredFeatures: features,
        }),
      notes,
    );
    const info = adapter.info;
    const description = [info.vendor, info.architecture, info.device, info.description].filter((s) => s).join(' ') || 'unknown adapter';
    const subgroupMinSize = subgroups && typeof info.subgroupMinSize === 'number' && info.subgroupMinSize >= 4 ? info.subgroupMinSize : 4;
    const software = /llvmpipe|lavapipe|softpipe|swiftshader|software/i.test(description);
    const api = kind === 'native' ? nativeApi() : 'OpenGL ES';
    const choice = `${api} (${info.device || info.description || description}), ${software ? 'software' : 'hardware'}`;
    return {
      gpu,
      adapter,
      device,
      kind,
      description: `${kind}: ${description}`,
      timestamps,
      subgroups: subgroups && device.features.has('subgroups'),
      subgroupMinSize,
      robustnessDisabled: unguarded,
      choice,
    };
  } catch (err) {
    return `${kind === 'native' ? nativeApi() : 'OpenGL ES'} device request failed (${(err as Error).message.split('\n')[0]})`;
  }
}

/** Opens a device on the first adapter kind that works; throws BackendUnavailableError listing why each failed. */
export async function openDevice(options: OpenDeviceOptions = {}): Promise<OpenedDevice> {
  if (options.adapter !== undefined && !ADAPTER_PREFERENCES.includes(options.adapter)) {
    throw new UsageError(`adapter must be one of ${ADAPTER_PREFERENCES.join(', ')}, got ${JSON.stringify(options.adapter)}`);
  }
  const pref = options.adapter ?? 'auto';
  const order: AdapterKind[] = pref === 'auto' ? ['native', 'opengles'] : [pref];
  const create = await loadDawn();
  const reasons: string[] = [];
  for (const kind of order) {
    if (kind === 'native' && pref === 'auto' && nativeApi() === 'Vulkan' && !vulkanLoaderPresent()) {
      reasons.push('no Vulkan adapter (the Vulkan loader libvulkan.so.1 is not installed)');
      continue;
    }
    const r = await tryKind(create, kind, options, options.debug === true);
    if (typeof r === 'string') {
      reasons.push(r);
      continue;
    }
    const why = pref === 'auto' ? reasons : [options.adapterReason ?? 'asked for by the adapter option'];
    r.choice = [r.choice, ...why].join('; ');
    return r;
  }
  const forced = pref === 'auto' ? '' : ` (--adapter / ECR_WEBGPU_ADAPTER asked for ${pref})`;
  throw new BackendUnavailableError('webgpu', `no usable WebGPU adapter${forced}: ${reasons.join('; ')}`);
}
