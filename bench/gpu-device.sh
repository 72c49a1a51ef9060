#!/bin/bash
# Everything measured on the accelerator machine, in one go: the fixtures scored on the GPU
# (correctness), then the WebGPU benchmarks as JSON lines. Also runs here on the software adapter
# with SMALL=1 (tiny sizes) to check the script itself.
# On the device (after npm run build and ../shared/gpu/prepare.sh test/fixtures):
#   bash .gpu/on-device.sh bash bench/gpu-device.sh
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp}/gpu-device.jsonl
: > "$out"
fx=fixtures; [ -d "$fx" ] || fx=test/fixtures
small=${SMALL:-0}
n10m=10000000; n4m=4000000; nemb=100000; ncpu=1000000
if [ "$small" = 1 ]; then n10m=20000; n4m=20000; nemb=2000; ncpu=20000; fi
quiet() { grep -vE 'XDG_RUNTIME_DIR|shaderUniform|InitializeImpl|artificially reduced|While initializing' >&2; }

echo "== adapter"
node -e "import('./dist/backends/webgpu/index.js').then(async ({WebGpuBackend}) => { const b = new WebGpuBackend(); console.log(JSON.stringify(await b.describe())); await b.dispose(); })" 2> >(quiet)

echo "== fixtures on webgpu (tolerance 1e-5)"
fail=0
for inp in "$fx"/*.input.jsonl; do
  name=$(basename "$inp" .input.jsonl); cfg="$fx/$name.config.json"
  tau=$(node -e "console.log(JSON.parse(require('fs').readFileSync(process.argv[1],'utf8')).tau ?? 0.65)" "$cfg")
  if node dist/cli.js score "$inp" --config "$cfg" --backend webgpu > /tmp/fx-out.jsonl 2> >(quiet); then
    printf '%s: ' "$name"; node bench/compare-fixture.mjs "$fx/$name.expected.jsonl" /tmp/fx-out.jsonl 1e-5 "$tau" || fail=1
  else
    echo "$name: ecr score failed"; fail=1
  fi
done
echo "fixtures: $([ $fail = 0 ] && echo all ok || echo FAILURES)"

bench() { # label, then ecr bench arguments
  local label=$1; shift
  echo "== $label: ecr bench $*"
  local line
  line=$(timeout 150 node dist/cli.js bench "$@" --json 2> >(quiet)) || { echo "{\"label\":\"$label\",\"error\":\"exit $?\"}" | tee -a "$out"; return; }
  echo "{\"label\":\"$label\",\"result\":$line}" | tee -a "$out"
}
bench kernel-10M --backend webgpu --n $n10m --t 5 --m 8 --dtype float32 --reps 3
bench e2e-4M-f32 --backend webgpu --n $n4m --t 5 --m 8 --dtype float32 --reps 5
ECR_WEBGPU_COMPACT=unorm16 bench e2e-4M-unorm16 --backend webgpu --n $n4m --t 5 --m 8 --dtype float32 --reps 5
bench emb-d384 --backend webgpu --n $nemb --t 5 --m 8 --d 384 --dtype float32 --reps 3
bench small-100K --backend webgpu --n 100000 --t 5 --m 8 --dtype float32 --reps 5
bench small-10K --backend webgpu --n 10000 --t 5 --m 8 --dtype float32 --reps 5
bench cpu-1M --backend cpu --n $ncpu --t 5 --m 8 --dtype float32 --reps 3
bench auto-4M --backend auto --n $n4m --t 5 --m 8 --dtype float32 --reps 2
echo "== summary (traj/s; kernel = timestamp queries)"
node -e "
for (const l of require('fs').readFileSync(process.argv[1],'utf8').split('\n').filter(Boolean)) {
  const {label, result: r, error} = JSON.parse(l);
  if (error) { console.log(label.padEnd(16), 'ERROR', error); continue; }
  console.log(label.padEnd(16), r.backend.padEnd(7), 'n', String(r.n).padStart(9), 'e2e', (r.trajPerSec/1e6).toFixed(2).padStart(8), 'M/s', r.kernelTrajPerSec ? 'kernel ' + (r.kernelTrajPerSec/1e6).toFixed(1) + ' M/s' : '', JSON.stringify(r.stages ?? {}, (k, v) => typeof v === 'number' ? +v.toFixed(2) : v));
}" "$out"
exit $fail
