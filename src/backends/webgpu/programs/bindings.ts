/**
 * The binding names the programs share, with their types: one vocabulary, so the streamer binds
 * every program from one table of a chunk's resources (stream.ts) and a name means the same buffer
 * in every kernel. Each program lists the ones it uses, in its own order.
 */
import type { BindingDecl } from './program.js';

export const Bind = {
  params: { name: 'P', access: 'uniform', type: 'Params' },
  /** E as u32 words: f32 bits, or two unorm16 codes. */
  eWords: { name: 'E', access: 'read', type: 'array<u32>' },
  /** E as 16-byte words: four f32, or eight unorm16 codes. */
  eVec4: { name: 'E', access: 'read', type: 'array<vec4<u32>>' },
  policy: { name: 'policy', access: 'read', type: 'array<f32>' },
  /** realized - expected, [n][T]. */
  rewardDiff: { name: 'rewardDiff', access: 'read', type: 'array<f32>' },
  embeddings: { name: 'embeddings', access: 'read', type: 'array<f32>' },
  embeddingsVec4: { name: 'embeddings', access: 'read', type: 'array<vec4<f32>>' },
  /** TS from embeddings, [n]: written by ts_embeddings.wgsl, read by the fast metrics kernels. */
  tsEmbIn: { name: 'tsEmb', access: 'read', type: 'array<f32>' },
  tsEmbOut: { name: 'tsEmb', access: 'read_write', type: 'array<f32>' },
  /** CR weights, [max(m, 1)] (general kernel; the fast paths read Params.crW). */
  crWeights: { name: 'crWeights', access: 'read', type: 'array<f32>' },
  /** [6][S] f32 bits: EVB CR TS ES PD CCI (S = outStride(n)). */
  outWords: { name: 'outWords', access: 'read_write', type: 'array<u32>' },
  /** Shrunk covariance, [n][m][m]. */
  cov: { name: 'cov', access: 'read_write', type: 'array<f32>' },
} as const satisfies Record<string, BindingDecl>;
