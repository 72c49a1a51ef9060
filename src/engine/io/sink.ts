/** Where results are written: a Writable whose failures become one OutputWriteError. */
import type { Writable } from 'node:stream';
import { EcrError } from '../../core/errors.js';
import { describeFsError } from './fs-error.js';

/** Writing results failed after the run started (disk full, reader gone): exit 1, no stack. */
export class OutputWriteError extends EcrError {
  constructor(what: string, cause: unknown) {
    super('ECR_OUTPUT', `cannot write ${what}: ${describeFsError(cause)}`, { cause });
  }
}

/**
 * A Writable with its 'error' event always handled: the first error is kept and thrown by the
 * next write or by finish(), so a failing disk or a closed pipe is reported, never an unhandled
 * 'error' event.
 */
export class Sink {
  private failure: unknown = null;
  constructor(
    readonly stream: Writable,
    private readonly what: string,
  ) {
    stream.on('error', (err) => {
      this.failure ??= err;
    });
  }

  /** Writes a chunk, waiting for the stream to drain so memory stays bounded. */
  async write(chunk: string | Uint8Array): Promise<void> {
    this.check();
    if (this.stream.write(chunk)) return;
    await this.settle('drain');
  }

  /** Ends the stream (unless it is stdout or stderr, which stay open) and waits until it is flushed. */
  async finish(): Promise<void> {
    this.check();
    if (this.stream === process.stdout || this.stream === process.stderr) {
      // An empty write's callback runs once everything before it was handed to the OS.
      await new Promise<void>((resolve, reject) => this.stream.write('', (err) => (err ? reject(new OutputWriteError(this.what, err)) : resolve())));
    } else {
      this.stream.end();
      await this.settle('finish');
    }
    this.check();
  }

  private check(): void {
    if (this.failure !== null) throw new OutputWriteError(this.what, this.failure);
  }

  private settle(event: 'drain' | 'finish'): Promise<void> {
    return new Promise((resolve, reject) => {
      const done = () => {
        this.stream.off('error', failed);
        resolve();
      };
      const failed = (err: unknown) => {
        this.stream.off(event, done);
        reject(new OutputWriteError(this.what, err));
      };
      this.stream.once(event, done);
      this.stream.once('error', failed);
    });
  }
}
