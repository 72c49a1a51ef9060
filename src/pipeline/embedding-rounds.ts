/**
 * Batches one request's remote embeddings by step round. Round h holds step h of every candidate
 * (round 0 also the retrieval context) and goes out as one /embeddings request, `input` an array,
 * once every candidate has queued its step-h text or dropped out: K candidates cost one request
 * per step instead of K. Waiting for the round delays only embedding, never the unroll (step h+1
 * is requested before step h is embedded), and scoring waits for every candidate anyway.
 *
 * Only texts that miss the per-text cache are queued (the caller queues from inside the cache's
 * single-flight load), so cached texts cost nothing and a text two candidates share is sent once.
 */
import { EcrError } from '../core/errors.js';

interface Queued {
  text: string;
  resolve: (v: Float32Array) => void;
  reject: (e: unknown) => void;
}

interface Round {
  /** Candidates that have neither arrived at this round nor left it. */
  waiting: number;
  queued: Queued[];
  sent: boolean;
}

export class EmbeddingRounds {
  private readonly rounds: Round[];

  /**
   * @param participants candidates taking part (each arrives at or leaves every round once)
   * @param lastRound the last step index, H
   * @param send one embedding request for the texts, vectors in the same order
   */
  constructor(
    participants: number,
    lastRound: number,
    private readonly send: (texts: string[]) => Promise<Float32Array[]>,
  ) {
    this.rounds = Array.from({ length: lastRound + 1 }, () => ({ waiting: participants, queued: [], sent: false }));
    if (participants === 0) for (let r = 0; r <= lastRound; r++) this.flush(r);
  }

  /**
   * Queues `text` for round `round` and resolves with its vector once the round is sent. A round
   * already sent (a load retried after another request's cancellation) sends it on its own.
   */
  enqueue(round: number, text: string): Promise<Float32Array> {
    const r = this.rounds[round];
    if (r.sent) return this.send([text]).then((vs) => vs[0]);
    return new Promise((resolve, reject) => {
      r.queued.push({ text, resolve, reject });
    });
  }

  /** A candidate has queued its text for `round`, or found it cached. */
  arrive(round: number): void {
    const r = this.rounds[round];
    if (--r.waiting === 0) this.flush(round);
  }

  /** A candidate takes part in no round from `from` on (it failed, or has no more steps). */
  leave(from: number): void {
    for (let round = from; round < this.rounds.length; round++) {
      if (--this.rounds[round].waiting === 0) this.flush(round);
    }
  }

  private flush(round: number): void {
    const r = this.rounds[round];
    r.sent = true;
    const queued = r.queued;
    r.queued = [];
    if (queued.length === 0) return;
    this.send(queued.map((q) => q.text)).then(
      (vectors) => {
        if (vectors.length !== queued.length) {
          const err = new EcrError('ECR_EMBEDDING_SHAPE', `the embedder returned ${vectors.length} vectors for ${queued.length} texts`);
          for (const q of queued) q.reject(err);
          return;
        }
        queued.forEach((q, i) => q.resolve(vectors[i]));
      },
      (err: unknown) => queued.forEach((q) => q.reject(err)),
    );
  }
}
