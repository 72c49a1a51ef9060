#!/usr/bin/env bash
# The package's public surface, checked against the built dist/ (npm run lint builds first):
#  - one API report per entry point (api/*.api.md, @microsoft/api-extractor): the check fails when
#    the public API differs from the committed report; `--update` rewrites the reports instead;
#  - publint (package.json fields and files) and arethetypeswrong (types resolve for every
#    entry point under Node's ESM resolution and bundlers) on the packed tarball.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=()
[[ "${1:-}" == "--update" ]] && mode=(--local)
for config in config/api-extractor/ecr-engine*.json; do
  out=$(npx --no-install api-extractor run -c "$config" "${mode[@]}" 2>&1) || { echo "$out" | grep -v '^$' | tail -n 20; echo "api report out of date for $config: run scripts/lint-package.sh --update and commit api/"; exit 1; }
done
npx --no-install publint --pack false --strict
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
tarball=$(npm pack --ignore-scripts --silent --pack-destination "$tmp")
npx --no-install attw "$tmp/$tarball" --profile esm-only --format table-flipped
