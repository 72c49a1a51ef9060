#!/usr/bin/env bash
# Speed of two builds of this project on the same machine, alternating, so that drift in the
# machine's speed falls on both (issue 19: a refactor must keep every speed within noise).
# usage: bash bench/compare-builds.sh BEFORE_DIR AFTER_DIR DATA_DIR [ROUNDS]
#   BEFORE_DIR, AFTER_DIR: checkouts with `npm ci && npm run build` done
#   DATA_DIR: from `bash bench/gen-formats.sh 1000000 DATA_DIR`
# Prints one JSON line per measurement: build, what, seconds (wall, process start to exit) or rate.
set -euo pipefail
A=${1:?BEFORE_DIR}; B=${2:?AFTER_DIR}; DATA=${3:?DATA_DIR}; ROUNDS=${4:-3}
out=$(mktemp -d); trap 'rm -rf "$out"' EXIT
wall() { # build, name, command...
  local build=$1 name=$2; shift 2
  local t0=$(date +%s.%N); "$@" > /dev/null 2> "$out/err" || { cat "$out/err" >&2; exit 1; }; local t1=$(date +%s.%N)
  printf '{"build":"%s","what":"%s","seconds":%.2f}\n' "$build" "$name" "$(echo "$t1 - $t0" | bc)"
}
for round in $(seq "$ROUNDS"); do
  for dir in "$A" "$B"; do
    build=$(basename "$dir")
    cli="$dir/dist/cli.js"
    node "$cli" bench --backend cpu --n 1000000 --t 5 --m 8 --json 2>/dev/null \
      | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const o=JSON.parse(s);console.log(JSON.stringify({build:process.argv[1],what:"ecr bench --backend cpu, 1M",trajPerSec:Math.round(o.trajPerSec)}))})' "$build"
    wall "$build" "score jsonl -> jsonl, 1M" node "$cli" score "$DATA/big.jsonl" --backend cpu --out "$out/o.jsonl"
    wall "$build" "score arrow -> arrow, 1M" node "$cli" score "$DATA/big.arrow" --backend cpu --out "$out/o.arrow"
    wall "$build" "score parquet -> parquet, 1M" node "$cli" score "$DATA/big.parquet" --backend cpu --out "$out/o.parquet"
    (cd "$dir" && node dist/cli.js bench-pipeline --gateway overhead --runs 40 --json 2>/dev/null) \
      | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const o=JSON.parse(s)[0];console.log(JSON.stringify({build:process.argv[1],what:"gateway overhead p50 ms, K=4 H=1, openai client",overheadP50Ms:o.overheadP50Ms,bareClientOverheadP50Ms:o.bareClientOverheadP50Ms}))})' "$build"
  done
done
