#!/bin/bash
# Issue 12's GPU figure: Arrow IPC to Arrow IPC with --backend webgpu, end to end from the page
# cache (target: >= 30 M records/s on an H200). Writes a float32 Arrow file of N records
# (default 10M; T=5, m=8, `ecr bench`'s generator), reads it once to warm the page cache, then
# times `ecr score --backend webgpu` and, for scale, `--backend cpu` on the same file, and the
# in-memory `ecr bench --backend webgpu --dtype float32` rate. JSON lines in $OUT/columnar-gpu.jsonl.
# On the device (after npm run build and ../shared/gpu/prepare.sh here):
#   bash .gpu/on-device.sh bash bench/columnar-gpu-device.sh
# Here, on the software adapter, SMALL=1 checks the script itself with 200K records.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp}/columnar-gpu.jsonl
: > "$out"
n=${N:-10000000}; [ "${SMALL:-0}" = 1 ] && n=200000
dir=$(mktemp -d)
quiet() { grep -vE 'XDG_RUNTIME_DIR|shaderUniform|InitializeImpl|artificially reduced|While initializing|^[[:space:]]*$' >&2; }
node bench/gen-columnar-input.mjs "$n" "$dir/in.arrow" --data bench --dtype float32
cat "$dir/in.arrow" > /dev/null   # into the page cache
ls -l "$dir/in.arrow" >&2
timed() { # label, command...
  local label=$1; shift
  local t0 t1
  t0=$(date +%s.%N)
  /usr/bin/time -f '%M' -o "$dir/rss" "$@" > /dev/null 2> >(quiet)
  local rc=$?
  t1=$(date +%s.%N)
  node -e 'const [label,n,t0,t1,rss,rc]=process.argv.slice(1);const s=t1-t0;console.log(JSON.stringify({what:label,records:+n,seconds:+s.toFixed(3),recordsPerSec:Math.round(n/s),peakRssMB:Math.round(+rss/1024),rc:+rc}))' "$label" "$n" "$t0" "$t1" "$(tail -1 "$dir/rss")" "$rc" | tee -a "$out"
}
for rep in 1 2; do
  timed "score arrow -> arrow, webgpu (run $rep)" node dist/cli.js score "$dir/in.arrow" --backend webgpu --out "$dir/out.arrow"
done
timed "score arrow -> arrow, cpu" node dist/cli.js score "$dir/in.arrow" --backend cpu --out "$dir/out-cpu.arrow"
node dist/cli.js bench --backend webgpu --n "$n" --t 5 --m 8 --dtype float32 --reps 3 --json 2> >(quiet) \
  | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const o=JSON.parse(s);console.log(JSON.stringify({what:"ecr bench --backend webgpu --dtype float32 (in memory)",records:o.n,recordsPerSec:Math.round(o.trajPerSec),kernelTrajPerSec:o.kernelTrajPerSec}))})' | tee -a "$out"
# The GPU and CPU results must agree (1e-5) and select the same rows.
node -e '
const a=require("apache-arrow"),fs=require("fs");
const t1=a.tableFromIPC(fs.readFileSync(process.argv[1])),t2=a.tableFromIPC(fs.readFileSync(process.argv[2]));
let worst=0,selDiff=0;for(const k of ["EVB","CR","TS","ES","PD","CCI"]){const x=t1.getChild(k).toArray(),y=t2.getChild(k).toArray();for(let i=0;i<x.length;i++)worst=Math.max(worst,Math.abs(x[i]-y[i]))}
const s1=t1.getChild("selected"),s2=t2.getChild("selected");for(let i=0;i<t1.numRows;i++)if(s1.get(i)!==s2.get(i))selDiff++;
console.log(JSON.stringify({what:"webgpu vs cpu results",rows:t1.numRows,maxAbsDiff:worst,selectedDiffer:selDiff}))' "$dir/out.arrow" "$dir/out-cpu.arrow" | tee -a "$out"
rm -rf "$dir"
