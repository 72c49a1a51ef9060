/**
 * The gateway's audit log (ECR-SPEC section 8.1): one JSONL line per candidate with its group,
 * metrics, CCI, admissibility and selection, and nothing from the prompt or the answer text
 * (but the request's messages, last, from a gateway that logs prompts).
 * `ecr calibrate` and `ecr maturity` read these lines as scored records.
 */
import type { MetricValues } from './batch.js';
import type { SelectionReason } from './select.js';

export interface AuditLogEntry extends MetricValues {
  /** ISO 8601 time of the request. */
  time: string;
  group: string | number;
  /** From the gateway: the request's x-request-id (the client's own, or the same as `group`). */
  requestId?: string;
  /** Candidate id within the request (not its text). */
  id: string | number;
  admissible: boolean;
  selected: boolean;
  /** The group's selection reason. */
  reason: SelectionReason;
  tau: number;
  /** Calibrated probability, when the configuration has a calibration map. */
  pCorrect?: number;
  /** A label, when feedback says whether the answer was correct. */
  correct?: boolean;
  dialogue?: string | number;
  turn?: number;
  variant?: string | number;
  /** The request's messages: only from a gateway started with --log-prompts. */
  messages?: unknown;
}

const ORDER = [
  'time',
  'group',
  'requestId',
  'id',
  'EVB',
  'CR',
  'TS',
  'ES',
  'PD',
  'CCI',
  'admissible',
  'selected',
  'reason',
  'tau',
  'pCorrect',
  'correct',
  'dialogue',
  'turn',
  'variant',
  'messages',
] as const;

/** One audit-log line (with its newline), keys in a fixed order, numbers in full precision. */
export function formatAuditLogLine(entry: AuditLogEntry): string {
  const out: Record<string, unknown> = {};
  for (const k of ORDER) if (entry[k] !== undefined) out[k] = entry[k];
  return JSON.stringify(out) + '\n';
}
