/**
 * Provider settings from flags and environment: flags win, then ECR_* variables, then the
 * OPENAI_* ones that OpenAI-compatible tools already use. The environment is the caller's to
 * pass (the CLI passes process.env): the library reads none of its own.
 */
import { UsageError } from '../core/errors.js';
import { redactUrl } from '../core/redact-url.js';
import { OpenAICompatibleProvider, type OpenAICompatibleOptions } from './openai-compatible.js';

export interface ProviderFlags {
  baseUrl?: string;
  apiKey?: string;
  model?: string;
  embeddingModel?: string;
  timeoutMs?: number;
  retries?: number;
}

/** Environment variables by name (process.env fits; a plain type, so the public .d.ts needs no @types/node). */
export type EnvironmentVariables = Readonly<Record<string, string | undefined>>;

export function resolveProviderOptions(flags: ProviderFlags, env: EnvironmentVariables): OpenAICompatibleOptions {
  const baseUrl = flags.baseUrl ?? env.ECR_BASE_URL ?? env.OPENAI_BASE_URL;
  if (!baseUrl) throw new UsageError('no server: pass --base-url URL or set ECR_BASE_URL (or OPENAI_BASE_URL), e.g. http://127.0.0.1:11434/v1 for Ollama');
  let parsed: URL;
  try {
    parsed = new URL(baseUrl);
  } catch {
    throw new UsageError(`--base-url: not a URL: ${JSON.stringify(redactUrl(baseUrl))}`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new UsageError(`--base-url: must be http(s), got ${parsed.protocol}`);
  const model = flags.model ?? env.ECR_MODEL;
  if (!model) throw new UsageError('no model: pass --model M or set ECR_MODEL');
  const apiKey = flags.apiKey ?? env.ECR_API_KEY ?? env.OPENAI_API_KEY;
  const embeddingModel = flags.embeddingModel ?? env.ECR_EMBEDDING_MODEL;
  return {
    baseUrl,
    model,
    apiKey: apiKey || undefined,
    embeddingModel: embeddingModel || undefined,
    timeoutMs: flags.timeoutMs,
    retry: flags.retries !== undefined ? { retries: flags.retries } : undefined,
  };
}

export function providerFromSettings(flags: ProviderFlags, env: EnvironmentVariables): OpenAICompatibleProvider {
  return new OpenAICompatibleProvider(resolveProviderOptions(flags, env));
}
