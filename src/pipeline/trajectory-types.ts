/** The internal shapes of a request's candidates: a step as cached, a candidate's outcome, its trajectory. */
import type { ChatChoice, TokenLogprob } from '../llm/provider.js';
import type { SampleOutcome } from '../llm/sample-choices.js';

export interface StepData {
  text: string;
  logprobs: TokenLogprob[] | null;
  finishReason?: string;
  systemFingerprint?: string;
}

export type Failure = { stage: 'generate' | 'unroll' | 'evaluate'; step?: number; error: unknown };
export type Trajectory =
  | { index: number; ok: true; steps: StepData[]; cached: boolean[]; vectors: Float64Array[]; embeddings: Float32Array[] }
  | { index: number; ok: false; text?: string; failure: Failure };
export type Survivor = Extract<Trajectory, { ok: true }>;

export type CandidateOutcome = SampleOutcome | { ok: true; choice: ChatChoice; via: 'cache' | 'given' };
