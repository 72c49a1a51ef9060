/**
 * Typed errors. Every failure the engine can report has its own class so callers (and the CLI's
 * exit codes) can tell bad input from an unavailable backend from an internal fault.
 */

/** Base class: `code` is stable and machine-readable, `message` is for people. */
export class EcrError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/**
 * Where in the input a problem was found. `record` is 0-based; `line` is 1-based (JSONL); `row`
 * is 1-based (Parquet and Arrow files, counted as lines are), and with it `field` is printed as
 * the column.
 */
export interface InputLocation {
  record?: number;
  line?: number;
  row?: number;
  id?: string;
  field?: string;
}

/** Bad input data: the message names the record (or line) and the field. CLI exit code 2. */
export class InputError extends EcrError {
  readonly location: InputLocation;
  constructor(message: string, location: InputLocation = {}) {
    super('ECR_INPUT', formatLocated(message, location));
    this.location = location;
  }
}

/** Bad configuration (unknown key, weights not summing to 1, ...). CLI exit code 2. */
export class ConfigError extends EcrError {
  readonly key?: string;
  constructor(message: string, key?: string) {
    super('ECR_CONFIG', key ? `config "${key}": ${message}` : `config: ${message}`);
    this.key = key;
  }
}

/** Bad command-line usage. CLI exit code 2. */
export class UsageError extends EcrError {
  constructor(message: string) {
    super('ECR_USAGE', message);
  }
}

/** A backend that was asked for by name cannot run here (no adapter, not built, ...). */
export class BackendUnavailableError extends EcrError {
  constructor(backend: string, reason: string, options?: { cause?: unknown }) {
    super('ECR_BACKEND_UNAVAILABLE', `backend "${backend}" is unavailable: ${reason}`, options);
  }
}

/** The GPU reported a validation error, ran out of memory, or was lost mid-computation. */
export class GpuError extends EcrError {
  constructor(kind: 'validation' | 'out-of-memory' | 'internal' | 'device-lost' | 'mapping', message: string, options?: { cause?: unknown }) {
    super(`ECR_GPU_${kind.toUpperCase().replace(/-/g, '_')}`, `GPU ${kind}: ${message}`, options);
  }
}

export function formatLocated(message: string, loc: InputLocation): string {
  const where: string[] = [];
  if (loc.line !== undefined) where.push(`line ${loc.line}`);
  else if (loc.row !== undefined) where.push(`row ${loc.row}`);
  else if (loc.record !== undefined) where.push(`record ${loc.record}`);
  if (loc.id !== undefined) where.push(`id ${JSON.stringify(loc.id)}`);
  if (loc.field !== undefined) where.push(`${loc.row !== undefined ? 'column' : 'field'} "${loc.field}"`);
  return where.length ? `${where.join(', ')}: ${message}` : message;
}

/** True for errors caused by the caller's input or arguments (CLI exit code 2). */
export function isUserError(err: unknown): boolean {
  return err instanceof InputError || err instanceof ConfigError || err instanceof UsageError;
}
