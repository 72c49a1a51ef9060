#!/usr/bin/env bash
# The issue-12 benchmark inputs: N records (default 1,000,000) at T=5, m=8 in 125,000 groups, as
# JSONL (bench/gen-score-input.mjs), then Parquet and Arrow IPC made from it by `ecr convert`
# (so all three hold the same records). usage: bash bench/gen-formats.sh [N] [DIR]
set -euo pipefail
N=${1:-1000000}
DIR=${2:-.}
cd "$(dirname "$0")/.."
node bench/gen-score-input.mjs "$N" --groups $((N / 8 > 0 ? N / 8 : 1)) > "$DIR/big.jsonl"
node dist/cli.js convert "$DIR/big.jsonl" "$DIR/big.parquet"
node dist/cli.js convert "$DIR/big.parquet" "$DIR/big.arrow"
ls -l "$DIR/big.jsonl" "$DIR/big.parquet" "$DIR/big.arrow"
