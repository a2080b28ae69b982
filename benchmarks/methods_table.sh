#!/usr/bin/env bash
# The methods table of docs/methods.md: every method on Cranfield under the hidden-positive protocol,
# with the bundled default model. Mines once, then reruns only filter + export per method.
set -euo pipefail
cd "$(dirname "$0")/.."
HN=${HN:-.venv/bin/hnmine}
DATA=${DATA:-../shared/data/cranfield}
OUT=${OUT:-runs/methods}
mkdir -p "$OUT"
"$HN" mine "$DATA" --hide-positives --out "$OUT/base" --quiet
runs=()
for method in naive shifted topk-abs topk-marginpos topk-percpos sampled top1-sampled simans; do
  rm -rf "$OUT/$method"
  cp -r "$OUT/base" "$OUT/$method"
  "$HN" mine "$DATA" --hide-positives --out "$OUT/$method" --method "$method" --quiet
  runs+=("$OUT/$method")
done
"$HN" eval "${runs[@]}" --hidden --markdown
