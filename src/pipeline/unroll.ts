/**
 * What a trajectory step is. Step 0 is the candidate answer itself. Step h (1..H) is one more chat
 * call whose conversation is: the (optional) system prompt, the user's prompt, the previous step's
 * text as the assistant's turn, and a fixed review instruction asking the model to check that answer
 * and reply with the complete final answer (restated if right, corrected if not). Only step h-1 is
 * shown, not the whole history, so the context stays bounded and step h depends on step h-1 alone.
 * A stable candidate survives its own review nearly unchanged; an unstable one drifts, and the
 * coherence metrics measure that drift.
 */
import type { ChatMessage } from '../llm/provider.js';

/** Changes whenever the unroll conversation changes; part of every step's cache key. */
export const UNROLL_PROMPT_VERSION = 'review-v1';

export const UNROLL_INSTRUCTION =
  'Review your previous answer to the question above. Check it for factual errors, reasoning mistakes, ' +
  'unsupported claims and anything unsafe. Then reply with the complete final answer only: restate it if ' +
  'it is correct, or give the corrected answer.';

export function promptMessages(prompt: string, system?: string): ChatMessage[] {
  return system
    ? [
        { role: 'system', content: system },
        { role: 'user', content: prompt },
      ]
    : [{ role: 'user', content: prompt }];
}

export function unrollMessages(prompt: string, previousStep: string, system?: string): ChatMessage[] {
  return [...promptMessages(prompt, system), { role: 'assistant', content: previousStep }, { role: 'user', content: UNROLL_INSTRUCTION }];
}

/** A review step of a multi-turn conversation: the whole conversation, the previous step, the instruction. */
export function conversationUnrollMessages(conversation: readonly ChatMessage[], previousStep: string): ChatMessage[] {
  return [...conversation, { role: 'assistant', content: previousStep }, { role: 'user', content: UNROLL_INSTRUCTION }];
}
