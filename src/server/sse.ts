/**
 * Server-sent events for streamed completions: `data: JSON` events, `: comment` lines (progress,
 * which proxies and clients count as traffic, so they do not time out while candidates are being
 * scored) and the closing `data: [DONE]`. Written into a PassThrough that Fastify pipes to the
 * socket, so each write reaches the client at once.
 */
import { PassThrough } from 'node:stream';

export const SSE_HEADERS = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache',
  'x-accel-buffering': 'no',
} as const;

export class SseStream {
  readonly stream = new PassThrough();

  comment(text: string): void {
    this.stream.write(`: ${text.replace(/[\r\n]+/g, ' ')}\n\n`);
  }

  event(data: unknown): void {
    this.stream.write(`data: ${JSON.stringify(data)}\n\n`);
  }

  done(): void {
    this.stream.end('data: [DONE]\n\n');
  }

  /** Ends without [DONE]: after an `error` event the stream is over, as in OpenAI's API. */
  end(): void {
    this.stream.end();
  }
}
