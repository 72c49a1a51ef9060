/** Reads of one series of the process-wide Prometheus metrics, for assertions on what was counted. */
import type { Counter, Gauge, Histogram } from 'prom-client';

/** Current value of one counter or gauge series (0 when never set). */
export async function metricValue(metric: Counter<string> | Gauge<string>, labels: Record<string, string> = {}): Promise<number> {
  const { values } = await metric.get();
  const keys = Object.keys(labels);
  const hit = values.find((v) => keys.length === Object.keys(v.labels).length && keys.every((k) => String(v.labels[k]) === labels[k]));
  return hit?.value ?? 0;
}

/** Observations recorded by a histogram series (its _count). */
export async function histogramCount(metric: Histogram<string>, labels: Record<string, string> = {}): Promise<number> {
  const { values } = await metric.get();
  const keys = Object.keys(labels);
  const hit = values.find(
    (v) => v.metricName?.endsWith('_count') && keys.every((k) => String(v.labels[k]) === labels[k]) && Object.keys(v.labels).length === keys.length,
  );
  return hit?.value ?? 0;
}
