/**
 * The calibration and maturity report: one self-contained HTML file (inline CSS and inline SVG,
 * no script, no external resource), written for someone deciding whether to deploy.
 */
import type { ResolvedConfig } from '../core/config.js';
import type { CalibrationResult } from './calibrate.js';
import type { CalibrationSet } from './labelled-input.js';
import { THRESHOLDS, type MaturityResult } from './maturity.js';
import {
  admissionSpec,
  cciHistogramSpec,
  liftSpec,
  m1Spec,
  metricDistributionsSpec,
  reliabilitySpec,
  renderSvg,
  riskCoverageSpec,
  screeSpec,
} from './charts.js';
import type { TopLevelSpec } from 'vega-lite';
import { weightedCci } from './labelled-input.js';
import { plural } from '../core/plural.js';

export interface ReportInput {
  title: string;
  set: CalibrationSet;
  /** The configuration the report's CCIs and selections use (the chosen one after calibration). */
  config: ResolvedConfig;
  calibration?: CalibrationResult;
  maturity: MaturityResult;
}

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
// NaN: a statistic undefined on the data (one label class), said rather than printed as "NaN".
const f = (x: number, d = 3) => (Number.isFinite(x) ? x.toFixed(d) : Number.isNaN(x) ? 'undefined' : String(x));
const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
const ci = (i: { low: number; high: number } | null, d = 3) => (i ? `[${f(i.low, d)}, ${f(i.high, d)}]` : 'interval undefined');

const CSS = `body{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f4f4f4}.PASS{color:#1b7a1b;font-weight:bold}.FAIL{color:#b42318;font-weight:bold}.NOT-APPLICABLE{color:#666;font-weight:bold}.INSUFFICIENT-DATA{color:#9a6700;font-weight:bold}
.note{color:#555;font-size:.92em}.warning{color:#b42318}.summary{background:#f7f9fc;border:1px solid #d7e0ee;padding:.6em 1em}
figure.chart{margin:1.2em 0}figure.chart figcaption{font-size:.9em;color:#555}code{background:#f4f4f4;padding:0 .2em}`;

async function figure(spec: TopLevelSpec, caption: string): Promise<string> {
  return `<figure class="chart">${await renderSvg(spec)}<figcaption>${esc(caption)}</figcaption></figure>`;
}

function configTable(cfg: ResolvedConfig, provenance: Record<string, unknown> | null): string {
  const w = cfg.weights;
  const rows: [string, string][] = [
    ['weights (alpha EVB, beta CR, gamma TS, delta ES, epsilon PD)', w.map((x) => f(x, 3)).join(', ')],
    ['tau', f(cfg.tau, 4)],
    ['lambda / shrink target / EVB mode', `${cfg.lambda} / ${cfg.shrinkTarget} / ${cfg.evbMode}`],
    ['confIndex, vmax, dmax', `${cfg.confIndex}, ${cfg.vmax}, ${cfg.dmax ?? 'spec default'}`],
    [
      'calibration map',
      cfg.calibration
        ? cfg.calibration.method === 'platt'
          ? `Platt: p = 1/(1+exp(-(${f(cfg.calibration.a, 4)} CCI + ${f(cfg.calibration.b, 4)})))`
          : `isotonic, ${plural(cfg.calibration.cci.length, 'knot')}`
        : 'none',
    ],
  ];
  if (provenance)
    rows.push([
      'calibrated on',
      `${esc(String(provenance.file))}, sha256 ${esc(String(provenance.sha256)).slice(0, 16)}..., ${plural(Number(provenance.records), 'record')}, ${plural(Number(provenance.groups), 'group')}, ${String(provenance.labelled)} labelled, ${esc(String(provenance.date))}`,
    ]);
  return `<table><tr><th>setting</th><th>value</th></tr>${rows.map(([k, v]) => `<tr><td>${esc(k)}</td><td>${k === 'calibrated on' ? v : esc(v)}</td></tr>`).join('')}</table>`;
}

function maturityTable(m: MaturityResult): string {
  const rows = m.checks.map(
    (c) =>
      `<tr><td>${esc(c.id)}</td><td class="${c.verdict}">${c.verdict}</td><td>${esc(c.title)}</td><td>${c.measurements.map((x) => `${esc(x.name)} = ${f(x.value, 4)} (must be ${x.comparison} ${x.threshold})`).join('<br>')}${c.note ? `<div class="note">${esc(c.note)}</div>` : ''}</td></tr>`,
  );
  return `<table><tr><th>check</th><th>verdict</th><th>what</th><th>measured</th></tr>${rows.join('')}</table>`;
}

