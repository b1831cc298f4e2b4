#!/usr/bin/env bash
# Set up and run every check: ruff (lint and format) and the whole pytest suite.
# Works on a fresh machine: installs Mosquitto (apt, as root) and the Python packages;
# LSL discovery is limited to this machine by the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/system-deps.sh
bash scripts/setup.sh train,test
.venv/bin/ruff check .
.venv/bin/ruff format --check .
export LSLAPICFG="$PWD/configs/lsl/loopback.cfg"
exec .venv/bin/python -m pytest "$@"
