/** Embeddings of a request's texts: through the embeddings cache, remote misses batched by step round. */
import { tupleKey } from '../cache/canonical-json.js';
import { unlessForeignCancel } from './caches.js';
import type { RequestContext } from './request-context.js';

/**
 * The embedding of `text`, step `round` of a candidate (`participant`) or the context. A miss of
 * a remote embedder is queued into its round's batch. The candidate arrives at its round once the
 * lookup is decided: right after queueing a miss, or when a cache (L2 after its round trip) or a
 * load in flight serves the text, so the round is never sent before a miss is queued.
 */
export function embed(ctx: RequestContext, text: string, round: number, participant = true): Promise<Float32Array> {
  const { embedder, shared } = ctx.settings;
  const key = tupleKey('embedding', embedder.id, text);
  const rounds = ctx.rounds;
  let arrived = !participant || !rounds;
  const arrive = () => {
    if (!arrived) {
      arrived = true;
      rounds!.arrive(round);
    }
  };
  const p = unlessForeignCancel(
    () =>
      shared.tiers.embeddings.getOrCompute(
        key,
        async () => {
          if (rounds) {
            const queued = rounds.enqueue(round, text);
            arrive();
            return queued;
          }
          const [v] = await embedder.embed([text]);
          return v;
        },
        ctx.cache,
        (o) => {
          ctx.stats.onCache('embeddings', o);
          if (o !== 'miss') arrive();
        },
        ctx.signal,
      ),
    ctx.signal,
  );
  // A lookup that fails before deciding (it cannot: L2 failures are misses) must not hold the round.
  p.catch(() => {}).finally(arrive);
  return p;
}
