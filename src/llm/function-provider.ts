/**
 * A Provider made from a plain async function `(messages) => string`, so any client (Bedrock,
 * Anthropic, an in-house model) can run the pipeline without an HTTP server. Such a function gives
 * one answer per call, so `maxN` is 1 and K samples are K calls; there are no logprobs, so the
 * signals use their lexical forms.
 */
import { LlmResponseError } from './errors.js';
import type { CallOptions, ChatMessage, ChatRequest, ChatResult, Provider } from './provider.js';

export type LlmFunction = (messages: ChatMessage[], options: { signal?: AbortSignal; kind: ChatRequest['kind']; temperature?: number }) => Promise<string>;

export class FunctionProvider implements Provider {
  readonly id: string;
  readonly baseUrl: string;
  readonly model: string;
  readonly maxN = 1;

  constructor(
    private readonly fn: LlmFunction,
    name = 'function',
  ) {
    this.model = name;
    this.baseUrl = `function:${name}`;
    this.id = `function ${name}`;
  }

  async chat(request: ChatRequest, options: CallOptions = {}): Promise<ChatResult> {
    const startedAt = Date.now();
    const t0 = performance.now();
    try {
      const text = await this.fn(request.messages, { signal: options.signal, kind: request.kind, temperature: request.sampling?.temperature });
      if (typeof text !== 'string') throw new LlmResponseError(`the function returned ${typeof text}, not a string`, request.kind, this.baseUrl, 1);
      options.observer?.onCall({ kind: request.kind, ok: true, attempt: 0, startedAt, latencyMs: performance.now() - t0, choices: 1 });
      return { choices: [{ text, logprobs: null }] };
    } catch (err) {
      options.observer?.onCall({
        kind: request.kind,
        ok: false,
        attempt: 0,
        startedAt,
        latencyMs: performance.now() - t0,
        error: err instanceof Error ? err.message : String(err),
      });
      throw err;
    }
  }
}
