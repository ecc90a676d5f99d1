#!/usr/bin/env bash
# The README's benchmark: `adlib compare` with the default configuration on both ELPV cell types.
# Trains runs/elpv-{mono,poly} (reused if present) and writes docs/bench/elpv-{mono,poly}.{json,txt}.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p docs/bench
for kind in mono poly; do
  start=$(date +%s)
  .venv/bin/adlib compare --data "elpv:$kind" --out "runs/elpv-$kind" --json "docs/bench/elpv-$kind.json" \
      | tee "docs/bench/elpv-$kind.txt"
  echo "elpv:$kind: adlib compare took $(( $(date +%s) - start )) s in all (features, training, all methods)" \
      | tee -a "docs/bench/elpv-$kind.txt"
done
