#!/usr/bin/env bash
# The main job on its embedded defaults: set up, then `neuroclip demo`: a synthetic patient's
# LSL streams (EEG, NIRS, Markers), a broker (Mosquitto when installed, otherwise the
# embedded Python broker), the monitor with the default model and the live dashboard on
# http://127.0.0.1:8050/. Scores also go to the session log (sessions/). Ctrl-C stops all.
# Extra arguments go to `neuroclip demo` (e.g. --duration 120 --session P002-pre).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export LSLAPICFG="${LSLAPICFG:-$PWD/configs/lsl/loopback.cfg}"
exec .venv/bin/neuroclip demo "$@"
