#!/usr/bin/env bash
# The main job on its embedded defaults: set up, stream one synthetic patient over LSL
# (EEG, NIRS, Markers) and run `neuroclip monitor` on it with the default model. Scores go to
# the session log (sessions/), an LSL score stream and, when Mosquitto is installed, to MQTT
# on 127.0.0.1:1883 (a broker already listening there is used as it is), where the live
# dashboard (`neuroclip dashboard`) shows them on http://127.0.0.1:8050/. Ctrl-C stops all.
# Extra arguments go to `neuroclip monitor` (e.g. --duration 120 --session S002).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export LSLAPICFG="${LSLAPICFG:-$PWD/configs/lsl/loopback.cfg}"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

broker_args=()
if (exec 3<>/dev/tcp/127.0.0.1/1883) 2>/dev/null; then
  echo "run.sh: using the MQTT broker already on 127.0.0.1:1883" >&2
elif command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ]; then
  "$(command -v mosquitto || echo /usr/sbin/mosquitto)" -c configs/mosquitto.conf >/dev/null 2>&1 &
  pids+=($!)
  echo "run.sh: started Mosquitto on 127.0.0.1:1883 (subscribe: mosquitto_sub -t 'neuroclip/v1/#' -v)" >&2
else
  echo "run.sh: Mosquitto not installed; publishing to the session log and LSL only" >&2
  broker_args=(--no-mqtt)
fi
.venv/bin/neuroclip simulate --live --duration 86400 >/dev/null &
pids+=($!)
if [ ${#broker_args[@]} -eq 0 ]; then
  if (exec 3<>/dev/tcp/127.0.0.1/8050) 2>/dev/null; then
    echo "run.sh: port 8050 is taken; not starting the dashboard" >&2
  else
    .venv/bin/neuroclip dashboard >/dev/null 2>&1 &
    pids+=($!)
    echo "run.sh: live dashboard on http://127.0.0.1:8050/" >&2
  fi
fi
.venv/bin/neuroclip monitor "${broker_args[@]}" "$@"
