/**
 * Sampling a request's K candidates. Deterministic sampling (a seed, or temperature 0) gives the
 * same candidates every time, so only then are they cached, and a request that asks for a set
 * already being sampled in this process joins that flight instead of sampling it again.
 */
import { tupleKey } from '../cache/canonical-json.js';
import { LlmCancelledError } from '../llm/errors.js';
import type { ChatChoice, SamplingParams } from '../llm/provider.js';
import { sampleChoices } from '../llm/sample-choices.js';
import type { RequestContext } from './request-context.js';
import type { CandidateOutcome } from './trajectory-types.js';
import { promptMessages } from './unroll.js';

/** True when repeated sampling gives the same candidates, the only case they may be cached. */
export function isDeterministic(sampling: SamplingParams): boolean {
  return sampling.seed !== undefined || sampling.temperature === 0;
}

function deferred<T>() {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

/** One promise per candidate, each settling as soon as that candidate is available. */
export function generate(ctx: RequestContext, k: number): Promise<CandidateOutcome>[] {
  const { provider, system, sampling, samplingKey, topLogprobs, shared } = ctx.settings;
  const deterministic = isDeterministic(sampling);
  const messages = ctx.conversation ?? promptMessages(ctx.prompt, system);
  const start = performance.now();
  const slots = Array.from({ length: k }, () => deferred<CandidateOutcome>());
  const promises = slots.map((s) => s.promise);
  const key = deterministic ? tupleKey('candidates', provider.id, JSON.stringify(messages), k, samplingKey, topLogprobs) : '';
  const control = ctx.cache;
  const tier = shared.tiers.candidates;
  const flights = shared.candidateFlights;
  const flightKey = deterministic ? tier.l1Key(key, control) : '';
  const launch = () =>
    sampleChoices(
      provider,
      { messages, k, sampling, topLogprobs },
      {
        signal: ctx.signal,
        observer: ctx.observer,
        schedule: ctx.schedule,
        onSample: (i, o) => {
          ctx.stats.span('generate', start);
          // A cancelled flight must not be joined by later requests.
          if (!o.ok && o.error instanceof LlmCancelledError && flights.get(flightKey) === promises) flights.delete(flightKey);
          slots[i].resolve(o);
        },
      },
    ).catch((error: unknown) => {
      // sampleChoices reports failures per sample; this only guards against a fault in it.
      const outcomes = slots.map(() => ({ ok: false as const, error, via: 'single' as const }));
      slots.forEach((s, i) => s.resolve(outcomes[i]));
      return outcomes;
    });
  if (!deterministic) {
    void launch();
    return promises;
  }
  const l1 = shared.caches.candidates;
  const cached = control.noCache ? undefined : l1.peek(flightKey);
  if (cached) {
    l1.record('hit');
    ctx.stats.onCache('candidates', 'hit');
    return cached.map((choice) => Promise.resolve({ ok: true as const, choice, via: 'cache' as const }));
  }
  const flight = control.noCache ? undefined : flights.get(flightKey);
  if (flight) {
    l1.record('joined');
    ctx.stats.onCache('candidates', 'joined');
    // If the request that owns the flight is cancelled, this one (not cancelled) generates anew.
    let relaunch: Promise<CandidateOutcome>[] | undefined;
    return flight.map((p, i) =>
      p.then((o) => {
        if (!o.ok && o.error instanceof LlmCancelledError && !ctx.signal?.aborted) return (relaunch ??= generate(ctx, k))[i];
        return o;
      }),
    );
  }
  if (!control.noCache) l1.record('miss');
  flights.set(flightKey, promises);
  void (async () => {
    // The slots must settle whatever happens: a lookup that fails (a bug, not Redis: Redis
    // failures are misses) generates as if nothing were cached.
    const found = await tier.lookup(key, control, ctx.signal).catch(() => ({ hit: false as const, lease: null }));
    if (found.hit && found.value.length === k) {
      ctx.stats.onCache('candidates', found.outcome);
      tier.fill(key, found.value, control, null); // L1 only: the value came from L2
      found.value.forEach((choice, i) => slots[i].resolve({ ok: true, choice, via: 'cache' }));
      return;
    }
    const lease = found.hit ? null : found.lease;
    ctx.stats.onCache('candidates', 'miss');
    const outcomes = await launch();
    // Only a complete set is cached: a failed sample must be retried by the next request.
    if (outcomes.every((o) => o.ok))
      tier.fill(
        key,
        outcomes.map((o) => (o as { choice: ChatChoice }).choice),
        control,
        lease,
      );
    else tier.abandon(lease);
  })().finally(() => {
    if (flights.get(flightKey) === promises) flights.delete(flightKey);
  });
  return promises;
}
