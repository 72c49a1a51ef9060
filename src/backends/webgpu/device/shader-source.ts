/**
 * WGSL sources, read from the package's shaders/ directory at runtime (the package ships it).
 * Resolved from this module's location: src/backends/webgpu/device/ and dist/backends/webgpu/device/ both sit four levels below the root.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { EcrError } from '../../../core/errors.js';

const shaderDir = fileURLToPath(new URL('../../../../shaders/', import.meta.url));
const cache = new Map<string, string>();

export function shaderPath(name: string): string {
  return shaderDir + name;
}

/** The text of shaders/<name>, cached. */
export function readShader(name: string): string {
  let text = cache.get(name);
  if (text === undefined) {
    try {
      text = readFileSync(shaderPath(name), 'utf8');
    } catch (err) {
      throw new EcrError('ECR_SHADER_MISSING', `cannot read WGSL shader ${shaderPath(name)}: ${(err as Error).message}`, { cause: err });
    }
    cache.set(name, text);
  }
  return text;
}
