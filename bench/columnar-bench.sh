#!/usr/bin/env bash
# File-to-file rates of `ecr score` (issues 12 and 20), measured in one run on one machine: the
# in-memory `ecr bench` rate, then `ecr score` from each format to the same format (and JSONL to
# JSONL), and the same Parquet and Arrow files scored by a pyarrow + numpy script
# (bench/pyarrow_numpy_score.py; pyarrow and numpy are installed with pip when missing, never a
# project dependency), with the ratio. Each time is the best of ROUNDS runs (default 2), wall clock
# from process start to exit, with that run's peak RSS. Inputs from bench/gen-formats.sh in DIR.
# Prints one JSON line per measurement.
# usage: npm run build && bash bench/gen-formats.sh 400000 DIR && bash bench/columnar-bench.sh DIR [BACKEND...]
#        (ROUNDS=3 bash bench/columnar-bench.sh DIR for more runs)
set -euo pipefail
DIR=${1:?usage: columnar-bench.sh DIR [BACKEND...]}
shift
BACKENDS=${*:-cpu}
ROUNDS=${ROUNDS:-2}
cd "$(dirname "$0")/.."
N=$(node -e 'const a=require("apache-arrow");const fs=require("fs");(async()=>{const r=await a.RecordBatchReader.from(await fs.promises.open(process.argv[1]));await r.open();let n=0;for await(const b of r)n+=b.numRows;console.log(n)})()' "$DIR/big.arrow")
# best NAME CMD...: the fastest of ROUNDS runs; sets BEST_S and prints the JSON line.
best() {
  local name=$1; shift
  local bs= brss=
  for _ in $(seq "$ROUNDS"); do
    local t0=$(date +%s.%N)
    /usr/bin/time -f '%M' -o "$DIR/.rss" "$@" > /dev/null 2> "$DIR/.err" || { cat "$DIR/.err" >&2; exit 1; }
    local t1=$(date +%s.%N)
    local s=$(echo "$t1 - $t0" | bc)
    if [ -z "$bs" ] || [ "$(echo "$s < $bs" | bc)" = 1 ]; then bs=$s; brss=$(tail -1 "$DIR/.rss"); fi
  done
  BEST_S=$bs
  node -e 'const [n,name,s,rss,r]=process.argv.slice(1);console.log(JSON.stringify({what:name,records:+n,seconds:+(+s).toFixed(2),recordsPerSec:Math.round(n/s),peakRssMB:Math.round(rss/1024),bestOf:+r}))' "$N" "$name" "$bs" "$brss" "$ROUNDS"
}
ratio() { # name, ecr seconds, python seconds
  node -e 'const [name,e,p]=process.argv.slice(1);console.log(JSON.stringify({what:name,ecrSeconds:+(+e).toFixed(2),pythonSeconds:+(+p).toFixed(2),ratio:+(p/e).toFixed(2)}))' "$@"
}
python_ok=1
if ! python3 -c 'import pyarrow, numpy' 2>/dev/null; then
  python3 -m pip install --quiet pyarrow numpy >&2 || python_ok=0
fi
declare -A PY
if [ "$python_ok" = 1 ]; then
  best "pyarrow + numpy: parquet -> parquet" python3 bench/pyarrow_numpy_score.py "$DIR/big.parquet" "$DIR/py-out.parquet"; PY[parquet]=$BEST_S
  best "pyarrow + numpy: arrow -> arrow" python3 bench/pyarrow_numpy_score.py "$DIR/big.arrow" "$DIR/py-out.arrow"; PY[arrow]=$BEST_S
else
  echo '{"what":"pyarrow + numpy","skipped":"pip could not install pyarrow and numpy"}'
fi
for B in $BACKENDS; do
  EXTRA=(); [ "$B" = webgpu ] && EXTRA=(--dtype float32)
  node dist/cli.js bench --backend "$B" --n "$N" --t 5 --m 8 "${EXTRA[@]}" --json 2>/dev/null \
    | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const o=JSON.parse(s);console.log(JSON.stringify({what:`ecr bench --backend ${o.backend} (in memory)`,records:o.n,recordsPerSec:Math.round(o.trajPerSec)}))})'
  best "score arrow -> arrow, $B" node dist/cli.js score "$DIR/big.arrow" --backend "$B" --out "$DIR/out.arrow"
  [ "$python_ok" = 1 ] && ratio "arrow -> arrow, $B vs pyarrow + numpy" "$BEST_S" "${PY[arrow]}"
  best "score parquet -> parquet, $B" node dist/cli.js score "$DIR/big.parquet" --backend "$B" --out "$DIR/out.parquet"
  [ "$python_ok" = 1 ] && ratio "parquet -> parquet, $B vs pyarrow + numpy" "$BEST_S" "${PY[parquet]}"
  [ "$B" = cpu ] && best "score jsonl -> jsonl, $B" node dist/cli.js score "$DIR/big.jsonl" --backend "$B" --out "$DIR/out.jsonl"
done
rm -f "$DIR/.rss" "$DIR/.err" "$DIR/out.arrow" "$DIR/out.parquet" "$DIR/out.jsonl" "$DIR/py-out.parquet" "$DIR/py-out.arrow"