export async function renderReport(input: ReportInput): Promise<string> {
  const { set, config, calibration: cal, maturity } = input;
  const parts: string[] = [];
  const cci = cal ? cal.cci : set.records.map((r) => weightedCci(r.metrics, config.weights));
  const applicable = maturity.checks.filter((c) => c.verdict !== 'NOT-APPLICABLE' && c.id !== 'M1-floor-free');
  const failing = applicable.filter((c) => c.verdict === 'FAIL').map((c) => c.id);
  const undecided = applicable.filter((c) => c.verdict === 'INSUFFICIENT-DATA').map((c) => c.id);
  const verdicts: string[] = [];
  if (failing.length) verdicts.push(`<span class="FAIL">${failing.join(', ')} fail${failing.length === 1 ? 's' : ''}</span>`);
  if (undecided.length)
    verdicts.push(`<span class="INSUFFICIENT-DATA">insufficient data for ${undecided.join(', ')}</span> (too few samples for a verdict; see the table)`);
  if (!verdicts.length) verdicts.push(`every applicable check passes (${applicable.map((c) => c.id).join(', ') || 'none applicable'})`);

  const summary: string[] = [
    `<li>${set.kind === 'trajectories' ? plural(set.records.length, 'trajectory', 'trajectories') : plural(set.records.length, 'scored record')} in ${plural(set.groupCount, 'group')} from <code>${esc(set.file)}</code> (sha256 <code>${set.sha256.slice(0, 16)}...</code>), ${set.labelled} labelled.</li>`,
    `<li>Maturity: ${verdicts.join('; ')}.</li>`,
  ];
  if (cal) {
    summary.push(
      `<li>tau ${f(cal.admission.tau, 4)} admits ${pct(cal.admission.achieved)} (target ${pct(cal.admission.target)}), 95% interval over groups ${cal.admission.interval ? ci(cal.admission.interval, 4) : esc(cal.admission.intervalReason ?? '')}.</li>`,
    );
    const L = cal.labelled;
    if (L) {
      const m = (name: string, x: { value: number | null; reason?: string }) => (x.value === null ? esc(x.reason!) : `${name} ${f(x.value)}`);
      summary.push(`<li>Discrimination on held-out groups: ${m('AUROC', L.heldOut.auroc)}, ${m('PRR', L.heldOut.prr)}.</li>`);
      if (L.lift)
        summary.push(
          `<li><b>Selection lift</b> (held out, ${plural(L.lift.groups, 'group')}): ECR's answer is correct in ${pct(L.lift.selected.value)} of groups, the first candidate in ${pct(L.lift.first.value)}, a random one in ${pct(L.lift.random.value)}: lift ${f(L.lift.liftOverRandom.value)} ${ci(L.lift.liftOverRandom.interval)} over random, ${f(L.lift.liftOverFirst.value)} ${ci(L.lift.liftOverFirst.interval)} over first.</li>`,
        );
      else summary.push(`<li>Selection lift: ${esc(L.liftReason ?? '')}.</li>`);
    } else summary.push(`<li>No labelled analysis: ${esc(cal.labelledReason ?? '')}.</li>`);
    summary.push(
      `<li>Chosen: tau ${f(cal.chosen.tau, 4)} (${cal.chosen.tauSource === 'objective' ? `maximizes ${esc(L?.search.objective ?? '')} on the fitting groups` : 'target admission'}): it admits ${pct(cal.chosen.admission)} of trajectories, and ${pct(cal.chosen.fallback)} of groups fall back to their highest-CCI candidate.</li>`,
    );
  }
  for (const w of cal?.warnings ?? []) summary.unshift(`<li class="warning"><b>Warning:</b> ${esc(w)}.</li>`);
  parts.push(`<h1>${esc(input.title)}</h1><div class="summary"><ul>${summary.join('')}</ul></div>`);

  if (cal) {
    parts.push('<h2>Choosing tau</h2>');
    parts.push(await figure(cciHistogramSpec(cci, cal.chosen.tau, cal.admission.tau), `CCI under the chosen weights, ${plural(cci.length, 'record')}.`));
    parts.push(
      await figure(admissionSpec(cal.admission.curve, cal.chosen.tau), "Fallback: the group's answer is its highest-CCI candidate although none reached tau."),
    );
    const L = cal.labelled;
    if (L) {
      parts.push('<h2>Does CCI track correctness?</h2>');
      parts.push(
        `<p>Fitted on ${plural(L.fitGroups, 'group')} (${plural(L.fitRecords, 'labelled record')}), evaluated on ${plural(L.heldOutGroups, 'held-out group')} (${plural(L.heldOutRecords, 'record')}); nothing reported as held out was used for fitting. Objective ${esc(L.search.objective)}: ${f(L.search.fitValue)} on the fitting groups, <b>${f(L.search.heldOutValue)} held out</b> (the input configuration held out: ${f(L.search.inputHeldOutValue)})${L.search.weightsSearched ? `; weights searched over ${plural(L.search.candidatesEvaluated, 'point')} of the simplex` : ''}.</p>`,
      );
      const base = L.heldOut.riskCoverage.length ? L.heldOut.riskCoverage[L.heldOut.riskCoverage.length - 1].risk : 0;
      parts.push(await figure(riskCoverageSpec(L.heldOut.riskCoverage, base), 'A curve below the dashed line means low-CCI answers are the wrong ones.'));
      if (L.probability) {
        parts.push(
          `<p>Calibration (${L.probability.method}, held out): ECE ${f(L.probability.ece.before)} before, ${f(L.probability.ece.after)} after; Brier ${f(L.probability.brier.before)} before, ${f(L.probability.brier.after)} after. The map is saved in the configuration, so <code>ecr score</code> prints <code>pCorrect</code>.</p>`,
        );
        parts.push(
          await figure(
            reliabilitySpec(L.probability.reliabilityBefore, L.probability.reliabilityAfter, L.probability.method),
            'Ten equal-width bins of predicted probability; bins without answers are omitted.',
          ),
        );
      } else
        parts.push(
          "<p>No calibration map: the fitting groups' labels are all of one class, so the probability of a correct answer cannot be estimated from them, and the configuration carries none (<code>ecr score</code> prints no <code>pCorrect</code>).</p>",
        );
      if (L.lift)
        parts.push(await figure(liftSpec(L.lift), "Random: the expected accuracy of a uniformly random candidate (the group's share of correct candidates)."));
    }
  }

  parts.push('<h2>Metrics</h2>');
  const metricValues: Record<string, number[]> = { EVB: [], CR: [], TS: [], ES: [], PD: [] };
  for (const r of set.records) ['EVB', 'CR', 'TS', 'ES', 'PD'].forEach((k, j) => metricValues[k].push(r.metrics[j]));
  parts.push(await figure(metricDistributionsSpec(metricValues), 'EVB, CR and PD: lower is more coherent; TS and ES: higher is.'));

  parts.push('<h2>Maturity checks (paper section 7.2)</h2>');
  parts.push(maturityTable(maturity));
  const m1 = maturity.checks.filter((c) => c.id === 'M1' || c.id === 'M1-floor-free').flatMap((c) => c.measurements.map((x) => ({ ...x, check: c.id })));
  const few = (id: string) =>
    maturity.checks.find((c) => c.id === id)?.verdict === 'INSUFFICIENT-DATA' ? ` Too few samples for a verdict: the chart compares values only.` : '';
  parts.push(
    await figure(
      m1Spec(m1),
      `${maturity.evbFloor > 0 ? `EVB has a floor of ${maturity.evbFloor} under identity shrinkage; the floor-free rows use tr(S)/m.` : 'No EVB floor under this configuration.'}${few('M1')}`,
    ),
  );
  if (maturity.explainedVariance.length)
    parts.push(await figure(screeSpec(maturity.explainedVariance, THRESHOLDS.m3FirstComponent), `PCA of every step's evaluative vector.${few('M3')}`));

  parts.push('<h2>Configuration</h2>');
  parts.push(configTable(config, (cal?.outputConfig.provenance as Record<string, unknown>) ?? null));
  parts.push(`<p class="note">Generated by ecr-engine. Charts are inline SVG (Vega-Lite); the file makes no network request.</p>`);
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width"><title>${esc(input.title)}</title><style>${CSS}</style></head><body>${parts.join('\n')}</body></html>\n`;
}
