/** The process-wide metrics (prom-client) and per-request statistics. */
import { describe, expect, it } from 'vitest';
import { RequestStats } from '../src/monitoring/request-stats.js';
import { ecrMetrics, prometheusText, registry } from '../src/monitoring/process-metrics.js';
import { histogramCount, metricValue } from './helpers/metrics.js';

// One sample line of the text format: name, optional {label="value",...}, value.
const SAMPLE = /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\["\\n])*",?)*\})? (-?[0-9.e+-]+|NaN|\+Inf|-Inf)$/;

function checkExposition(text: string): void {
  expect(text.endsWith('\n')).toBe(true);
  for (const line of text.trimEnd().split('\n')) {
    if (line === '' || line.startsWith('# HELP ') || line.startsWith('# TYPE ')) continue;
    expect(line, line).toMatch(SAMPLE);
  }
}

describe('Prometheus exposition (prom-client)', () => {
  it('parses, uses the ecr_ prefix for every metric, and names the pipeline and gateway metrics', async () => {
    ecrMetrics.llmCalls.inc({ kind: 'embed' });
    ecrMetrics.selectedCci.observe(0.72);
    const text = await prometheusText();
    checkExposition(text);
    for (const m of text.matchAll(/^# TYPE (\S+) /gm)) expect(m[1]).toMatch(/^ecr_/);
    for (const name of [
      'ecr_llm_calls_total',
      'ecr_request_duration_seconds',
      'ecr_cache_lookups_total',
      'ecr_selected_cci',
      'ecr_selections_total',
      'ecr_excluded_candidates_total',
      'ecr_http_requests_total',
      'ecr_http_requests_in_flight',
      'ecr_upstream_calls_total',
    ]) {
      expect(text).toContain(`# TYPE ${name} `);
    }
    // Explicit CCI buckets, cumulative.
    expect(text).toMatch(/^ecr_selected_cci_bucket\{le="0.75"\} [1-9]\d*$/m);
    expect(registry.contentType).toMatch(/^text\/plain/);
  });

  it('rejects labels a metric was not declared with', () => {
    expect(() => ecrMetrics.llmCalls.inc({ model: 'x' } as never)).toThrow(/label/i);
  });
});

describe('RequestStats', () => {
  it('counts calls by kind, retries, errors, tokens and feeds the process metrics', async () => {
    const before = await metricValue(ecrMetrics.llmCalls, { kind: 'unroll' });
    const errorsBefore = await metricValue(ecrMetrics.llmCallErrors, { kind: 'unroll', reason: 'http_500' });
    const durBefore = await histogramCount(ecrMetrics.llmCallDuration, { kind: 'unroll' });
    const s = new RequestStats();
    const t = performance.now();
    s.onCall({
      kind: 'generate',
      ok: true,
      attempt: 0,
      startedAt: Date.now(),
      latencyMs: 20,
      status: 200,
      choices: 4,
      usage: { promptTokens: 10, completionTokens: 40 },
    });
    s.onCall({ kind: 'unroll', ok: false, attempt: 0, startedAt: Date.now(), latencyMs: 5, status: 500, error: 'x' });
    s.onCall({
      kind: 'unroll',
      ok: true,
      attempt: 1,
      startedAt: Date.now(),
      latencyMs: 15,
      status: 200,
      choices: 1,
      usage: { promptTokens: 3, completionTokens: 7 },
    });
    s.onCache('steps', 'miss');
    s.onCache('steps', 'hit');
    s.span('generate', t, t + 20);
    s.span('generate', t + 5, t + 30);
    s.finish();
    const r = s.report();
    expect(r.calls.generate).toEqual({ requests: 1, retries: 0, errors: 0, choices: 4 });
    expect(r.calls.unroll).toEqual({ requests: 2, retries: 1, errors: 1, choices: 1 });
    expect(r.llmCalls).toBe(3);
    expect(r.tokens).toEqual({ prompt: 13, completion: 47, reported: true });
    expect(r.cache.steps).toEqual({ hits: 1, misses: 1, joined: 0, l1Hits: 1, l2Hits: 0 });
    expect(r.stagesMs.generate).toBeCloseTo(30, 6);
    expect(r.sequentialEstimateMs).toBe(40);
    expect(r.parallelSpeedup).toBeCloseTo(40 / r.wallMs, 9);
    expect(await metricValue(ecrMetrics.llmCalls, { kind: 'unroll' })).toBe(before + 2);
    expect(await metricValue(ecrMetrics.llmCallErrors, { kind: 'unroll', reason: 'http_500' })).toBe(errorsBefore + 1);
    expect(await histogramCount(ecrMetrics.llmCallDuration, { kind: 'unroll' })).toBe(durBefore + 2);
  });
});
