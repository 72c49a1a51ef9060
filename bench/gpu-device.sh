#!/bin/bash
# Everything measured on the accelerator machine, in one go (trimmed to fit a few minutes of
# device time): the fixtures (shared and large-shape) scored on the GPU through every kernel
# (ECR_WEBGPU_KERNEL), the `ecr bench` lines (10M kernel, embeddings, the general kernel at
# T = 24, m = 40), then kernel variants of the 10M batch (internal tuning), and 4M end to end from
# float32, from unorm16 host codes and from mapped steps
# (allocateMappedSteps; caller's fill reported apart, untimed), all as JSON lines
# in $OUT/gpu-device.jsonl; a compact summary and the fixtures verdict are printed last. Also runs here on the software adapter with SMALL=1 (tiny
# sizes) to check the script itself.
# On the device (after npm run build and ../shared/gpu/prepare.sh test/fixtures):
#   bash .gpu/on-device.sh bash bench/gpu-device.sh
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp}/gpu-device.jsonl
: > "$out"
fx=fixtures; [ -d "$fx" ] || fx=test/fixtures
small=${SMALL:-0}
n10m=10000000; n4m=4000000; nemb=100000; nemb2=400000; ncpu=1000000
ngen=250000
# The subgroup kernels; on the software adapter (SMALL=1, no subgroups) their emulated builds.
rows=rows; comps=components
if [ "$small" = 1 ]; then n10m=20000; n4m=20000; nemb=2000; nemb2=4000; ncpu=20000; ngen=2000; rows=rows-emulated; comps=components-emulated; fi
quiet() { grep -vE 'XDG_RUNTIME_DIR|shaderUniform|InitializeImpl|artificially reduced|While initializing|^[[:space:]]*$' >&2; }

# GPU clocks while the script runs (read only), to tell clock ramps from kernel costs.
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=timestamp,clocks.sm,clocks.mem,power.draw,utilization.gpu --format=csv,noheader -lms 250 > "${OUT:-/tmp}/clocks.csv" 2>/dev/null &
  sampler=$!
fi
echo "== adapter"
node -e "import('./dist/backends/webgpu/index.js').then(async ({WebGpuBackend}) => { const b = new WebGpuBackend(); console.log(JSON.stringify(await b.describe())); await b.dispose(); })" 2> >(quiet)

