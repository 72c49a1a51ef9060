/**
 * A kernel declared once: its bindings (name, access, WGSL type; the binding number is the
 * position in the list), its WGSL files and its override constants. From that one declaration
 * come the bind-group layout, the bind group (resources given by name, every name required) and
 * the WGSL `@binding` declarations, which are generated into the kernel's source, so a binding
 * number is never written by hand (the pattern of onnxruntime-web's ProgramInfo and
 * tfjs-backend-webgpu's WebGPUProgram). No device code: the streamer creates the objects.
 */
import { GpuError } from '../../../core/errors.js';
import type { PipelineSpec } from '../device/pipeline-cache.js';
import { ShaderStage } from '../device/usage.js';
import { paramsWgsl } from '../uniforms.js';

export type BindingAccess = 'uniform' | 'read' | 'read_write';

export interface BindingDecl {
  name: string;
  access: BindingAccess;
  /** The WGSL type of the variable, e.g. 'Params', 'array<u32>', 'array<vec4<u32>>'. */
  type: string;
}

export interface Program {
  /** Names the GPU objects ("ecr.<label>"). */
  label: string;
  /** WGSL directives placed before everything (e.g. `enable subgroups;`). */
  directives?: readonly string[];
  /** Files in shaders/, in order, after the generated declarations and common.wgsl. */
  files: readonly string[];
  entryPoint: string;
  bindings: readonly BindingDecl[];
  constants: Record<string, number>;
}

/** The `@group(0) @binding(i) var...` lines of a program. */
export function bindingDeclarations(program: Program): string {
  return program.bindings
    .map((b, i) => {
      const space = b.access === 'uniform' ? 'uniform' : `storage, ${b.access}`;
      return `@group(0) @binding(${i}) var<${space}> ${b.name}: ${b.type};`;
    })
    .join('\n');
}

export function layoutEntries(program: Program): GPUBindGroupLayoutEntry[] {
  return program.bindings.map((b, i) => ({
    binding: i,
    visibility: ShaderStage.COMPUTE,
    buffer: { type: b.access === 'uniform' ? 'uniform' : b.access === 'read' ? 'read-only-storage' : 'storage' },
  }));
}

/** Bind-group entries for the declared bindings, picked by name from the chunk's resources (every declared name must be there). */
export function bindGroupEntries(program: Program, resources: Readonly<Record<string, GPUBufferBinding>>): GPUBindGroupEntry[] {
  return program.bindings.map((b, i) => {
    const resource = resources[b.name];
    if (!resource) throw new GpuError('internal', `${program.label}: no resource for binding "${b.name}"`);
    return { binding: i, resource };
  });
}

/** The pipeline cache's view of a program: generated declarations + shader files, layout from the bindings. */
export function pipelineSpec(program: Program): PipelineSpec {
  return {
    label: `ecr.${program.label}`,
    prelude: [...(program.directives ?? []), paramsWgsl(), bindingDeclarations(program)],
    files: ['common.wgsl', ...program.files],
    entryPoint: program.entryPoint,
    constants: program.constants,
    layout: layoutEntries(program),
  };
}
