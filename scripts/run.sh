#!/usr/bin/env bash
# The main job on its embedded defaults: set up, then stream one synthetic patient
# (EEG, NIRS, Markers) over LSL in real time until Ctrl-C or the configured duration.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/neuroclip simulate --live "$@"
