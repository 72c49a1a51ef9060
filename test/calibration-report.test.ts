/**
 * The calibration report in a real browser: Debian's chromium, headless, driven by
 * playwright-core. Every chart's SVG must have rendered marks, the console must stay free of
 * errors, and no request may leave the page (the report must open offline). A screenshot is
 * saved to test-artifacts/calibration-report.png (and maturity-report.png). Without /usr/bin/chromium the browser part
 * is skipped with a visible reason, unless ECR_REQUIRE_BROWSER=1 (.ci/run sets it).
 */
import { describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { ROOT, runCli } from './helpers/cli.js';

const CHROMIUM = process.env.ECR_CHROMIUM ?? '/usr/bin/chromium';
const haveBrowser = existsSync(CHROMIUM);
const required = process.env.ECR_REQUIRE_BROWSER === '1';
const ARTIFACTS = path.join(ROOT, 'test-artifacts');
mkdirSync(ARTIFACTS, { recursive: true });
const REPORT = path.join(ARTIFACTS, 'calibration-report.html');
const DATA = path.join(ROOT, 'data', 'calibration-synthetic.jsonl');

const MATURITY_REPORT = path.join(ARTIFACTS, 'maturity-report.html');

const made = runCli(['calibrate', DATA, '--report', REPORT, '--backend', 'cpu', '--bootstrap', '200']);
const madeMaturity = runCli(['maturity', DATA, '--report', MATURITY_REPORT, '--backend', 'cpu']);

function selfContained(html: string): void {
  expect(html).not.toMatch(/<script|<link|<img|<iframe|\ssrc=|url\(|@import/i);
  // The only URLs are XML namespace names inside the inline SVG, which are never fetched.
  const urls = html.match(/https?:\/\/[^\s"'<>]+/g) ?? [];
  for (const u of urls) expect(u).toMatch(/^http:\/\/www\.w3\.org\/(2000\/svg|1999\/xlink)$/);
}

describe('the report files', () => {
  it('maturity: written (exit 3: M1 fails under identity shrinkage), self-contained, three charts', () => {
    expect(madeMaturity.code).toBe(3);
    const html = readFileSync(MATURITY_REPORT, 'utf8');
    selfContained(html);
    expect((html.match(/<svg/g) ?? []).length).toBe(3);
    expect(html).toContain('EVB has a floor of lambda = 0.4');
  });

  it('calibration: written, self-contained: no script, no external resource', () => {
    expect(made.code).toBe(0);
    const html = readFileSync(REPORT, 'utf8');
    selfContained(html);
    expect((html.match(/<svg/g) ?? []).length).toBe(8);
    for (const title of [
      'CCI distribution with tau',
      'Admission and fallback rate against tau',
      'The five metrics',
      'Reliability on held-out groups',
      'Risk-coverage on held-out groups',
      'Selection accuracy per group',
      'M3: explained variance',
      'M1: medians and 95th percentile',
    ]) {
      expect(html).toContain(title);
    }
  });
});

describe.skipIf(!haveBrowser && !required)(
  `the report in headless chromium${haveBrowser ? '' : ` (skipped: no browser at ${CHROMIUM}; apt-get install chromium, as .ci/run does)`}`,
  () => {
    it.each([
      ['calibration', REPORT, 8, 'calibration-report.png'],
      ['maturity', MATURITY_REPORT, 3, 'maturity-report.png'],
    ] as const)('%s report: every chart has marks, no console errors, no network requests; screenshot saved', async (_name, file, chartCount, shot) => {
      expect(haveBrowser, `ECR_REQUIRE_BROWSER=1 but ${CHROMIUM} does not exist`).toBe(true);
      const { chromium } = await import('playwright-core');
      const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
      try {
        const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
        const url = pathToFileURL(file).href;
        const consoleErrors: string[] = [];
        const requests: string[] = [];
        page.on('console', (m) => {
          if (m.type() === 'error') consoleErrors.push(m.text());
        });
        page.on('pageerror', (e) => consoleErrors.push(String(e)));
        await page.route('**/*', (route) => {
          const u = route.request().url();
          if (u === url) return route.continue();
          requests.push(u);
          return route.abort();
        });
        await page.goto(url, { waitUntil: 'load' });
        const charts = await page.$$eval('figure.chart svg', (svgs) =>
          svgs.map((svg) => {
            const box = svg.getBoundingClientRect();
            const marks = [...svg.querySelectorAll('g.role-mark')];
            return {
              width: box.width,
              height: box.height,
              marks: marks.length,
              drawn: marks.reduce((s, g) => s + g.querySelectorAll('path, rect, line, circle, symbol').length, 0),
              title: svg.querySelector('.role-title-text')?.textContent ?? '',
            };
          }),
        );
        await page.screenshot({ path: path.join(ARTIFACTS, shot), fullPage: true });
        expect(charts).toHaveLength(chartCount);
        for (const c of charts) {
          expect(c.width, c.title).toBeGreaterThan(100);
          expect(c.height, c.title).toBeGreaterThan(100);
          expect(c.marks, c.title).toBeGreaterThan(0);
          expect(c.drawn, c.title).toBeGreaterThan(0);
          expect(c.title.length).toBeGreaterThan(0);
        }
        expect(consoleErrors).toEqual([]);
        expect(requests).toEqual([]);
      } finally {
        await browser.close();
      }
    });
  },
);
