/**
 * Byte layout of one chunk's buffers: the inputs share one staging buffer and one device buffer
 * (each segment at a 256-byte aligned offset, bound as its own binding), the outputs one device
 * buffer and one readback buffer.
 */
import type { Batch } from '../../core/batch.js';
import { alignUp, type ChunkedBinding } from './device/dispatch.js';

export const SEGMENT_ALIGN = 256;

export type InputName = 'e' | 'policy' | 'rewardDiff' | 'embeddings';

export interface BatchShape {
  t: number;
  m: number;
  a: number; // 0 without a policy
  d: number; // 0 without embeddings
  rewards: boolean;
  unorm16: boolean;
  covariance: boolean;
}

/** The shape of a batch as the GPU sees it (n aside). */
export function shapeOf(batch: Pick<Batch, 't' | 'm' | 'a' | 'd' | 'policy' | 'embeddings' | 'expected'>, unorm16: boolean, covariance: boolean): BatchShape {
  return {
    t: batch.t,
    m: batch.m,
    a: batch.policy ? batch.a! : 0,
    d: batch.embeddings ? batch.d! : 0,
    rewards: !!batch.expected,
    unorm16,
    covariance,
  };
}

/** Bytes of each input for `count` trajectories; 0 for an absent input. */
export function inputBytes(s: BatchShape, count: number): Record<InputName, number> {
  const tm = s.t * s.m;
  return {
    e: s.unorm16 ? alignUp(count * tm * 2, 4) : count * tm * 4,
    policy: count * s.t * s.a * 4,
    rewardDiff: s.rewards ? count * s.t * 4 : 0,
    embeddings: count * s.t * s.d * 4,
  };
}

export const INPUT_ORDER: readonly InputName[] = ['e', 'policy', 'rewardDiff', 'embeddings'];

export interface Segment {
  offset: number;
  bytes: number;
}

/** Offsets of the inputs in a buffer sized for `capacity` trajectories, sizes for `count`. */
export function inputLayout(s: BatchShape, capacity: number, count: number): { segments: Record<InputName, Segment>; totalBytes: number } {
  const cap = inputBytes(s, capacity);
  const used = inputBytes(s, count);
  const segments = {} as Record<InputName, Segment>;
  let offset = 0;
  for (const name of INPUT_ORDER) {
    segments[name] = { offset, bytes: used[name] };
    offset += alignUp(cap[name], SEGMENT_ALIGN);
  }
  return { segments, totalBytes: Math.max(offset, SEGMENT_ALIGN) };
}

/** Stride (in values) between the per-metric arrays of a chunk's output: count rounded up to 64. */
export function metricStride(count: number): number {
  return alignUp(Math.max(count, 1), 64);
}

/** Bytes of the metrics output for `count` trajectories: [6][S] f32 (EVB CR TS ES PD CCI). */
export function metricsOutputBytes(count: number): number {
  return 24 * metricStride(count);
}

/** Output buffer (and its readback copy): the metric arrays, then covariance [n][m][m]. */
export function outputLayout(s: BatchShape, capacity: number) {
  const metrics = { offset: 0, bytes: metricsOutputBytes(capacity) };
  const cov = { offset: alignUp(metrics.bytes, SEGMENT_ALIGN), bytes: s.covariance ? capacity * s.m * s.m * 4 : 0 };
  return { metrics, cov, totalBytes: cov.offset + Math.max(cov.bytes, SEGMENT_ALIGN) };
}

/** Per-trajectory bytes of every chunked binding, for the chunk planner. */
export function chunkedBindings(s: BatchShape, withTsEmb: boolean): ChunkedBinding[] {
  const per = inputBytes(s, 1);
  const list: ChunkedBinding[] = INPUT_ORDER.map((name) => ({
    name,
    bytesPerTrajectory: name === 'e' ? (s.unorm16 ? s.t * s.m * 2 : s.t * s.m * 4) : per[name],
  }));
  list.push({ name: 'metrics', bytesPerTrajectory: 24 });
  if (withTsEmb) list.push({ name: 'tsEmb', bytesPerTrajectory: 4 });
  if (s.covariance) list.push({ name: 'covariance', bytesPerTrajectory: s.m * s.m * 4 });
  return list;
}
