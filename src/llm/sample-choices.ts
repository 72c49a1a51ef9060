/**
 * K samples for one prompt. Asks for `n = K` in one request (native batching) unless the base URL
 * is known to ignore `n`; a server that returns fewer choices than asked (Ollama's /v1 does) is
 * remembered per base URL and the missing samples come from parallel single calls. With a seed,
 * sample i of a single-call fan-out uses seed + i, so K seeded samples never collapse into one.
 */
import type { CallOptions, ChatChoice, ChatMessage, Provider, SamplingParams } from './provider.js';

/** Base URLs seen returning fewer choices than `n` asked for. */
const ignoresN = new Set<string>();

export function knownToIgnoreN(baseUrl: string): boolean {
  return ignoresN.has(baseUrl);
}

/** Forgets what was learned about `n` support (tests, or after a server upgrade). */
export function resetNDetection(baseUrl?: string): void {
  if (baseUrl === undefined) ignoresN.clear(); else ignoresN.delete(baseUrl);
}

export type SampleOutcome =
  | { ok: true; choice: ChatChoice; via: 'batched' | 'single' }
  | { ok: false; error: unknown; via: 'batched' | 'single' };

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
  const outcomes: SampleOutcome[] = new Array(req.k);
  const deliver = (i: number, o: SampleOutcome) => { outcomes[i] = o; options.onSample?.(i, o); };
  const callOpts: CallOptions = { signal: options.signal, observer: options.observer };

  const single = async (i: number) => {
    const sampling = req.sampling?.seed !== undefined ? { ...req.sampling, seed: req.sampling.seed + i } : req.sampling;
    try {
      const r = await schedule(() => provider.chat({ kind: 'generate', messages: req.messages, n: 1, sampling, topLogprobs: req.topLogprobs }, callOpts));
      deliver(i, { ok: true, choice: r.choices[0], via: 'single' });
    } catch (error) {
      deliver(i, { ok: false, error, via: 'single' });
    }
  };

  let first = 0;
  const batchable = req.k > 1 && provider.maxN > 1 && !ignoresN.has(provider.baseUrl);
  if (batchable) {
    const n = Math.min(req.k, provider.maxN);
    try {
      const r = await schedule(() => provider.chat({ kind: 'generate', messages: req.messages, n, sampling: req.sampling, topLogprobs: req.topLogprobs }, callOpts));
      const got = Math.min(r.choices.length, n);
      if (r.choices.length < n) ignoresN.add(provider.baseUrl);
      for (let i = 0; i < got; i++) deliver(i, { ok: true, choice: r.choices[i], via: 'batched' });
      first = got;
    } catch (error) {
      // A batched request that failed after retries fails every sample, those beyond maxN too:
      // the server is not answering, and K more calls would only hammer it.
      for (let i = 0; i < req.k; i++) deliver(i, { ok: false, error, via: 'batched' });
      return outcomes;
    }
  }
  const rest: Promise<void>[] = [];
  for (let i = first; i < req.k; i++) rest.push(single(i));
  await Promise.all(rest);
  return outcomes;
}
