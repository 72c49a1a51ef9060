/** The ECR pipeline end to end against the real loopback HTTP server. */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { OpenAICompatibleProvider } from '../src/llm/openai-compatible.js';
import { knownToIgnoreN, resetNDetection } from '../src/llm/sample-choices.js';
import { type Embedder } from '../src/llm/embedder.js';
import { LoopbackServer, type LogEntry } from '../src/testing/loopback-server.js';
import { DeadlineExceededError, NoSurvivingCandidatesError, RequestCancelledError } from '../src/pipeline/errors.js';
import { EcrPipeline, type PipelineOptions } from '../src/pipeline/pipeline.js';
import { LexicalRiskEstimator, kForRisk } from '../src/pipeline/risk.js';
import { UNROLL_INSTRUCTION } from '../src/pipeline/unroll.js';
import { ecrMetrics, prometheusText } from '../src/monitoring/process-metrics.js';
import { histogramCount, metricValue } from './helpers/metrics.js';

let server: LoopbackServer;
beforeEach(async () => {
  server = await LoopbackServer.start();
  resetNDetection();
});
afterEach(async () => {
  await server.close();
});

function pipeline(options: Partial<PipelineOptions> = {}, retries = 1) {
  const provider = new OpenAICompatibleProvider({
    baseUrl: server.url,
    model: 'test-model',
    retry: { retries, baseDelayMs: 1 },
    embeddingModel: (options as { embeddingModel?: string }).embeddingModel,
  });
  return new EcrPipeline({ provider, adaptiveK: false, backend: 'cpu', ...options });
}
const chats = () => server.log.filter((e) => e.path === '/v1/chat/completions');
const unrolls = () => chats().filter((e) => e.kind === 'unroll');
const PROMPT = 'What is the boiling point of water at sea level?';

