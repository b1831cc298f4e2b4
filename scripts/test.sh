#!/usr/bin/env bash
# Set up and run the checks.
#
#   bash scripts/test.sh           everything, as CI runs it: installs Mosquitto, Chromium and
#                                  openssl (apt, as root), the pinned Python packages, then ruff,
#                                  the unit and training tests on two workers (pytest-xdist),
#                                  then the live tests (processes, sockets, browser) one by one
#   bash scripts/test.sh --fast    the unit tier only (no processes, sockets, browser or
#                                  training; under a minute), for the edit-test loop
#
# Any other argument goes to pytest (e.g. -k monitor, -x, -n 0 for one process).
# LSL discovery is limited to this machine by the tests (configs/lsl/loopback.cfg).
set -euo pipefail
cd "$(dirname "$0")/.."
fast=0
args=()
for arg in "$@"; do
  case "$arg" in
    --fast) fast=1 ;;
    *) args+=("$arg") ;;
  esac
done
export LSLAPICFG="$PWD/configs/lsl/loopback.cfg"
if [ "$fast" = 1 ]; then
  [ -x .venv/bin/pytest ] || bash scripts/setup.sh train,test
  .venv/bin/ruff check .
  .venv/bin/ruff format --check .
  exec .venv/bin/python -m pytest -q \
    -m "not (integration or slow or browser or fault)" ${args[@]+"${args[@]}"}
fi
started=$(date +%s)
bash scripts/system-deps.sh
bash scripts/setup.sh train,test
.venv/bin/ruff check .
.venv/bin/ruff format --check .
# tests that time real processes (LSL, Mosquitto, the browser, the fault suite) run one at a
# time; the rest (unit, training) on two workers
live="integration or fault or browser"
status=0
.venv/bin/python -m pytest -n 2 --dist loadfile -m "not ($live)" ${args[@]+"${args[@]}"} \
  || status=$?
.venv/bin/python -m pytest -m "$live" ${args[@]+"${args[@]}"} || status=$?
echo "scripts/test.sh: the full suite took $(( $(date +%s) - started )) s"
exit "$status"
