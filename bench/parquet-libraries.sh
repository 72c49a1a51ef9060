#!/usr/bin/env bash
# The Parquet library comparison (bench/README.md): each library writes and then reads N records
# (default 1,000,000, T=5, m=8) one row group at a time; one process per operation so that
# /usr/bin/time -v gives each one's peak RSS. usage: bash bench/parquet-libraries.sh [N] [DIR]
set -euo pipefail
N=${1:-1000000}
DIR=${2:-$(mktemp -d)}
cd "$(dirname "$0")/.."
for lib in parquet-wasm hyparquet duckdb; do
  for op in write read; do
    /usr/bin/time -v node bench/parquet-libraries.mjs "$lib" "$op" "$DIR/$lib.parquet" "$N" 2>"$DIR/$lib.$op.time" \
      | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const o=JSON.parse(s);const t=require("fs").readFileSync(process.argv[1],"utf8");o.peakRssMB=Math.round(Number(/Maximum resident set size \(kbytes\): (\d+)/.exec(t)[1])/1024);console.log(JSON.stringify(o))})' "$DIR/$lib.$op.time"
  done
done
