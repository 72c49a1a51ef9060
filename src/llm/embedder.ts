/**
 * Text embedders for the evaluative signals. `HashingEmbedder` is the built-in one used when no
 * embedding model is configured: feature hashing of word tokens and character trigrams into `dim`
 * signed buckets, L2-normalized. It makes no call and is deterministic, so lexical overlap (not
 * meaning) drives the similarity; a provider embedding model gives semantic similarity instead.
 */
import type { CallOptions, Provider } from './provider.js';

export interface Embedder {
  /** Identity for cache keys (changes when the vectors would change). */
  readonly id: string;
  /** True when embedding makes LLM calls (counted as kind "embed"). */
  readonly remote: boolean;
  embed(texts: string[], options?: CallOptions): Promise<Float32Array[]>;
}

const WORD_RE = /[\p{L}\p{N}]+/gu;

/** FNV-1a 32-bit over UTF-16 code units, with a seed so two hash functions come from one routine. */
function fnv1a(s: string, seed: number): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

export class HashingEmbedder implements Embedder {
  readonly id: string;
  readonly remote = false;
  constructor(readonly dim: number = 256, readonly trigramWeight: number = 0.5) {
    if (!Number.isInteger(dim) || dim < 8) throw new RangeError(`HashingEmbedder: dim must be an integer >= 8, got ${dim}`);
    this.id = `hashing-v1 d=${dim} tri=${trigramWeight}`;
  }

  embedOne(text: string): Float32Array {
    const v = new Float64Array(this.dim);
    const add = (feature: string, w: number) => {
      const h = fnv1a(feature, 0);
      // A second hash picks the sign so collisions cancel in expectation instead of piling up.
      const sign = fnv1a(feature, 0x9e3779b9) & 1 ? 1 : -1;
      v[h % this.dim] += sign * w;
    };
    for (const m of text.toLowerCase().matchAll(WORD_RE)) {
      const word = m[0];
      add(`w:${word}`, 1);
      const padded = `^${word}$`;
      for (let i = 0; i + 3 <= padded.length; i++) add(`c:${padded.slice(i, i + 3)}`, this.trigramWeight);
    }
    let norm = 0;
    for (let i = 0; i < this.dim; i++) norm += v[i] * v[i];
    norm = Math.sqrt(norm);
    const out = new Float32Array(this.dim);
    if (norm > 0) for (let i = 0; i < this.dim; i++) out[i] = v[i] / norm;
    return out;
  }

  async embed(texts: string[]): Promise<Float32Array[]> {
    return texts.map((t) => this.embedOne(t));
  }
}

/** Embeddings from the provider's embedding model (one /embeddings request per call). */
export class ProviderEmbedder implements Embedder {
  readonly id: string;
  readonly remote = true;
  constructor(private readonly provider: Provider & { embed: NonNullable<Provider['embed']> }, embeddingModel: string) {
    this.id = `provider ${provider.baseUrl} ${embeddingModel}`;
  }

  embed(texts: string[], options?: CallOptions): Promise<Float32Array[]> {
    return this.provider.embed(texts, options);
  }
}

/** Cosine similarity; 0 when either vector has (near) zero norm. */
export function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new RangeError(`cosine: lengths differ (${a.length} vs ${b.length})`);
  let dot = 0, na = 0, nb = 0;
  for (let i = 0; i < a.length; i++) { dot += a[i] * b[i]; na += a[i] * a[i]; nb += b[i] * b[i]; }
  if (na < 1e-24 || nb < 1e-24) return 0;
  return Math.max(-1, Math.min(1, dot / Math.sqrt(na * nb)));
}
