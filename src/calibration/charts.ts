/**
 * The report's charts as Vega-Lite specifications, rendered to SVG strings in Node by Vega's
 * headless view (renderer "none": no canvas, no DOM), so the report needs no script to open.
 */
import type { TopLevelSpec } from 'vega-lite';
import type { AdmissionPoint } from './tau-search.js';
import type { ReliabilityBin, RiskCoveragePoint } from './statistics.js';
import type { SelectionLift } from './selection-lift.js';
import type { Measurement } from './maturity.js';
import { plural } from '../core/plural.js';

const WIDTH = 420;
const HEIGHT = 220;
const base = {
  width: WIDTH,
  height: HEIGHT,
  config: { background: 'white', font: 'sans-serif', title: { fontSize: 14, anchor: 'start' as const }, legend: { labelLimit: 0 }, axis: { labelLimit: 320 } },
};

export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  // Loaded on first use: importing the library or running ecr calibrate without --report need not pay for Vega.
  const [vega, { compile }] = await Promise.all([import('vega'), import('vega-lite')]);
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  const svg = await view.toSVG();
  view.finalize();
  return svg;
}

function histogram(values: readonly number[], bins: number): { lower: number; upper: number; count: number }[] {
  const counts = new Array<number>(bins).fill(0);
  for (const v of values) counts[Math.min(bins - 1, Math.max(0, Math.floor(v * bins)))]++;
  return counts.map((count, b) => ({ lower: b / bins, upper: (b + 1) / bins, count }));
}

/**
 * One colour per meaning of a tau line, in every chart and report: a colour scale over the
 * labels alone would follow their order, which the values in them change from report to report.
 */
export const TAU_COLOURS = { chosen: '#e45756', targetAdmission: '#54a24b' } as const;

/** Counts are whole: no tick between 0 and 1, and no decimals on the ticks there are. */
const COUNT_AXIS = { tickMinStep: 1, format: 'd' } as const;

export function cciHistogramSpec(cci: readonly number[], tau: number, tauAdmission: number): TopLevelSpec {
  const same = Math.abs(tauAdmission - tau) <= 1e-9;
  const rules: { tau: number; label: string; colour: string }[] = [
    { tau, label: `chosen tau ${tau.toFixed(3)}${same ? " (the target admission's)" : ''}`, colour: TAU_COLOURS.chosen },
  ];
  if (!same) rules.push({ tau: tauAdmission, label: `target-admission tau ${tauAdmission.toFixed(3)}`, colour: TAU_COLOURS.targetAdmission });
  return {
    ...base,
    title: { text: 'CCI distribution with tau', subtitle: 'trajectories right of a line are admitted' },
    layer: [
      {
        data: { values: histogram(cci, 50) },
        mark: { type: 'bar', color: '#4c78a8' },
        encoding: {
          x: { field: 'lower', type: 'quantitative', bin: { binned: true, step: 0.02 }, title: 'CCI (unitless, 0-1)', scale: { domain: [0, 1] } },
          x2: { field: 'upper' },
          y: { field: 'count', type: 'quantitative', title: 'trajectories (count)', axis: COUNT_AXIS },
        },
      },
      {
        data: { values: rules.map(({ tau: t, label }) => ({ tau: t, label })) },
        mark: { type: 'rule', strokeWidth: 2, strokeDash: [4, 3] },
        encoding: {
          x: { field: 'tau', type: 'quantitative' },
          color: {
            field: 'label',
            type: 'nominal',
            title: null,
            scale: { domain: rules.map((r) => r.label), range: rules.map((r) => r.colour) },
            legend: { orient: 'top-left' },
          },
        },
      },
    ],
  };
}

