/**
 * The Python engine's two calls, for teams moving over: `generateCandidates(prompt, llm)` samples
 * K answers and `selectBest(candidates, prompt, llm)` unrolls and scores given answers and returns
 * the most coherent admissible one, where `llm` is a plain `async (messages) => string`.
 */
import { EcrError } from '../core/errors.js';
import { FunctionProvider, type LlmFunction } from '../llm/function-provider.js';
import { sampleChoices } from '../llm/sample-choices.js';
import { NoSurvivingCandidatesError } from './errors.js';
import { EcrPipeline, type PipelineOptions } from './pipeline.js';
import type { PipelineResult } from './types.js';
import { promptMessages } from './unroll.js';

export type DropInOptions = Omit<PipelineOptions, 'provider' | 'shareWith'> & { signal?: AbortSignal };

/** K candidate answers (default 4), one call each; a failed call fails the whole request. */
export async function generateCandidates(prompt: string, llm: LlmFunction, options: DropInOptions & { k?: number } = {}): Promise<string[]> {
  const provider = new FunctionProvider(llm);
  const outcomes = await sampleChoices(
    provider,
    { messages: promptMessages(prompt, options.system), k: options.k ?? 4, sampling: { temperature: 0.8, ...options.sampling } },
    { signal: options.signal },
  );
  const failed = outcomes.flatMap((o, index) =>
    o.ok ? [] : [{ index, stage: 'generate', message: o.error instanceof Error ? o.error.message : String(o.error) }],
  );
  if (failed.length)
    throw new NoSurvivingCandidatesError(
      failed,
      outcomes.flatMap((o) => (o.ok ? [] : [o.error])),
    );
  return outcomes.map((o) => (o as { choice: { text: string } }).choice.text);
}

/** Unrolls each given candidate with `llm`, scores them together and selects; `response` is the chosen text. */
export async function selectBest(candidates: string[], prompt: string, llm: LlmFunction, options: DropInOptions = {}): Promise<PipelineResult> {
  if (!Array.isArray(candidates) || candidates.length === 0) throw new EcrError('ECR_PIPELINE_INPUT', 'selectBest needs at least one candidate');
  const { signal, ...rest } = options;
  const pipeline = new EcrPipeline({ ...rest, provider: new FunctionProvider(llm), k: candidates.length, adaptiveK: false, topLogprobs: 0 });
  return pipeline.run(prompt, { candidates, signal });
}
