/** Small I/O helpers shared by the subcommands. */
import { createReadStream, createWriteStream, promises as fs } from 'node:fs';
import { once } from 'node:events';
import path from 'node:path';
import type { Writable } from 'node:stream';
import { ConfigError, UsageError } from '../errors.js';

/**
 * Lines of a file, or of stdin for "-" (LF or CRLF endings; a last line without a newline counts).
 * A plain indexOf splitter over decoded chunks: node:readline costs about as much again as
 * JSON.parse on large logs.
 */
export async function* readLines(file: string): AsyncGenerator<string> {
  const input = file === '-' ? process.stdin : createReadStream(file, { highWaterMark: 1 << 20 });
  input.setEncoding('utf8');
  let rest = '';
  for await (const chunk of input as AsyncIterable<string>) {
    const text = rest + chunk;
    let start = 0;
    for (let nl = text.indexOf('\n'); nl >= 0; nl = text.indexOf('\n', start)) {
      yield text.charCodeAt(nl - 1) === 13 && nl > start ? text.slice(start, nl - 1) : text.slice(start, nl);
      start = nl + 1;
    }
    rest = text.slice(start);
  }
  if (rest.length > 0) yield rest.endsWith('\r') ? rest.slice(0, -1) : rest;
}

export async function checkReadable(file: string): Promise<void> {
  if (file === '-') return;
  try {
    const st = await fs.stat(file);
    if (!st.isFile()) throw new UsageError(`${file}: not a file`);
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError(`${file}: cannot read (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
}

export async function readJsonConfig(file: string): Promise<unknown> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    throw new UsageError(`--config ${file}: cannot read (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`${file} is not valid JSON: ${(err as Error).message}`);
  }
}

/** Writes a chunk, waiting for the stream to drain so memory stays bounded. */
export async function writeChunk(out: Writable, chunk: string): Promise<void> {
  if (!out.write(chunk)) await once(out, 'drain');
}

/**
 * An output file written beside its destination and renamed into place on success, so a failed
 * run never leaves a truncated file where a good one was.
 */
export class AtomicOutput {
  readonly stream: Writable;
  private readonly tmp: string;
  constructor(private readonly dest: string) {
    this.tmp = path.join(path.dirname(dest), `.${path.basename(dest)}.${process.pid}.tmp`);
    this.stream = createWriteStream(this.tmp);
  }
  async commit(): Promise<void> {
    this.stream.end();
    await once(this.stream, 'finish');
    await fs.rename(this.tmp, this.dest);
  }
  async abort(): Promise<void> {
    this.stream.destroy();
    await fs.rm(this.tmp, { force: true });
  }
}

/** A throttled one-line progress report on stderr, only when stderr is a terminal. */
export class Progress {
  private last = 0;
  private readonly start = Date.now();
  private readonly enabled = process.stderr.isTTY === true;
  constructor(private readonly label: string) {}
  update(count: number): void {
    if (!this.enabled) return;
    const now = Date.now();
    if (now - this.last < 250) return;
    this.last = now;
    const rate = count / Math.max(1e-3, (now - this.start) / 1000);
    process.stderr.write(`\r${this.label}: ${count.toLocaleString('en-US')} records (${Math.round(rate).toLocaleString('en-US')}/s)`);
  }
  done(count: number): void {
    if (!this.enabled) return;
    process.stderr.write(`\r${this.label}: ${count.toLocaleString('en-US')} records in ${((Date.now() - this.start) / 1000).toFixed(1)} s\n`);
  }
}
