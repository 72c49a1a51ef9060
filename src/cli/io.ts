/** What the subcommands share: their flags, configuration files and exit codes. */
import { machine } from '../core/machine.js';
import { promises as fs } from 'node:fs';
import type { ParseArgsConfig } from 'node:util';
import { parseArgs } from '../core/parse-args.js';
import { ConfigError, UsageError } from '../core/errors.js';
import { OutputWriteError } from '../engine/io/sink.js';

/** A configuration file (--config) as JSON; a byte-order mark is skipped. */
export async function readJsonConfig(file: string): Promise<unknown> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    throw new UsageError(`--config ${file}: cannot read (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  // Editors on Windows save UTF-8 with a byte-order mark, which JSON.parse rejects.
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`${file} is not valid JSON: ${(err as Error).message}`);
  }
}

/** A flag's value as a positive integer, or a usage error naming the flag. */
export function positiveIntegerFlag(flag: string, text: string): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 1) throw new UsageError(`--${flag} must be a positive integer, got "${text}"`);
  return n;
}

/** `--threads N` of the JSONL parser (ecr score, ecr worker): 0..256, default one per CPU this process may use (core/machine.ts). */
export function parseThreadsFlag(text: string | undefined): number {
  const threads = text === undefined ? machine().cpus : Number(text);
  if (!Number.isInteger(threads) || threads < 0 || threads > 256) throw new UsageError(`--threads must be an integer from 0 to 256, got "${text}"`);
  return threads;
}

/**
 * The exit code of a command whose output failed mid-run (disk full, reader gone): one line on
 * stderr and 1, as for an internal failure; anything else is rethrown.
 */
export function exitForOutputFailure(command: string, err: unknown): number {
  if (!(err instanceof OutputWriteError)) throw err;
  process.stderr.write(`${command}: ${err.message}\n`);
  return 1;
}

/**
 * Parses a subcommand's flags (no positionals); a flag the command does not know is a
 * UsageError that repeats the command's usage.
 */
type FlagValues<O extends NonNullable<ParseArgsConfig['options']>> = ReturnType<
  typeof parseArgs<{ args: string[]; options: O; allowPositionals: false; strict: true }>
>['values'];

export function parseFlags<O extends NonNullable<ParseArgsConfig['options']>>(argv: string[], options: O, usage: string): FlagValues<O> {
  try {
    return parseArgs({ args: argv, options, allowPositionals: false, strict: true }).values;
  } catch (err) {
    throw new UsageError(`${(err as Error).message}\n${usage}`);
  }
}
