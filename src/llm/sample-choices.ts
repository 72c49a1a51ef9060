/**
 * K samples for one prompt. Asks for `n = K` in one request (native batching) unless the base URL
 * is known not to batch. A server that returns fewer choices than asked (Ollama's /v1 does), or
 * refuses `n > 1` outright (llama.cpp's server: "Only one completion choice is allowed"), is
 * remembered per base URL and the missing samples come from parallel single calls. With a seed,
 * sample i of a single-call fan-out uses seed + i, so K seeded samples never collapse into one.
 */
import { LlmMultipleChoicesRejectedError } from './errors.js';
import type { CallOptions, ChatChoice, ChatMessage, ContentlessChoice, Provider, SamplingParams } from './provider.js';

/** Why a base URL is served by single calls. */
export type NLimitation = 'returns fewer choices' | 'rejects n > 1';

/** Base URLs seen not to batch, and how. */
const nLimitations = new Map<string, NLimitation>();

/**
 * True once the base URL was seen returning fewer choices than `n` or refusing `n > 1`.
 * @internal What the tests observe of the detection.
 */
export function knownToIgnoreN(baseUrl: string): boolean {
  return nLimitations.has(baseUrl);
}

/**
 * How the base URL was seen not to batch, if it was.
 * @internal What the tests observe of the detection.
 */
export function nLimitationOf(baseUrl: string): NLimitation | undefined {
  return nLimitations.get(baseUrl);
}

/** Forgets what was learned about `n` support (tests, or after a server upgrade). */
export function resetNDetection(baseUrl?: string): void {
  if (baseUrl === undefined) nLimitations.clear();
  else nLimitations.delete(baseUrl);
}

export type SampleOutcome = { ok: true; choice: ChatChoice; via: 'batched' | 'single' } | { ok: false; error: unknown; via: 'batched' | 'single' };

export interface SampleRequest {
  messages: ChatMessage[];
  k: number;
  sampling?: SamplingParams;
  topLogprobs?: number;
}

/** Runs one HTTP call; the pipeline passes its concurrency limiter here. */
export type Scheduler = <T>(fn: () => Promise<T>) => Promise<T>;

const direct: Scheduler = (fn) => fn();

/**
 * Returns exactly `k` outcomes in sample order. A failed batched request fails every sample it was
 * meant to produce; a failed single call fails only its own sample. `onSample` fires as each
 * sample arrives, so a caller can start work on sample i without waiting for the others.
 */
export async function sampleChoices(
  provider: Provider,
  req: SampleRequest,
  options: CallOptions & { schedule?: Scheduler; onSample?: (i: number, outcome: SampleOutcome) => void } = {},
): Promise<SampleOutcome[]> {
  const schedule = options.schedule ?? direct;
  const outcomes = new Array<SampleOutcome>(req.k);
  const deliver = (i: number, o: SampleOutcome) => {
    outcomes[i] = o;
    options.onSample?.(i, o);
  };
  const callOpts: CallOptions = { signal: options.signal, observer: options.observer };

  // A contentless choice (refusal, tool calls only) fails its own sample and keeps its place.
  const outcomeOf = (choice: ChatChoice | ContentlessChoice, via: 'batched' | 'single'): SampleOutcome =>
    choice.text === null ? { ok: false, error: choice.error, via } : { ok: true, choice, via };

  const single = async (i: number) => {
    const sampling = req.sampling?.seed !== undefined ? { ...req.sampling, seed: req.sampling.seed + i } : req.sampling;
    try {
      const r = await schedule(() => provider.chat({ kind: 'generate', messages: req.messages, n: 1, sampling, topLogprobs: req.topLogprobs }, callOpts));
      deliver(i, outcomeOf(r.choices[0], 'single'));
    } catch (error) {
      deliver(i, { ok: false, error, via: 'single' });
    }
  };

  let first = 0;
  const batchable = req.k > 1 && provider.maxN > 1 && !nLimitations.has(provider.baseUrl);
  if (batchable) {
    const n = Math.min(req.k, provider.maxN);
    try {
      const r = await schedule(() =>
        provider.chat({ kind: 'generate', messages: req.messages, n, sampling: req.sampling, topLogprobs: req.topLogprobs }, callOpts),
      );
      const got = Math.min(r.choices.length, n);
      if (r.choices.length < n) nLimitations.set(provider.baseUrl, 'returns fewer choices');
      for (let i = 0; i < got; i++) deliver(i, outcomeOf(r.choices[i], 'batched'));
      first = got;
    } catch (error) {
      if (error instanceof LlmMultipleChoicesRejectedError) {
        // The server said no to n > 1 before generating anything: every sample comes from a single call.
        nLimitations.set(provider.baseUrl, 'rejects n > 1');
      } else {
        // A batched request that failed after retries fails every sample, those beyond maxN too:
        // the server is not answering, and K more calls would only hammer it.
        for (let i = 0; i < req.k; i++) deliver(i, { ok: false, error, via: 'batched' });
        return outcomes;
      }
    }
  }
  const rest: Promise<void>[] = [];
  for (let i = first; i < req.k; i++) rest.push(single(i));
  await Promise.all(rest);
  return outcomes;
}
