// Compares `ecr score` output with a fixture's expected JSONL: every metric within TOL, flags equal
// except where a CCI is within 2*TOL of tau or of another CCI in its group.
// Usage: node bench/compare-fixture.mjs EXPECTED ACTUAL TOL TAU
import { readFileSync } from 'node:fs';
const [expectedPath, actualPath, tolArg, tauArg] = process.argv.slice(2);
const tol = Number(tolArg),
  tau = Number(tauArg);
const rows = (p) =>
  readFileSync(p, 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l));
const exp = rows(expectedPath),
  act = rows(actualPath);
let worst = 0,
  bad = 0;
if (exp.length !== act.length) {
  console.log(`FAIL: ${act.length} rows, expected ${exp.length}`);
  process.exit(1);
}
exp.forEach((e, i) => {
  const a = act[i];
  for (const k of ['EVB', 'CR', 'TS', 'ES', 'PD', 'CCI']) {
    const d = Math.abs(a[k] - e[k]);
    if (!(d <= tol)) bad++;
    if (d > worst) worst = d;
  }
  const ambiguous = Math.abs(e.CCI - tau) <= 2 * tol || exp.filter((o) => o.group === e.group && Math.abs(o.CCI - e.CCI) <= 2 * tol).length > 1;
  if (!ambiguous && (a.admissible !== e.admissible || a.selected !== e.selected)) bad++;
});
console.log(`${bad ? 'FAIL' : 'ok'}: ${exp.length} rows, max |diff| ${worst.toExponential(2)}, ${bad} mismatches`);
process.exit(bad ? 1 : 0);
