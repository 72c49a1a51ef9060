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
  return `${spec.file}#${spec.entryPoint}[${consts}](${layout})`;
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
      let module = this.modules.get(spec.file);
      if (!module) {
        module = device.createShaderModule({ code: kernelSource(spec.file), label: `ecr.${spec.file}` });
        this.modules.set(spec.file, module);
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
      this.modules.delete(spec.file);
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
