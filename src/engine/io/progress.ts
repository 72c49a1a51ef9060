/** The progress line of a long run on a terminal. */
import { plural } from '../../core/plural.js';

/** What a progress line can say beyond the count. */
export interface ProgressDetail {
  /** Input bytes read so far, and the input's size when known (a regular file): gives the ETA. */
  bytesDone?: number;
  bytesTotal?: number | null;
  /** The backend(s) scoring, e.g. "cpu". */
  backend?: string;
}

const count = (n: number) => Math.round(n).toLocaleString('en-US');

function duration(seconds: number): string {
  if (seconds < 60) return `${Math.ceil(seconds)} s`;
  const m = Math.floor(seconds / 60);
  return m < 60 ? `${m} min ${Math.ceil(seconds % 60)} s` : `${Math.floor(m / 60)} h ${m % 60} min`;
}

/**
 * A throttled one-line progress report (records, records/s, ETA, backend), only when the stream
 * (stderr by default) is a terminal: a log file or a pipe gets nothing. A library would add a
 * dependency for one line of `\r` rewriting, so this stays.
 */
export class Progress {
  private last = 0;
  private shown = 0; // length of the line on screen, to blank a longer previous one
  private readonly start = Date.now();
  private readonly enabled: boolean;
  constructor(
    private readonly label: string,
    private readonly stream: Pick<NodeJS.WriteStream, 'write' | 'isTTY'> = process.stderr,
  ) {
    this.enabled = stream.isTTY === true;
  }

  update(records: number, detail: ProgressDetail = {}): void {
    if (!this.enabled) return;
    const now = Date.now();
    if (now - this.last < 250) return;
    this.last = now;
    const seconds = Math.max(1e-3, (now - this.start) / 1000);
    let text = `${this.label}: ${plural(records, 'record', 'records', count(records))} (${count(records / seconds)}/s)`;
    const { bytesDone, bytesTotal } = detail;
    if (bytesDone !== undefined && bytesTotal && bytesDone > 0) {
      const fraction = Math.min(1, bytesDone / bytesTotal);
      text += `, ${Math.floor(fraction * 100)}%, ETA ${duration((seconds / fraction) * (1 - fraction))}`;
    }
    if (detail.backend) text += `, backend ${detail.backend}`;
    this.show(text);
  }

  done(records: number, detail: ProgressDetail = {}): void {
    if (!this.enabled) return;
    const seconds = (Date.now() - this.start) / 1000;
    this.show(
      `${this.label}: ${plural(records, 'record', 'records', count(records))} in ${seconds.toFixed(1)} s (${count(records / Math.max(1e-3, seconds))}/s)${detail.backend ? `, backend ${detail.backend}` : ''}`,
    );
    this.stream.write('\n');
  }

  private show(text: string): void {
    this.stream.write(`\r${text}${' '.repeat(Math.max(0, this.shown - text.length))}`);
    this.shown = text.length;
  }
}
