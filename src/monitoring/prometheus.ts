/**
 * Process-wide counters, gauges and histograms, written in the Prometheus text exposition format
 * (version 0.0.4). The format is small enough that a dependency (prom-client) would cost more than
 * the ~100 lines here; nothing is scraped over the network unless the caller serves the text.
 */

export type Labels = Record<string, string>;

function escapeLabelValue(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function escapeHelp(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

function labelKey(labels: Labels): string {
  const keys = Object.keys(labels);
  // Most series carry one or two labels; skip the sort and join for those (called per LLM call and cache lookup).
  if (keys.length === 0) return '';
  if (keys.length === 1) return `${keys[0]}=${labels[keys[0]]}`;
  return keys.sort().map((k) => `${k}=${labels[k]}`).join('\u0000');
}

function formatLabels(labels: Labels, extra?: [string, string]): string {
  const parts = Object.keys(labels).sort().map((k) => `${k}="${escapeLabelValue(labels[k])}"`);
  if (extra) parts.push(`${extra[0]}="${escapeLabelValue(extra[1])}"`);
  return parts.length ? `{${parts.join(',')}}` : '';
}

function formatNumber(x: number): string {
  if (Number.isNaN(x)) return 'NaN';
  if (x === Infinity) return '+Inf';
  if (x === -Infinity) return '-Inf';
  return String(x);
}

const NAME_RE = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_RE = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

function checkLabels(metric: string, labels: Labels): void {
  for (const k of Object.keys(labels)) {
    if (!LABEL_RE.test(k) || k === 'le') throw new TypeError(`metric ${metric}: invalid label name "${k}"`);
  }
}

interface Metric {
  readonly name: string;
  readonly help: string;
  readonly type: 'counter' | 'gauge' | 'histogram';
  expose(): string[];
  reset(): void;
}

export class Counter implements Metric {
  readonly type = 'counter';
  private readonly values = new Map<string, { labels: Labels; value: number }>();
  constructor(readonly name: string, readonly help: string) {}

  inc(labels: Labels = {}, by = 1): void {
    if (!(by >= 0)) throw new RangeError(`counter ${this.name}: increment must be >= 0, got ${by}`);
    const key = labelKey(labels);
    const e = this.values.get(key);
    if (e) e.value += by;
    else { checkLabels(this.name, labels); this.values.set(key, { labels: { ...labels }, value: by }); }
  }

  get(labels: Labels = {}): number {
    return this.values.get(labelKey(labels))?.value ?? 0;
  }

  expose(): string[] {
    return [...this.values.values()].map((e) => `${this.name}${formatLabels(e.labels)} ${formatNumber(e.value)}`);
  }

  reset(): void { this.values.clear(); }
}

export class Gauge implements Metric {
  readonly type = 'gauge';
  private readonly values = new Map<string, { labels: Labels; value: number }>();
  constructor(readonly name: string, readonly help: string) {}

  set(value: number, labels: Labels = {}): void {
    const key = labelKey(labels);
    const e = this.values.get(key);
    if (e) e.value = value;
    else { checkLabels(this.name, labels); this.values.set(key, { labels: { ...labels }, value }); }
  }

  expose(): string[] {
    return [...this.values.values()].map((e) => `${this.name}${formatLabels(e.labels)} ${formatNumber(e.value)}`);
  }

  reset(): void { this.values.clear(); }
}

export class Histogram implements Metric {
  readonly type = 'histogram';
  private readonly series = new Map<string, { labels: Labels; counts: number[]; sum: number; count: number }>();
  readonly buckets: readonly number[];
  constructor(readonly name: string, readonly help: string, buckets: readonly number[]) {
    const sorted = [...buckets].sort((a, b) => a - b);
    if (sorted.length === 0 || sorted.some((b, i) => !Number.isFinite(b) || (i > 0 && b === sorted[i - 1]))) {
      throw new RangeError(`histogram ${name}: buckets must be distinct finite numbers`);
    }
    this.buckets = sorted;
  }

  observe(value: number, labels: Labels = {}): void {
    const key = labelKey(labels);
    let s = this.series.get(key);
    if (!s) {
      checkLabels(this.name, labels);
      s = { labels: { ...labels }, counts: new Array(this.buckets.length).fill(0), sum: 0, count: 0 };
      this.series.set(key, s);
    }
    // Buckets are stored non-cumulative and summed on exposition.
    const i = this.buckets.findIndex((b) => value <= b);
    if (i >= 0) s.counts[i]++;
    s.sum += value;
    s.count++;
  }

  count(labels: Labels = {}): number {
    return this.series.get(labelKey(labels))?.count ?? 0;
  }

  expose(): string[] {
    const lines: string[] = [];
    for (const s of this.series.values()) {
      let cumulative = 0;
      this.buckets.forEach((b, i) => {
        cumulative += s.counts[i];
        lines.push(`${this.name}_bucket${formatLabels(s.labels, ['le', formatNumber(b)])} ${cumulative}`);
      });
      lines.push(`${this.name}_bucket${formatLabels(s.labels, ['le', '+Inf'])} ${s.count}`);
      lines.push(`${this.name}_sum${formatLabels(s.labels)} ${formatNumber(s.sum)}`);
      lines.push(`${this.name}_count${formatLabels(s.labels)} ${s.count}`);
    }
    return lines;
  }

  reset(): void { this.series.clear(); }
}

export class MetricsRegistry {
  private readonly metrics = new Map<string, Metric>();

  private add<M extends Metric>(m: M): M {
    if (!NAME_RE.test(m.name)) throw new TypeError(`invalid metric name "${m.name}"`);
    const existing = this.metrics.get(m.name);
    if (existing) {
      if (existing.type !== m.type) throw new TypeError(`metric ${m.name} already registered as a ${existing.type}`);
      return existing as M;
    }
    this.metrics.set(m.name, m);
    return m;
  }

  counter(name: string, help: string): Counter { return this.add(new Counter(name, help)); }
  gauge(name: string, help: string): Gauge { return this.add(new Gauge(name, help)); }
  histogram(name: string, help: string, buckets: readonly number[]): Histogram { return this.add(new Histogram(name, help, buckets)); }

  /** The text exposition of every metric, ending in a newline. */
  expose(): string {
    const out: string[] = [];
    for (const m of this.metrics.values()) {
      out.push(`# HELP ${m.name} ${escapeHelp(m.help)}`, `# TYPE ${m.name} ${m.type}`, ...m.expose());
    }
    return out.join('\n') + '\n';
  }

  reset(): void {
    for (const m of this.metrics.values()) m.reset();
  }
}
