/** Prometheus exposition format and per-request statistics. */
import { describe, expect, it } from 'vitest';
import { MetricsRegistry, RequestStats, ecrMetrics, prometheusText } from '../src/monitoring/index.js';

// One sample line of the text format: name, optional {label="value",...}, value.
const SAMPLE = /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\["\\n])*",?)*\})? (-?[0-9.e+-]+|NaN|\+Inf|-Inf)$/;

function checkExposition(text: string): void {
  expect(text.endsWith('\n')).toBe(true);
  for (const line of text.trimEnd().split('\n')) {
    if (line.startsWith('# HELP ') || line.startsWith('# TYPE ')) continue;
    expect(line, line).toMatch(SAMPLE);
  }
}

describe('Prometheus text format', () => {
  it('writes counters with sorted, escaped labels', () => {
    const r = new MetricsRegistry();
    const c = r.counter('t_calls_total', 'Calls.\nSecond line');
    c.inc({ kind: 'generate' });
    c.inc({ kind: 'generate' }, 2);
    c.inc({ z: 'a"b\\c\nd', a: 'x' });
    const text = r.expose();
    checkExposition(text);
    expect(text).toContain('# HELP t_calls_total Calls.\\nSecond line\n# TYPE t_calls_total counter\n');
    expect(text).toContain('t_calls_total{kind="generate"} 3\n');
    expect(text).toContain('t_calls_total{a="x",z="a\\"b\\\\c\\nd"} 1\n');
    expect(() => c.inc({}, -1)).toThrow(RangeError);
    expect(() => r.counter('bad name', 'x')).toThrow(TypeError);
  });

  it('writes histograms with cumulative buckets, +Inf, _sum and _count', () => {
    const r = new MetricsRegistry();
    const h = r.histogram('t_seconds', 'Durations.', [0.1, 1, 0.5]);
    for (const v of [0.05, 0.2, 0.7, 3]) h.observe(v);
    const text = r.expose();
    checkExposition(text);
    expect(text).toContain([
      '# TYPE t_seconds histogram',
      't_seconds_bucket{le="0.1"} 1',
      't_seconds_bucket{le="0.5"} 2',
      't_seconds_bucket{le="1"} 3',
      't_seconds_bucket{le="+Inf"} 4',
      't_seconds_sum 3.95',
      't_seconds_count 4',
    ].join('\n'));
    expect(() => r.counter('t_seconds', 'clash')).toThrow(/already registered/);
  });

  it('the process-wide exposition parses and names the ECR metrics', () => {
    ecrMetrics.llmCalls.inc({ kind: 'embed' });
    const text = prometheusText();
    checkExposition(text);
    for (const name of ['ecr_llm_calls_total', 'ecr_request_duration_seconds', 'ecr_cache_lookups_total']) {
      expect(text).toContain(`# TYPE ${name} `);
    }
  });
});

describe('RequestStats', () => {
  it('counts calls by kind, retries, errors, tokens and feeds the process metrics', () => {
    const before = ecrMetrics.llmCalls.get({ kind: 'unroll' });
    const s = new RequestStats();
    const t = performance.now();
    s.onCall({ kind: 'generate', ok: true, attempt: 0, startedAt: Date.now(), latencyMs: 20, status: 200, choices: 4, usage: { promptTokens: 10, completionTokens: 40 } });
    s.onCall({ kind: 'unroll', ok: false, attempt: 0, startedAt: Date.now(), latencyMs: 5, status: 500, error: 'x' });
    s.onCall({ kind: 'unroll', ok: true, attempt: 1, startedAt: Date.now(), latencyMs: 15, status: 200, choices: 1, usage: { promptTokens: 3, completionTokens: 7 } });
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
    expect(r.cache.steps).toEqual({ hits: 1, misses: 1, joined: 0 });
    expect(r.stagesMs.generate).toBeCloseTo(30, 6);
    expect(r.sequentialEstimateMs).toBe(40);
    expect(r.parallelSpeedup).toBeCloseTo(40 / r.wallMs, 9);
    expect(ecrMetrics.llmCalls.get({ kind: 'unroll' })).toBe(before + 2);
    expect(ecrMetrics.llmCallErrors.get({ kind: 'unroll', reason: 'http_500' })).toBeGreaterThanOrEqual(1);
  });
});
