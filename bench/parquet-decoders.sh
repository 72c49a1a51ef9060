#!/usr/bin/env bash
# The Parquet decoder comparison (issue 20, bench/README.md): each decoder in its own process on
# the same FILE, with wall seconds, CPU seconds (user + sys, all threads) and peak RSS.
# usage: npm run build && bash bench/parquet-decoders.sh FILE [DECODER...]
set -euo pipefail
FILE=${1:?usage: parquet-decoders.sh FILE [DECODER...]}
shift
DECODERS=${*:-parquet-wasm:1 parquet-wasm:2 duckdb polars}
cd "$(dirname "$0")/.."
tmp=$(mktemp); trap 'rm -f "$tmp"' EXIT
for d in $DECODERS; do
  /usr/bin/time -f '%U %S %M' -o "$tmp" node bench/parquet-decoders.mjs "$d" "$FILE" \
    | node -e 'let s="";process.stdin.on("data",c=>s+=c).on("end",()=>{const o=JSON.parse(s);const [u,sy,rss]=require("fs").readFileSync(process.argv[1],"utf8").trim().split("\n").pop().split(" ").map(Number);if(!o.skipped){o.cpuSeconds=+(u+sy).toFixed(2);o.peakRssMB=Math.round(rss/1024);o.secondsPer1M=+(o.seconds*1e6/o.rows).toFixed(2);o.cpuSecondsPer1M=+(o.cpuSeconds*1e6/o.rows).toFixed(2)}console.log(JSON.stringify(o))})' "$tmp"
done