export function admissionSpec(curve: readonly AdmissionPoint[], tau: number): TopLevelSpec {
  const values = curve.flatMap((p) => [
    { tau: p.tau, rate: p.admission, series: 'admission (share of trajectories with CCI >= tau)' },
    { tau: p.tau, rate: p.fallback, series: 'fallback (share of groups with none admitted)' },
  ]);
  return {
    ...base,
    title: { text: 'Admission and fallback rate against tau', subtitle: 'dashed red line: the chosen tau' },
    layer: [
      {
        data: { values },
        mark: { type: 'line', strokeWidth: 2 },
        encoding: {
          x: { field: 'tau', type: 'quantitative', title: 'tau (CCI threshold, 0-1)' },
          y: { field: 'rate', type: 'quantitative', title: 'rate (share, 0-1)', scale: { domain: [0, 1] } },
          color: { field: 'series', type: 'nominal', title: null, legend: { orient: 'bottom', direction: 'vertical' } },
        },
      },
      {
        data: { values: [{ tau }] },
        mark: { type: 'rule', color: TAU_COLOURS.chosen, strokeDash: [4, 3] },
        encoding: { x: { field: 'tau', type: 'quantitative' } },
      },
    ],
  };
}

export function metricDistributionsSpec(metrics: Record<string, readonly number[]>): TopLevelSpec {
  const values = Object.entries(metrics).flatMap(([metric, xs]) => histogram(xs, 20).map((h) => ({ metric, ...h })));
  return {
    title: { text: 'The five metrics: distributions over trajectories' },
    config: base.config,
    data: { values },
    facet: { column: { field: 'metric', type: 'nominal', title: null, sort: Object.keys(metrics) } },
    spec: {
      width: 150,
      height: 150,
      mark: { type: 'bar', color: '#72b7b2' },
      encoding: {
        x: { field: 'lower', type: 'quantitative', bin: { binned: true, step: 0.05 }, title: 'value (unitless, 0-1)', scale: { domain: [0, 1] } },
        x2: { field: 'upper' },
        y: { field: 'count', type: 'quantitative', title: 'trajectories (count)', axis: COUNT_AXIS },
      },
    },
  };
}

export function reliabilitySpec(before: readonly ReliabilityBin[], after: readonly ReliabilityBin[], method: string): TopLevelSpec {
  const rows = (bins: readonly ReliabilityBin[], series: string) =>
    bins.filter((b) => b.count > 0).map((b) => ({ predicted: b.meanPredicted, accuracy: b.accuracy, count: b.count, series }));
  return {
    ...base,
    height: 260,
    title: {
      text: 'Reliability on held-out groups',
      subtitle: `raw CCI read as a probability, and after ${method} calibration; the diagonal is perfect calibration`,
    },
    layer: [
      {
        data: {
          values: [
            { x: 0, y: 0 },
            { x: 1, y: 1 },
          ],
        },
        mark: { type: 'line', color: '#aaa', strokeDash: [2, 2] },
        encoding: { x: { field: 'x', type: 'quantitative' }, y: { field: 'y', type: 'quantitative' } },
      },
      {
        data: { values: [...rows(before, 'before (raw CCI)'), ...rows(after, `after (${method})`)] },
        mark: { type: 'line', point: true },
        encoding: {
          x: { field: 'predicted', type: 'quantitative', title: 'predicted probability of a correct answer (0-1)', scale: { domain: [0, 1] } },
          y: { field: 'accuracy', type: 'quantitative', title: 'observed accuracy (share correct, 0-1)', scale: { domain: [0, 1] } },
          color: { field: 'series', type: 'nominal', title: null, legend: { orient: 'top-left' } },
        },
      },
    ],
  };
}

export function riskCoverageSpec(points: readonly RiskCoveragePoint[], baseRisk: number): TopLevelSpec {
  return {
    ...base,
    title: { text: 'Risk-coverage on held-out groups', subtitle: 'keeping the highest-CCI answers first; dashed: rejecting at random' },
    layer: [
      {
        data: { values: points.map((p) => ({ ...p })) },
        mark: { type: 'line', color: '#4c78a8', strokeWidth: 2 },
        encoding: {
          x: { field: 'coverage', type: 'quantitative', title: 'coverage (share of answers kept, 0-1)', scale: { domain: [0, 1] } },
          y: { field: 'risk', type: 'quantitative', title: 'risk (error rate among kept, 0-1)' },
        },
      },
      {
        data: { values: [{ risk: baseRisk }] },
        mark: { type: 'rule', color: '#888', strokeDash: [4, 3] },
        encoding: { y: { field: 'risk', type: 'quantitative' } },
      },
    ],
  };
}

