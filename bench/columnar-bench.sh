#!/usr/bin/env bash
# Issue 12's file-to-file rates, measured in one run on one machine: the in-memory
# `ecr bench --backend cpu` rate, then `ecr score` from each format to the same format (and JSONL
# to JSONL), wall clock from process start to exit, with peak RSS. Inputs from
# bench/gen-formats.sh in DIR. Prints one JSON line per measurement.
# usage: npm run build && bash bench/gen-formats.sh 1000000 DIR && bash bench/columnar-bench.sh DIR [BACKEND...]
set -euo pipefail
DIR=${1:?usage: columnar-bench.sh DIR [BACKEND...]}
shift
BACKENDS=${*:-cpu}
cd "$(dirname "$0")/.."
N=$(node -e 'const a=require("apache-arrow");const fs=require("fs");(async()=>{const r=await a.RecordBatchReader.from(await fs.promises.open(process.argv[1]));await r.open();let n=0;for await(const b of r)n+=b.numRows;console.log(n)})()' "$DIR/big.arrow")
measure() { # name, then the command
  local name=$1; shift
  local t0=$(date +%s.%N)
  /usr/bin/time -f '%M' -o "$DIR/.rss" "$@" > /dev/null
  local t1=$(date +%s.%N)
  node -e 'const [n,name,t0,t1,rss]=process.argv.slice(1);const s=t1-t0;console.log(JSON.stringify({what:name,records:+n,seconds:+s.toFixed(2),recordsPerSec:Math.round(n/s),peakRssMB:Math.round(rss/1024)}))' "$N" "$name" "$t0" "$t1" "$(tail -1 "$DIR/.rss")"
}
for B in $BACKENDS; do
  EXTRA=(); [ "$B" = webgpu ] && EXTRA=(--dtype float32)
  node dist/cli.js bench --backend "$B" --n "$N" --t 5 --m 8 "${EXTRA[@]}" --json 2>/dev/null \
    | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const o=JSON.parse(s);console.log(JSON.stringify({what:`ecr bench --backend ${o.backend} (in memory)`,records:o.n,recordsPerSec:Math.round(o.trajPerSec)}))})'
  measure "score arrow -> arrow, $B" node dist/cli.js score "$DIR/big.arrow" --backend "$B" --out "$DIR/out.arrow"
  measure "score parquet -> parquet, $B" node dist/cli.js score "$DIR/big.parquet" --backend "$B" --out "$DIR/out.parquet"
  [ "$B" = cpu ] && measure "score jsonl -> jsonl, $B" node dist/cli.js score "$DIR/big.jsonl" --backend "$B" --out "$DIR/out.jsonl"
done
rm -f "$DIR/.rss" "$DIR/out.arrow" "$DIR/out.parquet" "$DIR/out.jsonl"
