/**
 * Typed reads of the gateway's JSON answers. `Response.json()` is `unknown`: the tests name the
 * shape they expect and then check it field by field.
 */
import type OpenAI from 'openai';
import type { ApiError } from '../../src/server/errors.js';

/** An error answer, as ApiError.body() writes it. */
export type ErrorBody = ReturnType<ApiError['body']>;

/** A chat completion with the gateway's audit block. */
export type EcrCompletion = OpenAI.ChatCompletion & { ecr: { candidates: unknown[]; selected_index: number } };

/** /health/readiness: the state, and what the upstream (and Redis, with a cache tier) said. */
export interface Readiness {
  status: string;
  upstream?: string;
  redis?: string;
  redisReason?: string;
}

export async function bodyOf<T>(res: Response): Promise<T> {
  return (await res.json()) as T;
}

export async function errorOf(res: Response): Promise<ErrorBody['error']> {
  return (await bodyOf<ErrorBody>(res)).error;
}
