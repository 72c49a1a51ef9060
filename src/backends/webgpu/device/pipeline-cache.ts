/**
 * Compute pipelines cached by a structural key (source, entry point, override constants, binding
 * layout), never by data. Creation runs inside error scopes so a WGSL or layout error surfaces as
 * GpuError('validation') naming the kernel.
 */
import type { GpuDevice } from './device.js';
import { readShader } from './shader-source.js';

export interface PipelineSpec {
  label: string;
  /** Generated WGSL placed first, in order (directives, declarations). */
  prelude: readonly string[];
  /** Files in shaders/, after the prelude. */
  files: readonly string[];
  entryPoint: string;
  constants: Record<string, number>;
  layout: GPUBindGroupLayoutEntry[];
}

export interface CachedPipeline {
  pipeline: GPUComputePipeline;
  bindGroupLayout: GPUBindGroupLayout;
}

/** The module's full source: the prelude, then the files. */
export function moduleSource(spec: PipelineSpec): string {
  return [...spec.prelude, ...spec.files.map(readShader)].join('\n');
}

export function pipelineKey(spec: PipelineSpec): string {
  const consts = Object.keys(spec.constants)
    .sort()
    .map((k) => `${k}=${spec.constants[k]}`)
    .join(',');
  const layout = spec.layout.map((e) => `${e.binding}:${e.buffer?.type ?? 'uniform'}`).join(',');
  return `${spec.files.join('+')}#${spec.entryPoint}[${consts}](${layout})\n${spec.prelude.join('\n')}`;
}

export class PipelineCache {
  private modules = new Map<string, GPUShaderModule>();
  private pipelines = new Map<string, CachedPipeline>();

  constructor(private readonly gpu: GpuDevice) {}

  get size(): number {
    return this.pipelines.size;
  }

  async get(spec: PipelineSpec): Promise<CachedPipeline> {
    const key = pipelineKey(spec);
    const hit = this.pipelines.get(key);
    if (hit) return hit;
    const device = this.gpu.device;
    const source = moduleSource(spec);
    const built = await this.gpu
      .scoped(() => {
        let module = this.modules.get(source);
        if (!module) {
          module = device.createShaderModule({ code: source, label: `${spec.label}.module` });
          this.modules.set(source, module);
        }
        const bindGroupLayout = device.createBindGroupLayout({ entries: spec.layout, label: `${spec.label}.layout` });
        const pipeline = device.createComputePipeline({
          label: spec.label,
          layout: device.createPipelineLayout({ bindGroupLayouts: [bindGroupLayout], label: `${spec.label}.pipelineLayout` }),
          compute: { module, entryPoint: spec.entryPoint, constants: spec.constants },
        });
        return { pipeline, bindGroupLayout };
      })
      .catch((err: Error) => {
        // A failed shader module must not be reused by the next pipeline of the same source.
        this.modules.delete(source);
        err.message = `${spec.label} (${spec.files.join('+')}#${spec.entryPoint}): ${err.message}`;
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
