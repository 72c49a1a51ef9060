/**
 * Text embedders for the evaluative signals. `HashingEmbedder` is the built-in one used when no
 * embedding model is configured: feature hashing of word tokens and character trigrams into `dim`
 * signed buckets, L2-normalized. It makes no call and is deterministic, so lexical overlap (not
 * meaning) drives the similarity; a provider embedding model gives semantic similarity instead.
 */
import type { CallOptions, Provider } from './provider.js';
import { redactUrl } from '../core/redact-url.js';

export interface Embedder {
  /** Identity for cache keys (changes when the vectors would change). */
  readonly id: string;
  /** True when embedding makes LLM calls (counted as kind "embed"). */
  readonly remote: boolean;
  embed(texts: string[], options?: CallOptions): Promise<Float32Array[]>;
}

const WORD_RE = /[\p{L}\p{N}]+/gu;

const WORD_SEED = 0x2b1d;
const TRIGRAM_SEED = 0x5c3a;
const BOUNDARY_START = 0x5e; // '^'
const BOUNDARY_END = 0x24; // '$'

/**
 * FNV-1a 32-bit over word[from..to) (UTF-16 units), where index `startMark` reads as '^' and
 * `endMark` as '$' (the boundaries of a padded word), mixed with a seed per feature family and
 * finished with an avalanche step so low and high bits are both usable.
 */
function hashRange(seed: number, word: string, from: number, to: number, startMark: number, endMark: number): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = from; i < to; i++) {
    const c = i === startMark ? BOUNDARY_START : i === endMark ? BOUNDARY_END : word.charCodeAt(i);
    h ^= c;
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

export class HashingEmbedder implements Embedder {
  readonly id: string;
  readonly remote = false;
  constructor(
    readonly dim: number = 256,
    readonly trigramWeight: number = 0.5,
  ) {
    if (!Number.isInteger(dim) || dim < 8) throw new RangeError(`HashingEmbedder: dim must be an integer >= 8, got ${dim}`);
    this.id = `hashing-v2 d=${dim} tri=${trigramWeight}`;
  }

  embedOne(text: string): Float32Array {
    const v = new Float64Array(this.dim);
    const lower = text.toLowerCase();
    WORD_RE.lastIndex = 0;
    let m: RegExpExecArray | null;
    while ((m = WORD_RE.exec(lower)) !== null) {
      const word = m[0];
      // Word feature: FNV-1a over "w:" + word, hashed in place (no feature strings are built).
      this.add(v, hashRange(WORD_SEED, word, 0, word.length, -1, -1), 1);
      // Character trigrams of "^word$".
      const len = word.length + 2;
      for (let i = 0; i + 3 <= len; i++) this.add(v, hashRange(TRIGRAM_SEED, word, i - 1, i + 2, -1, word.length), this.trigramWeight);
    }
    let norm = 0;
    for (let i = 0; i < this.dim; i++) norm += v[i] * v[i];
    norm = Math.sqrt(norm);
    const out = new Float32Array(this.dim);
    if (norm > 0) for (let i = 0; i < this.dim; i++) out[i] = v[i] / norm;
    return out;
  }

  private add(v: Float64Array, h: number, w: number): void {
    // The top bit picks the sign so collisions cancel in expectation instead of piling up.
    v[(h & 0x7fffffff) % this.dim] += h & 0x80000000 ? -w : w;
  }

  async embed(texts: string[]): Promise<Float32Array[]> {
    return texts.map((t) => this.embedOne(t));
  }
}

/** Embeddings from the provider's embedding model (one /embeddings request per call). */
export class ProviderEmbedder implements Embedder {
  readonly id: string;
  readonly remote = true;
  constructor(
    private readonly provider: Provider & { embed: NonNullable<Provider['embed']> },
    embeddingModel: string,
  ) {
    this.id = `provider ${redactUrl(provider.baseUrl)} ${embeddingModel}`;
  }

  embed(texts: string[], options?: CallOptions): Promise<Float32Array[]> {
    return this.provider.embed(texts, options);
  }
}

/** Cosine similarity; 0 when either vector has (near) zero norm. */
export function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new RangeError(`cosine: lengths differ (${a.length} vs ${b.length})`);
  let dot = 0,
    na = 0,
    nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i] * b[i];
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  if (na < 1e-24 || nb < 1e-24) return 0;
  return Math.max(-1, Math.min(1, dot / Math.sqrt(na * nb)));
}