export function liftSpec(lift: SelectionLift): TopLevelSpec {
  const row = (name: string, e: SelectionLift['selected']) => ({ name, value: e.value, low: e.interval?.low ?? e.value, high: e.interval?.high ?? e.value });
  const values = [row('ECR selected', lift.selected), row('first candidate', lift.first), row('random candidate', lift.random)];
  return {
    ...base,
    height: 160,
    title: {
      text: 'Selection accuracy per group, held out',
      subtitle: `${plural(lift.groups, 'group')}; bars: accuracy, whiskers: bootstrap 95% interval over groups`,
    },
    data: { values },
    layer: [
      {
        mark: { type: 'bar', color: '#54a24b' },
        encoding: {
          y: { field: 'name', type: 'nominal', title: null, sort: null },
          x: { field: 'value', type: 'quantitative', title: 'accuracy (share of groups answered correctly, 0-1)', scale: { domain: [0, 1] } },
        },
      },
      {
        mark: { type: 'rule', strokeWidth: 2 },
        encoding: { y: { field: 'name', type: 'nominal', sort: null }, x: { field: 'low', type: 'quantitative' }, x2: { field: 'high' } },
      },
    ],
  };
}

export function screeSpec(ratios: readonly number[], threshold: number): TopLevelSpec {
  return {
    ...base,
    height: 200,
    title: {
      text: 'M3: explained variance of the evaluative vectors (scree)',
      subtitle: `M3 passes when the first component explains < ${threshold * 100}% (dashed line)`,
    },
    layer: [
      {
        data: { values: ratios.map((r, i) => ({ component: `PC${i + 1}`, ratio: r })) },
        mark: { type: 'bar', color: '#f58518' },
        encoding: {
          x: { field: 'component', type: 'ordinal', title: 'principal component', sort: null },
          y: { field: 'ratio', type: 'quantitative', title: 'share of variance (0-1)', scale: { domain: [0, 1] } },
        },
      },
      {
        data: { values: [{ threshold }] },
        mark: { type: 'rule', color: '#e45756', strokeDash: [4, 3] },
        encoding: { y: { field: 'threshold', type: 'quantitative' } },
      },
    ],
  };
}

export function m1Spec(measurements: readonly (Measurement & { check: string })[]): TopLevelSpec {
  const values = measurements.map((m) => ({
    name: `${m.name}${m.check === 'M1-floor-free' ? ' (floor-free)' : ''}`,
    value: m.value,
    threshold: m.threshold,
    result: m.pass ? 'below threshold (pass)' : 'at or above threshold (fail)',
  }));
  return {
    ...base,
    height: 30 * values.length,
    title: { text: 'M1: medians and 95th percentile against thresholds', subtitle: "bars: measured; black ticks: the paper's thresholds (must be below)" },
    data: { values },
    layer: [
      {
        mark: { type: 'bar' },
        encoding: {
          y: { field: 'name', type: 'nominal', title: null, sort: null },
          x: { field: 'value', type: 'quantitative', title: 'value (unitless, 0-1)', scale: { domain: [0, 1] } },
          color: {
            field: 'result',
            type: 'nominal',
            title: null,
            scale: { domain: ['below threshold (pass)', 'at or above threshold (fail)'], range: ['#54a24b', '#e45756'] },
            legend: { orient: 'bottom' },
          },
        },
      },
      {
        mark: { type: 'tick', color: 'black', thickness: 3 },
        encoding: { y: { field: 'name', type: 'nominal', sort: null }, x: { field: 'threshold', type: 'quantitative' } },
      },
    ],
  };
}