fail=0
echo "== fixtures on webgpu (tolerance 1e-5): default options, then the other kernels (env overrides)"
fxsum=""
# label, env assignments; the rows layout runs only where m is a multiple of 4 (others: components).
fixture_pass() {
  local label=$1; shift
  for inp in "$fx"/*.input.jsonl "$fx"/large-shapes/*.input.jsonl; do
    name=$(basename "$inp" .input.jsonl); dir=$(dirname "$inp"); cfg="$dir/$name.config.json"
    tau=$(node -e "console.log(JSON.parse(require('fs').readFileSync(process.argv[1],'utf8')).tau ?? 0.65)" "$cfg")
    m=$(head -1 "$inp" | node -e "let s='';process.stdin.on('data',d=>s+=d).on('end',()=>console.log(JSON.parse(s).steps[0].length))")
    local kenv=()
    for a in "$@"; do
      # The fast paths take T <= 16, m <= 32 (rows: m a multiple of 4); larger shapes only run general.
      t=$(head -1 "$inp" | node -e "let s='';process.stdin.on('data',d=>s+=d).on('end',()=>console.log(JSON.parse(s).steps.length))")
      if [[ "$a" == ECR_WEBGPU_KERNEL=* && "$a" != *general && ( $t -gt 16 || $m -gt 32 ) ]]; then continue 2; fi
      if [[ "$a" == ECR_WEBGPU_KERNEL=rows* && $((m % 4)) != 0 ]]; then continue 2; fi
      kenv+=("$a")
    done
    if env "${kenv[@]}" node dist/cli.js score "$inp" --config "$cfg" --backend webgpu > /tmp/fx-out.jsonl 2> >(quiet); then
      printf '[%s %s] %s: ' "$label" "${kenv[*]}" "$name"; node bench/compare-fixture.mjs "$dir/$name.expected.jsonl" /tmp/fx-out.jsonl 1e-5 "$tau" || { fail=1; fxsum="$fxsum $label/$name"; }
    else
      echo "[$label] $name: ecr score failed"; fail=1; fxsum="$fxsum $label/$name"
    fi
  done
}
fixture_pass default
fixture_pass components ECR_WEBGPU_KERNEL=$comps
fixture_pass rows ECR_WEBGPU_KERNEL=$rows
fixture_pass staged ECR_WEBGPU_KERNEL=staged
fixture_pass general ECR_WEBGPU_KERNEL=general
fixtures_line="fixtures: $([ $fail = 0 ] && echo all ok || echo "FAILURES:$fxsum")"
echo "$fixtures_line"

bench() { # label, then ecr bench arguments
  local label=$1; shift
  echo "== $label: ecr bench $*"
  local line
  line=$(timeout 60 node dist/cli.js bench "$@" --json 2> >(quiet)) || { echo "{\"label\":\"$label\",\"error\":\"exit $?\"}" | tee -a "$out"; return; }
  echo "{\"label\":\"$label\",\"result\":$line}" >> "$out"
}
bench kernel-10M-cli --backend webgpu --n $n10m --t 5 --m 8 --dtype float32 --reps 3
bench emb-d384 --backend webgpu --n $nemb --t 5 --m 8 --d 384 --dtype float32 --reps 3
bench general-t24m40 --backend webgpu --n $ngen --t 24 --m 40 --dtype float32 --reps 3

echo "== kernel variants and e2e (one process, one synthetic batch)"
N10M=$n10m N4M=$n4m ROWS=$rows COMPS=$comps OUTFILE="$out" timeout 360 node --input-type=module - <<'JS' 2> >(quiet)
import { appendFileSync } from 'node:fs';
import { syntheticBatch } from './dist/testing/synthetic-batch.js';
import { resolveConfig } from './dist/core/config.js';
import { WebGpuBackend, encodeUnorm16 } from './dist/backends/webgpu/index.js';
const cfg = resolveConfig({});
const n10 = Number(process.env.N10M), n4 = Number(process.env.N4M);
const ROWS = process.env.ROWS;
const big = syntheticBatch({ n: n10, t: 5, m: 8, dtype: 'float32' });
const sub = (n) => ({ ...big, n, steps: big.steps.subarray(0, n * 40), groups: big.groups.subarray(0, n) });
const emit = (o) => { const l = JSON.stringify(o); appendFileSync(process.env.OUTFILE, l + '\n'); };
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const METRICS = ['evb', 'cr', 'ts', 'es', 'pd', 'cci'];
// Reference outputs of the default kernel, to check other kernels' outputs on the device (bitwise).
let reference = null;
async function kernel(label, tuning, batch, { check = false, config = cfg } = {}) {
  const b = new WebGpuBackend({}, { replays: 9, ...tuning });
  try {
    let mismatches;
    const out = await b.computeMetrics(batch, config);
    if (label === 'kernel-10M') reference = out;
    if (check && reference) {
      mismatches = 0;
      for (const k of METRICS) for (let i = 0; i < batch.n; i++) if (out[k][i] !== reference[k][i]) mismatches++;
    }
    const p = await b.profile(batch, config);
    emit({ label, variant: tuning, config: config === cfg ? undefined : 'weighted-cr', n: batch.n, metricsKernel: p.metricsKernel, kernelMs: p.kernelMs, kernelMinMs: p.stages.kernelMinMs, kernelTrajPerSec: p.kernelMs ? batch.n / p.kernelMs * 1e3 : null, mismatchesVsDefault: mismatches, stages: p.stages });
  } catch (e) { emit({ label, variant: tuning, error: String(e) }); } finally { await b.dispose(); }
}
// Wall clock of computeMetricsF32, outputs reused. codes: E pre-encoded as unorm16 (the caller's storage format; encoding not timed).
async function e2e(label, batch, { reps = 5, tuning = {}, codes } = {}) {
  const b = new WebGpuBackend({}, tuning);
  const out = Object.fromEntries(METRICS.map((k) => [k, new Float32Array(batch.n)]));
  const call = () => b.computeMetricsF32(batch, cfg, out, { stepsUnorm16: codes });
  try {
    await call();
    const ms = [];
    for (let r = 0; r < reps; r++) { const t0 = performance.now(); await call(); ms.push(performance.now() - t0); }
    emit({ label, variant: tuning, n: batch.n, input: codes ? 'unorm16-host' : batch.steps.constructor.name, outputs: 'float32', fresh: false, msMedian: median(ms), trajPerSec: batch.n / median(ms) * 1e3, samplesMs: ms });
  } catch (e) { emit({ label, error: String(e) }); } finally { await b.dispose(); }
}
const probe = new WebGpuBackend();
emit({ label: 'adapter', ...(await probe.describe()) });
await probe.dispose();
// Metrics kernels (rows of 4 components = the default for m = 8, component lanes, staged, general;
// selection is the host's), 10M trajectories.
const COMPS = process.env.COMPS;
await kernel('kernel-10M', {}, big);
await kernel('kernel-10M-wg128', { laneWorkgroupSize: 128 }, big, { check: true });
await kernel('kernel-10M-weighted-cr', {}, big, { config: resolveConfig({ crWeights: [1, 0.5, 0.2, 1, 0.3, 0.9, 0.1, 0.7] }) });
await kernel('kernel-10M-components', { kernel: COMPS }, big);
await kernel('kernel-10M-staged', { kernel: 'staged' }, big);
await kernel('kernel-10M-general', { kernel: 'general' }, big);
const b4 = sub(n4);
await e2e('e2e-4M-f32-reused', b4);
{
  const codes = new Uint16Array(b4.steps.length);
  encodeUnorm16(b4.steps, codes);
  await e2e('e2e-4M-unorm16-host', b4, { codes });
}
// E in mapped MAP_WRITE buffers filled by the caller (as with pinned memory in PyTorch: the fill is
// not in msMedian, reported apart as fillMs); contentsKept checks the fill survived unmap/re-map.
async function e2eMapped(label, tuning) {
  const b = new WebGpuBackend({}, tuning);
  const out = Object.fromEntries(METRICS.map((k) => [k, new Float32Array(b4.n)]));
  try {
    const mapped = await b.allocateMappedSteps(b4.n, b4.t, b4.m);
    const fillMs = [];
    const fillAll = () => { const t0 = performance.now(); for (const p of mapped.parts) p.steps.set(b4.steps.subarray(p.start * 40, (p.start + p.count) * 40)); fillMs.push(performance.now() - t0); };
    const call = () => b.computeMetricsF32({ ...b4, steps: new Float32Array(0) }, cfg, out, { mappedSteps: mapped });
    fillAll(); await call();
    const ms = [];
    for (let r = 0; r < 5; r++) { fillAll(); const t0 = performance.now(); await call(); ms.push(performance.now() - t0); }
    const last = mapped.parts.at(-1);
    const contentsKept = last.steps[last.count * 40 - 1] === b4.steps[(last.start + last.count) * 40 - 1] && mapped.parts[0].steps[0] === b4.steps[0];
    emit({ label, variant: tuning, n: b4.n, input: 'mapped-steps', buffers: mapped.parts.length, outputs: 'float32', msMedian: median(ms), trajPerSec: b4.n / median(ms) * 1e3, samplesMs: ms, fillMsMedian: median(fillMs), fillSamplesMs: fillMs, contentsKept });
    mapped.dispose();
  } catch (e) { emit({ label, error: String(e) }); } finally { await b.dispose(); }
}
await e2eMapped('e2e-4M-mapped', {});
JS

echo "== summary (traj/s; kernel = timestamp span of all of a batch's kernels back to back; pass.* = per-pass timestamps, summed)"
node -e "
const r2 = (x) => typeof x === 'number' ? +x.toFixed(3) : x;
for (const l of require('fs').readFileSync(process.argv[1],'utf8').split('\n').filter(Boolean)) {
  const o = JSON.parse(l); const { label, result: r, error } = o;
  if (error) { console.log(label.padEnd(20), 'ERROR', error); continue; }
  if (label === 'adapter') { console.log('adapter', o.adapter ?? o.name ?? JSON.stringify(o).slice(0, 160)); continue; }
  if (r) { console.log(label.padEnd(20), 'e2e', (r.trajPerSec/1e6).toFixed(2), 'M/s', r.kernelMs ? 'kernel ' + r2(r.kernelMs) + ' ms ' + (r.kernelTrajPerSec/1e6).toFixed(0) + ' M/s' : ''); continue; }
  if (o.kernelMs !== undefined || o.stages) {
    const passes = Object.fromEntries(Object.entries(o.stages ?? {}).filter(([k]) => k.startsWith('pass.') || k === 'kernelPassSum').map(([k, v]) => [k, r2(v)]));
    console.log(label.padEnd(34), o.metricsKernel, 'kernel', r2(o.kernelMs), 'ms (min', r2(o.kernelMinMs) + ')', o.kernelTrajPerSec ? (o.kernelTrajPerSec/1e9).toFixed(2) + ' G/s' : '', o.mismatchesVsDefault !== undefined ? 'mismatches ' + o.mismatchesVsDefault : '', JSON.stringify(passes));
    continue;
  }
  console.log(label.padEnd(20), 'e2e', r2(o.msMedian), 'ms', (o.trajPerSec/1e6).toFixed(2), 'M/s', o.input, o.fillMsMedian !== undefined ? 'fill ' + r2(o.fillMsMedian) + ' ms (untimed), contentsKept ' + o.contentsKept : '');
}" "$out"
[ -n "${sampler:-}" ] && kill "$sampler" 2>/dev/null && echo "clocks: $(wc -l < "${OUT:-/tmp}/clocks.csv") samples in clocks.csv; during the kernels: $(tail -40 "${OUT:-/tmp}/clocks.csv" | awk -F', ' '{print $2}' | sort | uniq -c | sort -rn | head -3 | tr '\n' ' ')"
echo "$fixtures_line"
echo "elapsed ${SECONDS}s"
exit $fail
