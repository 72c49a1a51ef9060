#!/bin/bash
# Everything measured on the accelerator machine, in one go: the fixtures scored on the GPU
# (correctness, default kernel), the standard `ecr bench` lines (comparable with earlier runs),
# then the staged and lane kernels and float32/float64, fresh/reused outputs in one process, all as JSON
# lines in $OUT/gpu-device.jsonl. Also runs here on the software adapter with SMALL=1 (tiny
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
if [ "$small" = 1 ]; then n10m=20000; n4m=20000; nemb=2000; nemb2=4000; ncpu=20000; fi
quiet() { grep -vE 'XDG_RUNTIME_DIR|shaderUniform|InitializeImpl|artificially reduced|While initializing' >&2; }

echo "== adapter"
node -e "import('./dist/backends/webgpu/index.js').then(async ({WebGpuBackend}) => { const b = new WebGpuBackend(); console.log(JSON.stringify(await b.describe())); await b.dispose(); })" 2> >(quiet)

fail=0
for unsafe in 0 1; do
echo "== fixtures on webgpu (tolerance 1e-5), ECR_WEBGPU_UNSAFE_FAST=$unsafe (1: no robustness clamps, the native default since run 6)"
for inp in "$fx"/*.input.jsonl; do
  name=$(basename "$inp" .input.jsonl); cfg="$fx/$name.config.json"
  tau=$(node -e "console.log(JSON.parse(require('fs').readFileSync(process.argv[1],'utf8')).tau ?? 0.65)" "$cfg")
  if ECR_WEBGPU_UNSAFE_FAST=$unsafe node dist/cli.js score "$inp" --config "$cfg" --backend webgpu > /tmp/fx-out.jsonl 2> >(quiet); then
    printf '%s: ' "$name"; node bench/compare-fixture.mjs "$fx/$name.expected.jsonl" /tmp/fx-out.jsonl 1e-5 "$tau" || fail=1
  else
    echo "$name: ecr score failed"; fail=1
  fi
done
done
echo "fixtures: $([ $fail = 0 ] && echo all ok || echo FAILURES)"

bench() { # label, then ecr bench arguments
  local label=$1; shift
  echo "== $label: ecr bench $*"
  local line
  line=$(timeout 100 node dist/cli.js bench "$@" --json 2> >(quiet)) || { echo "{\"label\":\"$label\",\"error\":\"exit $?\"}" | tee -a "$out"; return; }
  echo "{\"label\":\"$label\",\"result\":$line}" | tee -a "$out"
}
bench kernel-10M --backend webgpu --n $n10m --t 5 --m 8 --dtype float32 --reps 3
bench emb-d384 --backend webgpu --n $nemb --t 5 --m 8 --d 384 --dtype float32 --reps 3
bench auto-4M --backend auto --n $n4m --t 5 --m 8 --dtype float32 --reps 2

echo "== kernel variants and float32 outputs (one process, one synthetic batch)"
N10M=$n10m N4M=$n4m OUTFILE="$out" timeout 150 node --input-type=module - <<'JS' 2> >(quiet)
import { appendFileSync } from 'node:fs';
import { syntheticBatch } from './dist/bench/synthetic.js';
import { resolveConfig } from './dist/config.js';
import { WebGpuBackend, encodeUnorm16 } from './dist/backends/webgpu/index.js';
const cfg = resolveConfig({});
const n10 = Number(process.env.N10M), n4 = Number(process.env.N4M);
const big = syntheticBatch({ n: n10, t: 5, m: 8, dtype: 'float32' });
const sub = (n) => ({ ...big, n, steps: big.steps.subarray(0, n * 40), groups: big.groups.subarray(0, n) });
const emit = (o) => { const l = JSON.stringify(o); console.log(l); appendFileSync(process.env.OUTFILE, l + '\n'); };
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const METRICS = ['evb', 'cr', 'ts', 'es', 'pd', 'cci'];
async function kernel(label, tuning, batch) {
  const b = new WebGpuBackend(tuning);
  try {
    await b.computeMetrics(batch, cfg);
    const p = await b.profile(batch, cfg);
    emit({ label, variant: tuning, n: batch.n, metricsKernel: p.metricsKernel, kernelMs: p.kernelMs, kernelTrajPerSec: p.kernelMs ? batch.n / p.kernelMs * 1e3 : null, stages: p.stages });
  } catch (e) { emit({ label, variant: tuning, error: String(e) }); } finally { await b.dispose(); }
}
// Wall clock of computeMetrics (float64 outputs) or computeMetricsF32, outputs reused or fresh per call.
// codes: E pre-encoded as unorm16 (the caller's storage format; encoding not timed).
async function e2e(label, batch, { f32 = false, fresh = false, reps = 5, tuning = {}, codes } = {}) {
  const b = new WebGpuBackend(tuning);
  const alloc = () => Object.fromEntries(METRICS.map((k) => [k, f32 ? new Float32Array(batch.n) : new Float64Array(batch.n)]));
  const call = (out) => (f32 ? b.computeMetricsF32(batch, cfg, out, { stepsUnorm16: codes }) : b.computeMetrics(batch, cfg, { out, stepsUnorm16: codes }));
  try {
    let out = alloc();
    await call(out);
    const ms = [];
    for (let r = 0; r < reps; r++) { if (fresh) out = null; const t0 = performance.now(); if (fresh) out = alloc(); await call(out); ms.push(performance.now() - t0); }
    emit({ label, variant: tuning, n: batch.n, input: codes ? 'unorm16-host' : batch.steps.constructor.name, outputs: f32 ? 'float32' : 'float64', fresh, msMedian: median(ms), trajPerSec: batch.n / median(ms) * 1e3, samplesMs: ms });
  } catch (e) { emit({ label, error: String(e) }); } finally { await b.dispose(); }
}
const probe = new WebGpuBackend();
emit({ label: 'adapter', ...(await probe.describe()) });
await probe.dispose();
// Since run 6 the default drops Dawn's robustness clamps on native adapters; ROB keeps them.
const ROB = { disableRobustness: false };
const GiB = { targetChunkBytes: 1 << 30 };
await kernel('kernel-10M-lanes', {}, big);
await kernel('kernel-10M-lanes-robust', ROB, big);
await kernel('kernel-10M-lanes-1GiB', GiB, big);
await kernel('kernel-10M-lanes-1chunk', { targetChunkBytes: 3 * 2 ** 30 }, big);
await kernel('kernel-10M-lanes-noselect', { gpuSelection: false }, big);
await kernel('kernel-10M-staged', { metricsKernel: 'staged' }, big);
await kernel('kernel-4M-lanes', {}, sub(n4));
const b4 = sub(n4);
await e2e('e2e-4M-f32-reused', b4, { f32: true });
await e2e('e2e-4M-f32-reused-robust', b4, { f32: true, tuning: ROB });
await e2e('e2e-4M-f64-reused', b4);
{
  // The encoder's own speed (float32 source, destination reused), then the compact-host e2e.
  const src = b4.steps; const codes = new Uint16Array(src.length);
  const ms = [];
  for (let r = 0; r < 4; r++) { const t0 = performance.now(); encodeUnorm16(src, codes); ms.push(performance.now() - t0); }
  emit({ label: 'encodeUnorm16-f32', values: src.length, msBest: Math.min(...ms), gValuesPerSec: src.length / Math.min(...ms) / 1e6, samplesMs: ms });
  await e2e('e2e-4M-unorm16-host', b4, { f32: true, codes });
}
{
  const src = big.steps.subarray(0, n4 * 40), dst = new Float32Array(src.length);
  dst.set(src); const t0 = performance.now(); dst.set(src); const ms = performance.now() - t0;
  const f64 = new Float64Array(n4); const f32 = new Float32Array(n4); f64.set(f32); const t1 = performance.now(); f64.set(f32); const cv = performance.now() - t1;
  emit({ label: 'host-copy', f32CopyGBs: src.byteLength / ms / 1e6, f32ToF64MValuesPerSec: n4 / cv / 1e3 });
}
JS

echo "== summary (traj/s; kernel = timestamp queries, all of a batch's kernels back to back)"
node -e "
for (const l of require('fs').readFileSync(process.argv[1],'utf8').split('\n').filter(Boolean)) {
  const o = JSON.parse(l); const {label, result: r, error} = o;
  if (error) { console.log(label.padEnd(18), 'ERROR', error); continue; }
  const f = (v) => JSON.stringify(v ?? {}, (k, x) => typeof x === 'number' ? +x.toFixed(2) : x);
  if (!r) { console.log(label.padEnd(18), f(o.variant), o.metricsKernel ?? o.outputs ?? '', o.kernelTrajPerSec ? 'kernel ' + (o.kernelTrajPerSec/1e6).toFixed(1) + ' M/s' : '', o.trajPerSec ? 'e2e ' + (o.trajPerSec/1e6).toFixed(2) + ' M/s' : '', o.stages ? f(o.stages) : f(o)); continue; }
  console.log(label.padEnd(18), r.backend.padEnd(7), 'n', String(r.n).padStart(9), 'e2e', (r.trajPerSec/1e6).toFixed(2).padStart(8), 'M/s', r.kernelTrajPerSec ? 'kernel ' + (r.kernelTrajPerSec/1e6).toFixed(1) + ' M/s' : '', f(r.stages));
}" "$out"
exit $fail
