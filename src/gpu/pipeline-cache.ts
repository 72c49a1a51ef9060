/**
 * Compute pipelines cached by a structural key (kernel, entry point, override constants, binding
 * layout), never by data. Creation runs inside error scopes so a WGSL or layout error surfaces as
 * GpuError('validation') naming the kernel.
 */
import type { GpuDevice } from './device.js';
import { kernelSource } from './shader-source.js';

export interface PipelineSpec {
  /** File in shaders/, e.g. 'ecr_metrics.wgsl'. */
  file: string;
  /** Files placed between common.wgsl and `file` (shared helpers, entry-point wrappers). */
  includes?: readonly string[];
  /** Files placed before common.wgsl (WGSL directives must come first). */
  prelude?: readonly string[];
  entryPoint: string;
  constants: Record<string, number>;
  layout: GPUBindGroupLayoutEntry[];
  label: string;
}

export interface CachedPipeline {
  pipeline: GPUComputePipeline;
  bindGroupLayout: GPUBindGroupLayout;
}

export function pipelineKey(spec: PipelineSpec): string {
  const consts = Object.keys(spec.constants).sort().map((k) => `${k}=${spec.constants[k]}`).join(',');
  const layout = spec.layout.map((e) => `${e.binding}:${e.buffer?.type ?? 'uniform'}`).join(',');
  return `${moduleKey(spec)}#${spec.entryPoint}[${consts}](${layout})`;
}

/** The module's identity: every file that goes into its source, in order. */
function moduleKey(spec: PipelineSpec): string {
  return [...(spec.prelude ?? []), ...(spec.includes ?? []), spec.file].join('+');
}

export class PipelineCache {
  private modules = new Map<string, GPUShaderModule>();
  private pipelines = new Map<string, CachedPipeline>();

  constructor(private readonly gpu: GpuDevice) {}

  async get(spec: PipelineSpec): Promise<CachedPipeline> {
    const key = pipelineKey(spec);
    const hit = this.pipelines.get(key);
    if (hit) return hit;
    const device = this.gpu.device;
    const built = await this.gpu.scoped(() => {
      const mkey = moduleKey(spec);
      let module = this.modules.get(mkey);
      if (!module) {
        module = device.createShaderModule({ code: kernelSource(spec.file, spec.includes, spec.prelude), label: `ecr.${mkey}` });
        this.modules.set(mkey, module);
      }
      const bindGroupLayout = device.createBindGroupLayout({ entries: spec.layout, label: `${spec.label}.layout` });
      const pipeline = device.createComputePipeline({
        label: spec.label,
        layout: device.createPipelineLayout({ bindGroupLayouts: [bindGroupLayout], label: `${spec.label}.pipelineLayout` }),
        compute: { module, entryPoint: spec.entryPoint, constants: spec.constants },
      });
      return { pipeline, bindGroupLayout };
    }).catch((err: Error) => {
      // A failed shader module must not be reused by the next pipeline of the same file.
      this.modules.delete(moduleKey(spec));
      err.message = `${spec.label} (${key}): ${err.message}`;
      throw err;
    });
    this.pipelines.set(key, built);
    return built;
  }

  clear(): void {
    this.modules.clear();
    this.pipelines.clear();
  }
}
