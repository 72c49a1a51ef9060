/**
 * `ecr serve --audit-log FILE`: one line per scored candidate of every ECR request, in the format
 * of ECR-SPEC section 8.1 (src/core/audit-line.ts), so that `ecr calibrate` and
 * `ecr maturity` read production traffic directly. Nothing from the prompt or the answers is
 * written unless the server runs with --log-prompts (then the request's messages go on each line).
 *
 * Lines are appended through pino's asynchronous destination (sonic-boom): a synchronous write per
 * candidate would sit on every request's path. The file is opened when the server starts, so a
 * path that cannot be written is a start-up error, not a silent loss later; SIGHUP reopens it
 * (after logrotate moved it).
 */
import { closeSync, openSync } from 'node:fs';
import { pino } from 'pino';
import { toResolvedConfig, type EcrConfig, type ResolvedConfig } from '../core/config.js';
import { pCorrectOf } from '../core/probability-map.js';
import { formatAuditLogLine } from '../core/audit-line.js';
import { UsageError } from '../core/errors.js';
import type { ChatMessage } from '../llm/provider.js';
import type { PipelineResult } from '../pipeline/types.js';

type Destination = ReturnType<typeof pino.destination>;

export interface AuditRequest {
  /** The server's id of the request (the access log's reqId): the audit log's group, unique per request. */
  group: string;
  /** The x-request-id the response carried: the client's own when it sent one, else `group`. */
  requestId: string;
  /** When the request arrived. */
  time: Date;
  result: PipelineResult;
  /** False when the request chose its own weights or preset: the server's calibration map does not apply. */
  serverWeights: boolean;
  /** The request's messages, written only when the server logs prompts. */
  messages?: ChatMessage[];
}

export class AuditLog {
  private readonly dest: Destination;
  private readonly scoring: ResolvedConfig;
  private failures = 0;

  constructor(
    readonly file: string,
    scoring: EcrConfig,
    private readonly onError: (err: Error) => void,
  ) {
    try {
      closeSync(openSync(file, 'a'));
    } catch (err) {
      throw new UsageError(`cannot write --audit-log ${file}: ${(err as NodeJS.ErrnoException).code ?? ''} ${(err as Error).message}`.replace(/\s+/g, ' '));
    }
    this.scoring = toResolvedConfig(scoring);
    this.dest = pino.destination({ dest: file, append: true, sync: false, minLength: 0 });
    this.dest.on('error', (err: Error) => {
      this.failures++;
      this.onError(err);
    });
  }

  /** Write errors since start (each was also reported through `onError`). */
  get writeFailures(): number {
    return this.failures;
  }

  /** Appends one line per scored candidate (failed candidates have no metrics and are left out). */
  record(r: AuditRequest): void {
    const { result } = r;
    const time = r.time.toISOString();
    const { tau, reason } = result.stats.scoring;
    let lines = '';
    for (const c of result.candidates) {
      if (c.status !== 'scored' || !c.metrics) continue;
      const p = r.serverWeights ? pCorrectOf(this.scoring, c.metrics.CCI) : null;
      lines += formatAuditLogLine({
        time,
        group: r.group,
        requestId: r.requestId,
        id: c.index,
        ...c.metrics,
        admissible: c.admissible === true,
        selected: c.selected,
        reason,
        tau,
        ...(p !== null ? { pCorrect: p } : {}),
        ...(r.messages ? { messages: r.messages } : {}),
      });
    }
    if (lines !== '') this.dest.write(lines);
  }

  /** Resolves once every line recorded so far is written to the file. */
  flush(): Promise<void> {
    return new Promise((resolve, reject) => this.dest.flush((err) => (err ? reject(err) : resolve())));
  }

  /** Reopens the file by name (log rotation). */
  reopen(): void {
    this.dest.reopen();
  }

  /** Writes out what is buffered and closes the file. */
  async close(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.dest.once('close', () => resolve());
      this.dest.once('error', () => resolve());
      this.dest.end();
    });
  }
}
