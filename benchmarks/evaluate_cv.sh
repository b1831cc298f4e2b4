#!/usr/bin/env bash
# Benchmark of issue "NeuroCLIP models": cross-validated evaluation on a 16 MA + 16 HC
# synthetic cohort simulated with a seed the models were never developed on (777).
# Prints wall time and peak memory; the report lands in $OUT/report.json and report.html.
# Usage: bash benchmarks/evaluate_cv.sh [OUT] [extra evaluate flags, e.g. --ablation]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-/tmp/neuroclip-bench/eval}
shift || true
DATA=/tmp/neuroclip-bench/cohort_seed777
[ -d "$DATA" ] || .venv/bin/neuroclip simulate --out "$DATA" --seed 777
/usr/bin/time -v .venv/bin/neuroclip evaluate --data "$DATA" --cv 5 --out "$OUT" "$@" \
  2> >(grep -E "Elapsed|Maximum resident" >&2)
