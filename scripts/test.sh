#!/usr/bin/env bash
# Set up and run the checks.
#
#   bash scripts/test.sh           everything, as CI runs it: installs Mosquitto, Chromium and
#                                  openssl (apt, as root), the pinned Python packages, then ruff
#                                  and the whole pytest suite on two workers (pytest-xdist), then
#                                  builds the container image and runs it and the compose stack
#                                  (scripts/image-test.sh, Podman; about 5 minutes)
#   bash scripts/test.sh --no-image    the same without the image
#   bash scripts/test.sh --fast    the unit tier only (no processes, sockets, browser or
#                                  training; under a minute), for the edit-test loop
#
# Any other argument goes to pytest (e.g. -k monitor, -x, -n 0 for one process).
# LSL discovery is limited to this machine by the tests (configs/lsl/loopback.cfg).
set -euo pipefail
cd "$(dirname "$0")/.."
fast=0
image=1
args=()
for arg in "$@"; do
  case "$arg" in
    --fast) fast=1 ;;
    --no-image) image=0 ;;
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
status=0
# two workers; a test file stays on one worker (its session fixtures and processes with it)
.venv/bin/python -m pytest -n 2 --dist loadfile ${args[@]+"${args[@]}"} || status=$?
echo "scripts/test.sh: the test suite took $(( $(date +%s) - started )) s"
if [ "$image" = 1 ]; then
  image_started=$(date +%s)
  bash scripts/image-test.sh || status=$?
  echo "scripts/test.sh: the image test took $(( $(date +%s) - image_started )) s"
fi
echo "scripts/test.sh: everything took $(( $(date +%s) - started )) s"
exit "$status"
