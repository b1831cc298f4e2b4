#!/usr/bin/env bash
# Refresh requirements/constraints.txt: install every extra into a fresh virtual environment
# with the newest versions pyproject.toml allows, run nothing, and pin what was installed.
# Review the diff, run `bash scripts/test.sh`, and commit both together.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
fresh=$(mktemp -d)
trap 'rm -rf "$fresh"' EXIT
"$PYTHON" -m venv "$fresh/venv"
"$fresh/venv/bin/python" -m pip install --quiet --upgrade pip
"$fresh/venv/bin/python" -m pip install --quiet ".[train,test,bench]"
{
  echo "# Every Python package the project installs, pinned: scripts/setup.sh and CI install with"
  echo "# these constraints. Refresh with: bash scripts/lock.sh (a fresh venv, newest allowed versions)."
  "$fresh/venv/bin/python" -m pip freeze --exclude-editable \
    | grep -v '^neuroclip-monitor' | sed 's/^torch==\(.*\)+cpu$/torch==\1/'
} > requirements/constraints.txt
echo "wrote requirements/constraints.txt ($(grep -vc '^#' requirements/constraints.txt) packages)"