describe('pipeline', () => {
  it('makes one batched generate call and K*H review calls, scores all K and returns a real candidate', async () => {
    const r = await pipeline({ k: 4, horizon: 2, sampling: { seed: 5 } }).run(PROMPT);
    expect(
      chats()
        .filter((e) => e.kind === 'generate')
        .map((e) => e.n),
    ).toEqual([4]);
    expect(unrolls()).toHaveLength(8);
    expect(r.candidates.map((c) => c.index)).toEqual([0, 1, 2, 3]);
    expect(r.candidates.every((c) => c.status === 'scored' && c.steps!.length === 3)).toBe(true);
    // The response is the selected candidate's own text, as the server sent it.
    const served = new Set(chats().flatMap((e) => e.texts ?? []));
    expect(served.has(r.response)).toBe(true);
    expect(r.response).toBe(r.candidates[r.selectedIndex].text);
    expect(r.candidates[r.selectedIndex].selected).toBe(true);
    expect(r.candidates.filter((c) => c.selected)).toHaveLength(1);
    for (const c of r.candidates) {
      for (const v of Object.values(c.metrics!)) {
        expect(v).toBeGreaterThanOrEqual(0);
        expect(v).toBeLessThanOrEqual(1);
      }
      for (const s of c.steps!) {
        expect(s.E).toHaveLength(5);
        expect(s.logprobs).toBe(true);
        for (const x of s.E) expect(x >= 0 && x <= 1).toBe(true);
      }
      // Each step is the review of the previous one: same candidate tag, next step number.
      const tags = c.steps!.map((s) => /\[c:([0-9a-f]+) s:(\d+)\]/.exec(s.text)!.slice(1));
      expect(new Set(tags.map((t) => t[0])).size).toBe(1);
      expect(tags.map((t) => Number(t[1]))).toEqual([0, 1, 2]);
    }
    // A review call shows the prompt, the previous step as the assistant's turn, and the review instruction.
    const c0 = r.candidates[0];
    const review = unrolls().find((e) => e.tag === /\[c:([0-9a-f]+)/.exec(c0.text!)![1] && e.step === 2)!;
    expect(review.messages).toEqual([
      { role: 'user', content: PROMPT },
      { role: 'assistant', content: c0.steps![1].text },
      { role: 'user', content: UNROLL_INSTRUCTION },
    ]);
    expect(r.stats.calls.generate).toMatchObject({ requests: 1, choices: 4 });
    expect(r.stats.calls.unroll).toMatchObject({ requests: 8, choices: 8 });
    expect(r.stats.calls.embed.requests).toBe(0);
    expect(r.stats.signals).toMatchObject({ logprobs: true, policy: true, policyWidth: 5, expectedRealized: true });
    expect(r.stats.scoring.backend).toBe('cpu');
    expect(r.stats.tokens.reported).toBe(true);
    expect(r.stats.parallelSpeedup).toBeGreaterThan(0);
    expect(r.stats.memoryEstimateBytes).toBeGreaterThan(0);
    expect(UNROLL_INSTRUCTION).toMatch(/final answer/);
  });

  it('unrolls candidates without barriers: step h waits only for step h-1 of the same candidate', async () => {
    server.latencyMs = 20;
    let slowed: string | undefined;
    // The first review request to arrive is slowed by 800 ms (a wide margin over the ~60 ms the
    // other candidates need for all three steps): only its own candidate must wait.
    server.extraLatency = ({ kind, body }) => {
      if (kind !== 'unroll' || slowed !== undefined) return 0;
      slowed = /\[c:([0-9a-f]+)/.exec(JSON.stringify(body.messages))![1];
      return 800;
    };
    const r = await pipeline({ k: 4, horizon: 3, sampling: { seed: 9 }, maxParallel: 16 }).run(PROMPT);
    expect(r.stats.failed).toBe(0);
    const gen = chats().find((e) => e.kind === 'generate')!;
    const byTag = new Map<string, LogEntry[]>();
    for (const e of unrolls()) byTag.set(e.tag!, [...(byTag.get(e.tag!) ?? []), e]);
    expect(byTag.size).toBe(4);
    for (const entries of byTag.values()) {
      entries.sort((a, b) => a.step! - b.step!);
      expect(entries.map((e) => e.step)).toEqual([1, 2, 3]);
      expect(entries[0].start).toBeGreaterThanOrEqual(gen.end);
      for (let h = 1; h < entries.length; h++) expect(entries[h].start).toBeGreaterThanOrEqual(entries[h - 1].end);
    }
    // Step 1 of all candidates overlapped in time (they ran in parallel) ...
    const firsts = [...byTag.values()].map((es) => es[0]);
    expect(Math.max(...firsts.map((e) => e.start))).toBeLessThan(Math.min(...firsts.map((e) => e.end)));
    // ... and the other candidates finished all their steps while the slowed one was still on step 1.
    const slowStep1 = byTag.get(slowed!)!.find((e) => e.step === 1)!;
    for (const [tag, entries] of byTag) {
      if (tag === slowed) continue;
      expect(entries[2].start).toBeLessThan(slowStep1.end);
    }
  });

  it('adaptive K follows the risk thresholds and never exceeds the configured K', async () => {
    expect([0, 0.49, 0.5, 0.69, 0.7, 0.79, 0.8, 1].map((x) => kForRisk(x, 4))).toEqual([1, 1, 2, 2, 3, 3, 4, 4]);
    expect(kForRisk(0.95, 2)).toBe(2);
    const est = new LexicalRiskEstimator();
    const low = 'Say hello.';
    const high = 'Calculate the exact dosage of medication for a child; what does the legal regulation say, and cite the source and date for how much is safe?';
    expect(est.estimate(low)).toBeLessThan(0.5);
    expect(est.estimate(high)).toBeGreaterThanOrEqual(0.8);
    // A single high-stakes term is enough for more than one candidate; two give three.
    expect(kForRisk(est.estimate('What dose of ibuprofen should I take?'), 4)).toBe(2);
    expect(kForRisk(est.estimate('What is the maximum daily dose of ibuprofen? Is it safe?'), 4)).toBe(3);

    const p = pipeline({ k: 4, horizon: 1, adaptiveK: true });
    const a = await p.run(low);
    expect(a.stats.k).toMatchObject({ used: 1, adaptive: true });
    expect(a.candidates).toHaveLength(1);
    expect(chats().find((e) => e.kind === 'generate')!.n).toBe(1);
    server.clearLog();
    const b = await p.run(high);
    expect(b.stats.k.used).toBe(4);
    expect(chats().find((e) => e.kind === 'generate')!.n).toBe(4);
    const c = await pipeline({ k: 3, horizon: 1, adaptiveK: true }).run(high);
    expect(c.stats.k.used).toBe(3);
    // A custom estimator plugs in.
    const d = await pipeline({ k: 4, horizon: 1, adaptiveK: true, riskEstimator: { id: 'fixed', estimate: () => 0.75 } }).run(low);
    expect(d.stats.k).toMatchObject({ used: 3, estimator: 'fixed' });
  });

  it('excludes a candidate whose review still fails after retries and lists it with its error', async () => {
    // Learn the seeded candidates first, then fail every review of one of them.
    const first = await pipeline({ k: 3, horizon: 2, sampling: { seed: 21 } }).run(PROMPT);
    const victim = /\[c:([0-9a-f]+)/.exec(first.candidates[1].text!)![1];
    server.clearLog();
    server.fail({ path: '/v1/chat/completions', contains: `[c:${victim} s:0]`, times: Infinity, action: { status: 500 } });
    const r = await pipeline({ k: 3, horizon: 2, sampling: { seed: 21 } }, 2).run(PROMPT);
    const failed = r.candidates[1];
    expect(failed.status).toBe('failed');
    expect(failed.selected).toBe(false);
    expect(failed.error).toMatchObject({ stage: 'unroll', step: 1, code: 'ECR_LLM_HTTP' });
    expect(failed.error!.message).toContain('HTTP 500');
    expect(failed.metrics).toBeUndefined();
    expect(r.selectedIndex).not.toBe(1);
    expect(r.candidates.filter((c) => c.status === 'scored')).toHaveLength(2);
    expect(r.stats).toMatchObject({ survivors: 2, failed: 1 });
    // Three attempts (one try, two retries) reached the server for the failing review.
    expect(chats().filter((e) => e.status === 500)).toHaveLength(3);
  });

  it('a refused candidate is failed in the audit with the refusal text; the others keep their indices', async () => {
    server.contentless = ({ kind, choice }) => (kind === 'generate' && choice === 1 ? { refusal: 'I will not answer that.' } : undefined);
    const r = await pipeline({ k: 4, horizon: 1, sampling: { seed: 8 } }).run(PROMPT);
    const gen = chats().filter((e) => e.kind === 'generate');
    expect(gen.map((e) => e.n)).toEqual([4]);
    expect(knownToIgnoreN(server.url)).toBe(false);
    expect(r.candidates.map((c) => [c.index, c.status])).toEqual([
      [0, 'scored'],
      [1, 'failed'],
      [2, 'scored'],
      [3, 'scored'],
    ]);
    expect(r.candidates[1].error).toMatchObject({ stage: 'generate', code: 'ECR_LLM_NO_CONTENT', refusal: 'I will not answer that.' });
    expect(r.candidates[1].error!.message).toContain('refusal: "I will not answer that."');
    // Candidate i is the server's choice i.
    for (const i of [0, 2, 3]) expect(r.candidates[i].text).toBe(gen[0].texts![i]);
    expect(r.stats).toMatchObject({ survivors: 3, failed: 1 });
  });

  it('a review answered by tool calls only fails that candidate at that step', async () => {
    let first: number | undefined;
    server.contentless = ({ kind, seq }) => {
      if (kind !== 'unroll' || (first !== undefined && first !== seq)) return undefined;
      first = seq;
      return { toolCall: 'search' };
    };
    const r = await pipeline({ k: 3, horizon: 2, sampling: { seed: 4 } }, 0).run(PROMPT);
    const failed = r.candidates.filter((c) => c.status === 'failed');
    expect(failed).toHaveLength(1);
    expect(failed[0].error).toMatchObject({ stage: 'unroll', step: 1, code: 'ECR_LLM_NO_CONTENT' });
    expect(failed[0].error!.message).toContain('tool call(s) and no text');
    expect(failed[0].error!.refusal).toBeUndefined();
    expect(failed[0].text).toMatch(/^\[c:[0-9a-f]+ s:0\]/);
  });

  it('throws a typed error when no candidate survives, never a placeholder answer', async () => {
    server.fail({ path: '/v1/chat/completions', times: Infinity, action: { status: 503 } });
    const before = await metricValue(ecrMetrics.requests, { outcome: 'no_survivors' });
    const err = await pipeline({ k: 3, horizon: 1 })
      .run(PROMPT)
      .catch((e) => e);
    expect(err).toBeInstanceOf(NoSurvivingCandidatesError);
    expect(err.code).toBe('ECR_NO_SURVIVORS');
    expect(err.failures).toHaveLength(3);
    expect(err.failures.every((f: { stage: string }) => f.stage === 'generate')).toBe(true);
    expect(err.failures[0].message).toContain('HTTP 503');
    expect(await metricValue(ecrMetrics.requests, { outcome: 'no_survivors' })).toBe(before + 1);
  });

  it('is cancelled by the caller signal', async () => {
    server.latencyMs = 500;
    const ac = new AbortController();
    const run = pipeline({ k: 2, horizon: 1 }, 3)
      .run(PROMPT, { signal: ac.signal })
      .catch((e) => e);
    // Cancelled once the generate call is at the server (a fixed delay could fire before it, on a busy machine).
    await vi.waitFor(() => expect(chats()).toHaveLength(1), { timeout: 10_000 });
    ac.abort();
    const err = await run;
    expect(err).toBeInstanceOf(RequestCancelledError);
    expect(chats()).toHaveLength(1);
  });

  it('fails with DeadlineExceededError when its deadline passes, cancelling the calls in flight', async () => {
    server.latencyMs = 3000;
    const before = await metricValue(ecrMetrics.requests, { outcome: 'deadline' });
    const err = await pipeline({ k: 2, horizon: 1, embeddingModel: 'emb' } as Partial<PipelineOptions>, 3)
      .run(PROMPT, { deadlineMs: 1000 })
      .catch((e) => e);
    expect(err).toBeInstanceOf(DeadlineExceededError);
    expect(err).toMatchObject({ code: 'ECR_DEADLINE', deadlineMs: 1000 });
    expect(err.message).toBe('the request did not finish within its deadline of 1 s');
    // The one generate request was cancelled, not retried.
    expect(chats()).toHaveLength(1);
    expect(await metricValue(ecrMetrics.requests, { outcome: 'deadline' })).toBe(before + 1);
    // The caller's own cancellation is reported as such, even with a deadline set.
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 30);
    const cancelled = await pipeline({ k: 2, horizon: 1 })
      .run(PROMPT, { signal: ac.signal, deadlineMs: 60_000 })
      .catch((e) => e);
    expect(cancelled).toBeInstanceOf(RequestCancelledError);
    await expect(pipeline().run(PROMPT, { deadlineMs: 0 })).rejects.toMatchObject({ code: 'ECR_PIPELINE_OPTION' });
  });

  it('a deadline that does not pass changes nothing', async () => {
    const r = await pipeline({ k: 2, horizon: 1, sampling: { seed: 1 } }).run(PROMPT, { deadlineMs: 60_000 });
    expect(r.stats.failed).toBe(0);
  });

  it('K > 1 against a server that refuses n > 1 like llama.cpp succeeds with K candidates', async () => {
    server.rejectN = 400;
    const r = await pipeline({ k: 4, horizon: 1, sampling: { seed: 2 } }).run(PROMPT);
    expect(r.candidates.map((c) => c.status)).toEqual(['scored', 'scored', 'scored', 'scored']);
    expect(new Set(r.candidates.map((c) => c.text)).size).toBe(4);
    expect(
      chats()
        .filter((e) => e.kind === 'generate')
        .map((e) => [e.n, e.status]),
    ).toEqual([
      [4, 400],
      [1, 200],
      [1, 200],
      [1, 200],
      [1, 200],
    ]);
  });

  it('works without logprobs: lexical signals, PD and ES fall back to E', async () => {
    server.logprobs = false;
    const r = await pipeline({ k: 2, horizon: 1 }).run(PROMPT);
    expect(r.stats.signals).toMatchObject({ logprobs: false, policy: false, policyWidth: null, expectedRealized: false });
    expect(r.candidates.every((c) => c.steps!.every((s) => !s.logprobs))).toBe(true);
  });

  it('uses the provider embedding model when configured: one batched request per step round, counted', async () => {
    const p = pipeline({ k: 4, horizon: 1, sampling: { seed: 6 }, embeddingModel: 'emb' } as Partial<PipelineOptions>);
    const r = await p.run(PROMPT);
    expect(p.embedder.remote).toBe(true);
    const embeds = server.log.filter((e) => e.path === '/v1/embeddings');
    // Round 0: the context and the 4 candidates; round 1: the 4 reviews.
    expect(embeds.map((e) => e.inputs)).toEqual([5, 4]);
    expect(r.stats.calls.embed.requests).toBe(2);
    expect(r.stats.signals.embedder).toContain('emb');
  });

  it('given candidates (RunOptions.candidates) fewer than K take the embedding rounds in their place', async () => {
    const p = pipeline({ k: 4, horizon: 1, sampling: { seed: 7 }, embeddingModel: 'emb' } as Partial<PipelineOptions>);
    const r = await p.run(PROMPT, { candidates: ['Water boils at 100 C at sea level.', 'About 212 F at one atmosphere.'] });
    expect(r.candidates.map((c) => c.status)).toEqual(['scored', 'scored']);
    // No generate call; round 0: the context and the 2 given answers; round 1: their 2 reviews.
    expect(chats().filter((e) => e.kind === 'generate')).toHaveLength(0);
    expect(server.log.filter((e) => e.path === '/v1/embeddings').map((e) => e.inputs)).toEqual([3, 2]);
  });

  it('counts a cache entry at no less than its measured cost (key, LRU slot and V8 typed-array objects)', async () => {
    const p = pipeline({ k: 2, horizon: 1 });
    await p.run(PROMPT);
    const perEntry = (name: string) => {
      const c = p.cacheStats().find((x) => x.name === name)!;
      expect(c.entries).toBeGreaterThan(0);
      return c.size / c.entries;
    };
    // Measured on Node 20 over 100,000 entries: a 5-number vector ~340 bytes, a 256-float embedding ~1,330.
    expect(perEntry('vectors')).toBeGreaterThanOrEqual(340);
    expect(perEntry('embeddings')).toBeGreaterThanOrEqual(1330);
  });

  it('batched embeddings give exactly the results of one request per text', async () => {
    const options = { k: 4, horizon: 2, sampling: { seed: 12 }, embeddingModel: 'emb' } as Partial<PipelineOptions>;
    const batched = await pipeline(options).run(PROMPT);
    const batchedRequests = server.count('/v1/embeddings');
    server.clearLog();
    const provider = new OpenAICompatibleProvider({ baseUrl: server.url, model: 'test-model', embeddingModel: 'emb' });
    // The same embedding model, but every text in a request of its own.
    const perText: Embedder = {
      id: 'per-text',
      remote: true,
      embed: async (texts, opts) => (await Promise.all(texts.map((t) => provider.embed!([t], opts)))).map(([v]) => v),
    };
    const single = await pipeline({ ...options, embedder: perText }).run(PROMPT);
    expect(batchedRequests).toBe(3);
    expect(server.count('/v1/embeddings')).toBe(1 + 4 * 3);
    expect(server.log.filter((e) => e.path === '/v1/embeddings').every((e) => e.inputs === 1)).toBe(true);
    expect(single.candidates.map((c) => c.steps!.map((st) => st.E))).toEqual(batched.candidates.map((c) => c.steps!.map((st) => st.E)));
    expect(single.candidates.map((c) => c.metrics)).toEqual(batched.candidates.map((c) => c.metrics));
    expect(single.selectedIndex).toBe(batched.selectedIndex);
  });

  it('batched embeddings: only uncached texts are sent, concurrent requests share one flight, a failed candidate does not stall a round', async () => {
    const p = pipeline({ k: 2, horizon: 1, sampling: { seed: 2 }, embeddingModel: 'emb' } as Partial<PipelineOptions>);
    await p.run(PROMPT);
    expect(server.count('/v1/embeddings')).toBe(2);
    server.clearLog();
    // Same candidates and steps (cached), a new retrieval context: that one text is the only miss.
    const withContext = await p.run(PROMPT, { context: 'Water boils at 100 degrees Celsius at sea level.' });
    expect(server.log.filter((e) => e.path === '/v1/embeddings').map((e) => e.inputs)).toEqual([1]);
    expect(withContext.stats.cache.embeddings.hits).toBe(4);

    server.clearLog();
    const q = pipeline({ k: 3, horizon: 1, sampling: { seed: 31 }, embeddingModel: 'emb' } as Partial<PipelineOptions>);
    const [a, b] = await Promise.all([q.run(PROMPT), q.run(PROMPT)]);
    expect(b.response).toBe(a.response);
    expect(server.log.filter((e) => e.path === '/v1/embeddings').map((e) => e.inputs)).toEqual([4, 3]);

    server.clearLog();
    const victim = /\[c:([0-9a-f]+)/.exec(a.candidates[1].text!)![1];
    server.fail({ path: '/v1/chat/completions', contains: `[c:${victim} s:0]`, times: Infinity, action: { status: 500 } });
    const r = await pipeline({ k: 3, horizon: 2, sampling: { seed: 31 }, embeddingModel: 'emb' } as Partial<PipelineOptions>, 0).run(PROMPT);
    expect(r.stats).toMatchObject({ survivors: 2, failed: 1 });
    expect(server.log.filter((e) => e.path === '/v1/embeddings').map((e) => e.inputs)).toEqual([4, 2, 2]);
  });
});

describe('caching', () => {
  it('never serves candidates from cache when sampling is not deterministic', async () => {
    const p = pipeline({ k: 2, horizon: 1, sampling: { temperature: 0.8 } });
    const a = await p.run(PROMPT);
    const b = await p.run(PROMPT);
    expect(chats().filter((e) => e.kind === 'generate')).toHaveLength(2);
    expect(b.candidates.map((c) => c.text)).not.toEqual(a.candidates.map((c) => c.text));
  });

  it('serves a repeat of a seeded request from cache: no generate and no review calls', async () => {
    const p = pipeline({ k: 4, horizon: 2, sampling: { seed: 3 } });
    const a = await p.run(PROMPT);
    const n = chats().length;
    const b = await p.run(PROMPT);
    expect(chats()).toHaveLength(n);
    expect(b.response).toBe(a.response);
    expect(b.stats.llmCalls).toBe(0);
    expect(b.stats.cache.candidates.hits).toBe(1);
    expect(b.stats.cache.steps.hits).toBe(8);
    expect(b.candidates.every((c) => c.steps!.every((s) => s.cached))).toBe(true);
    // temperature 0 counts as deterministic too
    const z = pipeline({ k: 2, horizon: 1, sampling: { temperature: 0 } });
    expect(z.deterministicSampling).toBe(true);
  });

  it('single-flight: concurrent identical requests make one set of upstream calls', async () => {
    server.latencyMs = 20;
    const p = pipeline({ k: 3, horizon: 2, sampling: { seed: 4 } });
    const [a, b, c] = await Promise.all([p.run(PROMPT), p.run(PROMPT), p.run(PROMPT)]);
    expect(chats().filter((e) => e.kind === 'generate')).toHaveLength(1);
    expect(unrolls()).toHaveLength(6);
    expect(new Set([a.response, b.response, c.response]).size).toBe(1);
    expect((b.stats.cache.candidates.joined ?? 0) + (c.stats.cache.candidates.joined ?? 0)).toBe(2);
  });

  it('a request joined to the flight of a cancelled request still completes', async () => {
    server.latencyMs = 150;
    const p = pipeline({ k: 2, horizon: 1, sampling: { seed: 6 } });
    const ac = new AbortController();
    const first = p.run(PROMPT, { signal: ac.signal }).catch((e) => e);
    const second = p.run(PROMPT);
    setTimeout(() => ac.abort(), 40);
    expect(await first).toBeInstanceOf(RequestCancelledError);
    const r = await second;
    expect(r.stats.failed).toBe(0);
    expect(r.stats.cache.candidates.joined).toBe(1);
    // The cancelled generate call, then the joined request's own.
    expect(chats().filter((e) => e.kind === 'generate')).toHaveLength(2);
  });

  it('candidates sharing a long prefix do not collide in the caches', async () => {
    server.textPrefix = 'After careful review of all the relevant facts and sources, the team concludes: ';
    expect(server.textPrefix.length).toBeGreaterThan(50);
    const r = await pipeline({ k: 4, horizon: 1, sampling: { seed: 8 } }).run(PROMPT);
    const texts = r.candidates.map((c) => c.text!);
    expect(new Set(texts.map((t) => t.slice(0, 50))).size).toBe(1);
    expect(new Set(texts).size).toBe(4);
    // Every candidate got its own review call, and its own review back.
    expect(unrolls()).toHaveLength(4);
    for (const c of r.candidates) {
      const tag = /\[c:([0-9a-f]+) s:0\]/.exec(c.text!)![1];
      expect(c.steps![1].text).toContain(`[c:${tag} s:1]`);
    }
    expect(r.stats.cache.steps).toMatchObject({ hits: 0, misses: 4 });
  });

  it('prompts sharing a 50-character prefix get their own candidates', async () => {
    const p = pipeline({ k: 2, horizon: 1, sampling: { seed: 2 } });
    const a = await p.run(`${PROMPT} Answer in Celsius.`);
    const b = await p.run(`${PROMPT} Answer in Fahrenheit.`);
    expect(chats().filter((e) => e.kind === 'generate')).toHaveLength(2);
    expect(b.candidates.map((c) => c.text)).not.toEqual(a.candidates.map((c) => c.text));
  });
});

describe('monitoring', () => {
  it('counts LLM calls by kind in the Prometheus exposition', async () => {
    const g0 = await metricValue(ecrMetrics.llmCalls, { kind: 'generate' });
    const u0 = await metricValue(ecrMetrics.llmCalls, { kind: 'unroll' });
    const d0 = await histogramCount(ecrMetrics.requestDuration);
    await pipeline({ k: 2, horizon: 2 }).run(PROMPT);
    expect(await metricValue(ecrMetrics.llmCalls, { kind: 'generate' })).toBe(g0 + 1);
    expect(await metricValue(ecrMetrics.llmCalls, { kind: 'unroll' })).toBe(u0 + 4);
    expect(await histogramCount(ecrMetrics.requestDuration)).toBe(d0 + 1);
    const text = await prometheusText();
    expect(text).toMatch(new RegExp(`^ecr_llm_calls_total\\{kind="unroll"\\} ${u0 + 4}$`, 'm'));
    expect(text).toMatch(/^ecr_request_duration_seconds_bucket\{le="\+Inf"\} \d+$/m);
  });
});
