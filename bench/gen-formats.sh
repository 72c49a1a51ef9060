#!/usr/bin/env bash
# The issue-12 benchmark inputs: N records (default 1,000,000) at T=5, m=8 from `ecr bench`'s own
# generator (groups of 8), written as Arrow IPC by bench/gen-columnar-input.mjs, then Parquet
# and JSONL made from it by `ecr convert`, so all three hold the same records.
# usage: npm run build && bash bench/gen-formats.sh [N] [DIR]
set -euo pipefail
N=${1:-1000000}
DIR=${2:-.}
cd "$(dirname "$0")/.."
node bench/gen-columnar-input.mjs "$N" "$DIR/big.arrow" --data bench
node dist/cli.js convert "$DIR/big.arrow" "$DIR/big.parquet"
node dist/cli.js convert "$DIR/big.arrow" "$DIR/big.jsonl"
ls -l "$DIR/big.jsonl" "$DIR/big.parquet" "$DIR/big.arrow"
