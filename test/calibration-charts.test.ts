/**
 * The report's charts as Vega renders them (the SVG the report embeds): each tau line keeps its
 * colour whichever tau is larger, and count axes have whole-number ticks on small counts.
 */
import { describe, expect, it } from 'vitest';
import { cciHistogramSpec, metricDistributionsSpec, renderSvg, TAU_COLOURS } from '../src/calibration/charts.js';

/** [stroke colour, label] of each legend entry, in order. */
function legendEntries(svg: string): [string, string][] {
  const legend = svg.slice(svg.indexOf('role-legend"'));
  return [...legend.matchAll(/role-legend-symbol[^>]*><path[^>]*stroke="([^"]+)"[\s\S]*?role-legend-label[^>]*><text[^>]*>([^<]+)<\/text>/g)].map((m) => [
    m[1],
    m[2],
  ]);
}

/** The tick labels of every axis whose aria-label starts with "Y-axis". */
function yTickLabels(svg: string): string[] {
  const out: string[] = [];
  for (const m of svg.matchAll(/aria-label="Y-axis[^"]*">([\s\S]*?)role-axis-title/g)) {
    const labels = m[1].slice(m[1].indexOf('role-axis-label'));
    for (const t of labels.matchAll(/<text[^>]*>([^<]+)<\/text>/g)) out.push(t[1]);
  }
  return out;
}

describe('the CCI histogram', () => {
  it('draws the chosen tau in one colour and the target-admission tau in another, whichever is larger', async () => {
    for (const [chosen, admission] of [
      [0.7, 0.75],
      [0.8, 0.75],
    ]) {
      const entries = legendEntries(await renderSvg(cciHistogramSpec([0.5, 0.7, 0.8, 0.85], chosen, admission)));
      expect(entries).toEqual([
        [TAU_COLOURS.chosen, `chosen tau ${chosen.toFixed(3)}`],
        [TAU_COLOURS.targetAdmission, `target-admission tau ${admission.toFixed(3)}`],
      ]);
    }
  });

  it("one line in the chosen colour when the chosen tau is the target admission's", async () => {
    expect(legendEntries(await renderSvg(cciHistogramSpec([0.5, 0.7], 0.7, 0.7)))).toEqual([[TAU_COLOURS.chosen, "chosen tau 0.700 (the target admission's)"]]);
  });

  it('counts on whole-number ticks when every bin holds one or two', async () => {
    const ticks = yTickLabels(await renderSvg(cciHistogramSpec([0.5, 0.7, 0.71], 0.7, 0.6)));
    expect(ticks.length).toBeGreaterThan(1);
    for (const t of ticks) expect(t).toMatch(/^\d+$/);
  });
});

describe('the metric distributions', () => {
  it('counts on whole-number ticks for a single trajectory', async () => {
    const one = { EVB: [0.4], CR: [0.1], TS: [0.9], ES: [0.8], PD: [0.2] };
    const ticks = yTickLabels(await renderSvg(metricDistributionsSpec(one)));
    expect(ticks.length).toBeGreaterThan(1);
    for (const t of ticks) expect(t).toMatch(/^\d+$/);
  });
});
