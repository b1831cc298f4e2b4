#!/usr/bin/env bash
# Create .venv (if missing) and install the package with the extras named in $1 (e.g. "test"),
# every package at the version requirements/constraints.txt pins (refresh: scripts/lock.sh).
# torch only comes with the "train" extra (pinned to its CPU build).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
extras=${1:-}
target="."
[ -n "$extras" ] && target=".[${extras}]"
.venv/bin/python -m pip install --quiet -c requirements/constraints.txt -e "$target"
