#!/usr/bin/env bash
# Build the container image and run it for real, with Podman, on a host that reaches no
# container registry (CI; docs/deploy.md "Testing the image"). Root only (apt, rootful
# Podman). Each step prints its time; any failure stops the run with a message naming the
# step, and the containers, pods, volumes and networks it started are removed either way.
#
#   bash scripts/image-test.sh                  # what CI runs after the test suite
#   bash scripts/image-test.sh --clean          # rebuild the base and every image from scratch
#   bash scripts/image-test.sh --remove-images  # also remove the images it built, at the end
#
# Steps:
#   1. apt: podman, runc, mmdebstrap, CNI plugins with dnsname, mosquitto-clients, curl
#      (only what is missing);
#   2. the base image: Debian bookworm (minbase) with python3, venv, pip and python-is-python3,
#      imported as python:3.11-slim, the name the Dockerfile builds on (kept between runs;
#      --clean rebuilds it), and the broker image eclipse-mosquitto:2 from Debian's Mosquitto
#      (configs/containers/mosquitto.Containerfile), the name docker-compose.yml uses;
#   3. the Dockerfile: `podman build --pull=never` from the repository root, with the host's
#      CA bundle mounted over the build's own for the RUN steps (pip reaches the index through
#      the host's trust setup; nothing of it stays in the image);
#   4. smoke: no torch in the image, `neuroclip --version`, `neuroclip monitor --help`, and
#      `neuroclip demo --embedded-broker` in a container without network, whose session log
#      must hold usable scores;
#   5. compose: docker-compose.yml up with podman-compose (PyPI, in a venv of its own) until
#      the dashboard answers 200 on 127.0.0.1:8050 and mosquitto_sub on the host receives
#      usable scores of room1/P001-pre from the broker on 127.0.0.1:1883; then down with its
#      volumes and network.
# Images are left in Podman's storage for the next run (layers are reused) unless
# --remove-images. Podman runs with configs/containers/containers.conf (runc, explicit
# ulimits, CNI), which restricted hosts such as CI's VMs need.
set -Eeuo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"

IMAGE=neuroclip-monitor:latest
BASE_IMAGE=docker.io/library/python:3.11-slim   # what `FROM python:3.11-slim` resolves to
DEBIAN_IMAGE=docker.io/library/debian:bookworm-slim
BROKER_IMAGE=docker.io/library/eclipse-mosquitto:2
BASE_LABEL=org.neuroclip.image-test.base
PROJECT=neuroclip                                 # `name:` in docker-compose.yml
DEMO=neuroclip-image-test-demo
COMPOSE_VERSION=1.6.0
WORK=${NEUROCLIP_IMAGE_TEST_DIR:-/var/tmp/neuroclip-image-test}
DEBIAN_MIRROR=${NEUROCLIP_DEBIAN_MIRROR:-http://deb.debian.org/debian}
DEBIAN_SECURITY=${NEUROCLIP_DEBIAN_SECURITY:-http://deb.debian.org/debian-security}
APT_PACKAGES=(podman runc mmdebstrap containernetworking-plugins
  golang-github-containernetworking-plugin-dnsname iptables mosquitto-clients curl
  python3-venv ca-certificates)

CLEAN=0
REMOVE_IMAGES=0
for arg in "$@"; do
  case "$arg" in
    --clean) CLEAN=1 ;;
    --remove-images) REMOVE_IMAGES=1 ;;
    -h | --help) sed -n '2,/^set -E/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "image-test: unknown argument $arg (see --help)" >&2; exit 2 ;;
  esac
done

T0=$SECONDS
STEP="start"
TIMINGS=()
SUB_PID=""

log() { printf '[image-test %4ds] %s\n' "$((SECONDS - T0))" "$*"; }
die() { printf '\nimage-test FAILED in step "%s": %s\n' "$STEP" "$*" >&2; exit 1; }
step() { STEP=$1; STEP_T0=$SECONDS; log "== $1"; }
done_step() {
  local took=$((SECONDS - STEP_T0))
  TIMINGS+=("$(printf '%-24s %4d s' "$STEP" "$took")")
  log "== $STEP: done in ${took} s"
}

# Everything this script starts is removed here, on success, failure or Ctrl-C.
teardown() {
  if [ -n "$SUB_PID" ]; then kill "$SUB_PID" 2>/dev/null || true; wait "$SUB_PID" 2>/dev/null || true; fi
  SUB_PID=""
  timeout 60 podman rm -f -v -t 5 "$DEMO" >/dev/null 2>&1 || true
  # the containers first, with their anonymous volumes (the images' VOLUMEs that compose
  # does not name: /app/sessions of patient and dashboard, /mosquitto/log), which
  # `podman-compose down -v` would leave behind; one at a time, newest first, since compose's
  # depends_on makes the older ones refuse removal while their dependents exist
  local ids id _
  for _ in 1 2 3; do
    ids=$(podman ps -aq --filter "label=io.podman.compose.project=$PROJECT" 2>/dev/null || true)
    [ -n "$ids" ] || break
    for id in $(tac <<<"$ids"); do
      timeout 60 podman rm -f -v -t 10 "$id" >/dev/null 2>&1 || true
    done
  done
  if [ -x "$WORK/compose-venv/bin/podman-compose" ]; then
    timeout 120 "$WORK/compose-venv/bin/podman-compose" -p "$PROJECT" -f docker-compose.yml \
      down -v -t 5 >"$WORK/logs/compose-down.log" 2>&1 || true
  fi
  # whatever podman-compose left (an interrupted run, an older podman-compose)
  ids=$(podman pod ps -q --filter "name=^pod_${PROJECT}\$" 2>/dev/null || true)
  [ -z "$ids" ] || timeout 60 podman pod rm -f $ids >/dev/null 2>&1 || true
  ids=$(podman volume ls -q --filter "label=io.podman.compose.project=$PROJECT" 2>/dev/null || true)
  [ -z "$ids" ] || podman volume rm -f $ids >/dev/null 2>&1 || true
  podman network exists "${PROJECT}_default" 2>/dev/null && podman network rm -f "${PROJECT}_default" >/dev/null 2>&1 || true
}

on_exit() {
  local rc=$?
  trap - EXIT INT TERM
  if command -v podman >/dev/null 2>&1; then
    [ "$rc" -eq 0 ] || log "cleaning up after the failure"
    teardown
    if [ "$REMOVE_IMAGES" = 1 ]; then
      podman rmi -f "$IMAGE" "$BROKER_IMAGE" >/dev/null 2>&1 || true
      log "removed $IMAGE and $BROKER_IMAGE (the base images stay)"
    fi
  fi
  if [ "$rc" -ne 0 ]; then
    echo "image-test: FAILED (exit $rc) in step \"$STEP\" after $((SECONDS - T0)) s; logs in $WORK/logs" >&2
  fi
  exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

[ "$(id -u)" = 0 ] || die "run as root (apt-get and rootful podman)"
mkdir -p "$WORK/logs"
rm -f "$WORK"/logs/*.log

# ---------------------------------------------------------------- 1. packages
step "apt install"
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing ${missing[*]}"
  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
      --no-install-recommends "${missing[@]}"; } >"$WORK/logs/apt.log" 2>&1 \
    || { tail -20 "$WORK/logs/apt.log" >&2; die "apt-get install failed (log: $WORK/logs/apt.log)"; }
else
  log "all present: ${APT_PACKAGES[*]}"
fi
# podman-compose from PyPI (Debian's 1.0.3 mishandles `network_mode: service:`), in a venv of
# its own, never the project's .venv
if ! "$WORK/compose-venv/bin/podman-compose" version 2>/dev/null | grep -q "$COMPOSE_VERSION"; then
  rm -rf "$WORK/compose-venv"
  /usr/bin/python3 -m venv "$WORK/compose-venv" >"$WORK/logs/compose-venv.log" 2>&1 \
    && "$WORK/compose-venv/bin/pip" install -q "podman-compose==$COMPOSE_VERSION" \
      >>"$WORK/logs/compose-venv.log" 2>&1 \
    || { tail -20 "$WORK/logs/compose-venv.log" >&2; die "installing podman-compose $COMPOSE_VERSION failed"; }
fi
COMPOSE=("$WORK/compose-venv/bin/podman-compose" -p "$PROJECT" -f docker-compose.yml)

# Podman's settings: runc, cgroupfs, CNI, and ulimits no higher than this host's hard limits
# (root without CAP_SYS_RESOURCE cannot raise them, and podman's defaults are higher).
hard_n=$(ulimit -Hn); hard_u=$(ulimit -Hu)
[ "$hard_n" = unlimited ] && hard_n=20000
[ "$hard_u" = unlimited ] && hard_u=32768
nofile=$((hard_n < 20000 ? hard_n : 20000))
nproc=$((hard_u < 32768 ? hard_u : 32768))
sed -e "s/\"nofile=20000:20000\"/\"nofile=$nofile:$nofile\"/" \
    -e "s/\"nproc=32768:32768\"/\"nproc=$nproc:$nproc\"/" \
    configs/containers/containers.conf >"$WORK/containers.conf"
export CONTAINERS_CONF="$WORK/containers.conf"
log "podman $(podman --version | awk '{print $3}'), runc, ulimits nofile=$nofile nproc=$nproc," \
  "podman-compose $COMPOSE_VERSION"
done_step

# whatever an earlier, interrupted run left
teardown
if [ "$CLEAN" = 1 ]; then
  log "--clean: removing this project's images, the base and dangling layers"
  podman rmi -f "$IMAGE" "$BROKER_IMAGE" "$BASE_IMAGE" "$DEBIAN_IMAGE" >/dev/null 2>&1 || true
  podman image prune -f >/dev/null 2>&1 || true
fi

# ---------------------------------------------------------------- 2. base images
step "base image"
if podman image exists "$BASE_IMAGE"; then
  log "$BASE_IMAGE present ($(podman inspect -f "{{index .Labels \"$BASE_LABEL\"}}" "$BASE_IMAGE" \
    2>/dev/null || true)); --clean rebuilds it"
else
  log "mmdebstrap bookworm minbase + python3 (about 45 s)"
  rm -f "$WORK/base.tar"
  mmdebstrap --variant=minbase --mode=root \
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
    --include=python3,python3-venv,python3-pip,python-is-python3,ca-certificates \
    --aptopt='Acquire::Retries "3"' \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-include=/usr/share/locale/locale.alias' \
    bookworm "$WORK/base.tar" \
    "deb $DEBIAN_MIRROR bookworm main" "deb $DEBIAN_MIRROR bookworm-updates main" \
    "deb $DEBIAN_SECURITY bookworm-security main" >"$WORK/logs/mmdebstrap.log" 2>&1 \
    || { tail -20 "$WORK/logs/mmdebstrap.log" >&2; die "mmdebstrap failed (log: $WORK/logs/mmdebstrap.log)"; }
  podman import \
    --change "LABEL $BASE_LABEL=debian-bookworm-minbase-python3" \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' \
    "$WORK/base.tar" "$BASE_IMAGE" >"$WORK/logs/import.log" 2>&1 \
    || { cat "$WORK/logs/import.log" >&2; die "podman import failed"; }
  rm -f "$WORK/base.tar"
fi
podman image exists "$DEBIAN_IMAGE" || podman tag "$BASE_IMAGE" "$DEBIAN_IMAGE"
podman run --rm --network none "$BASE_IMAGE" python -c 'import venv, ensurepip' \
  || die "the base image has no working python/venv"
# the broker: Debian's Mosquitto laid out as eclipse-mosquitto:2
podman build --pull=never -t "$BROKER_IMAGE" --build-arg BASE="$DEBIAN_IMAGE" \
  -f configs/containers/mosquitto.Containerfile configs/containers \
  >"$WORK/logs/broker-build.log" 2>&1 \
  || { tail -20 "$WORK/logs/broker-build.log" >&2; die "building $BROKER_IMAGE failed"; }
done_step

# ---------------------------------------------------------------- 3. the Dockerfile
step "image build"
ca_bundle=""
for f in "${PIP_CERT:-}" "${REQUESTS_CA_BUNDLE:-}" "${SSL_CERT_FILE:-}" /etc/ssl/certs/ca-certificates.crt; do
  if [ -n "$f" ] && [ -f "$f" ]; then ca_bundle=$f; break; fi
done
[ -n "$ca_bundle" ] || die "no CA bundle on the host (PIP_CERT, REQUESTS_CA_BUNDLE, /etc/ssl/certs)"
log "podman build --pull=never -t $IMAGE . (pip trusts the host's $ca_bundle)"
# Debian's pip (the base's) reads /etc/ssl/certs/ca-certificates.crt: mounting the host's
# bundle over that existing file leaves no trace in the image's layers.
podman build --pull=never -t "$IMAGE" \
  -v "$ca_bundle:/etc/ssl/certs/ca-certificates.crt:ro" . >"$WORK/logs/build.log" 2>&1 \
  || { tail -30 "$WORK/logs/build.log" >&2; die "podman build failed (log: $WORK/logs/build.log)"; }
grep -q 'Using cache' "$WORK/logs/build.log" && log "(some layers came from Podman's cache)"
done_step

# ---------------------------------------------------------------- 4. smoke
step "smoke"
run() { podman run --rm --network none "$@"; }
run --entrypoint python "$IMAGE" -c '
import importlib.util, sys
found = [m for m in ("torch", "torchvision", "tensorflow") if importlib.util.find_spec(m)]
sys.exit(f"found in the image: {found}" if found else 0)' || die "torch (or another framework) is in the image"
run --entrypoint sh "$IMAGE" -c '! /opt/neuroclip/bin/pip list 2>/dev/null | grep -iE "^(torch|nvidia-)"' \
  || die "pip lists torch or nvidia packages in the image"
want="neuroclip $(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)"
got=$(run "$IMAGE" --version 2>&1) || die "neuroclip --version failed: $got"
[ "$got" = "$want" ] || die "neuroclip --version printed '$got', expected '$want'"
run "$IMAGE" monitor --help | grep -q '^usage: neuroclip monitor' || die "neuroclip monitor --help failed"
log "no torch; '$got'; monitor --help ok"
log "demo: one 52 s session of the synthetic patient, embedded broker, no network (about 65 s)"
rm -rf "$WORK/demo" && mkdir -p "$WORK/demo" && chown 10001 "$WORK/demo"
timeout 180 podman run --rm --name "$DEMO" --network none -v "$WORK/demo:/app/demo-logs" "$IMAGE" \
  demo --embedded-broker --session-s 52 --duration 60 --status-every 10 \
  --log-dir /app/demo-logs >"$WORK/logs/demo.log" 2>&1 \
  || { tail -20 "$WORK/logs/demo.log" >&2; die "neuroclip demo failed in the container"; }
sed 's/^/    | /' "$WORK/logs/demo.log" | tail -4
/usr/bin/python3 - "$WORK/demo" <<'EOF' || die "the demo's session log holds no usable scores (log: $WORK/logs/demo.log)"
import json, pathlib, sys
logs = sorted(pathlib.Path(sys.argv[1]).rglob("*.scores.jsonl"))
rows = [json.loads(line) for p in logs for line in p.read_text().splitlines() if line.strip()]
usable = [r for r in rows if r.get("schema", "").startswith("neuroclip.score/")
          and r.get("usable") is True and isinstance(r.get("score"), float) and 0 <= r["score"] <= 1]
print(f"    session log: {len(rows)} windows, {len(usable)} usable with a score in [0, 1]"
      f" ({', '.join(p.name for p in logs) or 'no file'})")
sys.exit(0 if len(usable) >= 3 else 1)
EOF
done_step

# ---------------------------------------------------------------- 5. compose
step "compose"
volumes_before=$(podman volume ls -q | sort)
"${COMPOSE[@]}" up -d >"$WORK/logs/compose-up.log" 2>&1 \
  || { tail -30 "$WORK/logs/compose-up.log" >&2; die "podman-compose up failed"; }
log "up: $(podman ps --filter "label=io.podman.compose.project=$PROJECT" --format '{{.Names}}' | tr '\n' ' ')"
deadline=$((SECONDS + 60))
until mosquitto_pub -h 127.0.0.1 -p 1883 -t neuroclip-image-test/ping -m 1 >/dev/null 2>&1; do
  [ "$SECONDS" -lt "$deadline" ] || die "the broker does not answer on 127.0.0.1:1883"
  sleep 1
done
# an independent subscriber on the host: the scores of room1/P001-pre, as a client would
mosquitto_sub -h 127.0.0.1 -p 1883 -q 1 -v -t 'neuroclip/v1/room1/P001-pre/score' -C 3 -W 150 \
  >"$WORK/logs/scores.mqtt" 2>"$WORK/logs/mosquitto_sub.log" &
SUB_PID=$!
deadline=$((SECONDS + 90))
until [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 http://127.0.0.1:8050/ || true)" = 200 ]; do
  [ "$SECONDS" -lt "$deadline" ] || die "the dashboard does not answer 200 on http://127.0.0.1:8050/"
  sleep 2
done
log "dashboard: HTTP 200 on http://127.0.0.1:8050/ after $((SECONDS - STEP_T0)) s; waiting for scores"
wait "$SUB_PID" || { SUB_PID=""; for s in monitor patient broker; do
    echo "--- $s" >&2; podman logs --tail 15 "${PROJECT}_${s}_1" >&2 2>&1 || true; done
  die "no 3 scores on neuroclip/v1/room1/P001-pre/score within 150 s"; }
SUB_PID=""
/usr/bin/python3 - "$WORK/logs/scores.mqtt" <<'EOF' || die "the scores from MQTT are not usable (see $WORK/logs/scores.mqtt)"
import json, sys
rows = []
for line in open(sys.argv[1]):
    topic, _, payload = line.partition(" ")
    rows.append((topic, json.loads(payload)))
usable = [m for _, m in rows if m.get("usable") is True and isinstance(m.get("score"), float)]
print(f"    mqtt: {len(rows)} score messages on {rows[0][0] if rows else '-'}, {len(usable)} usable"
      f", last score {usable[-1]['score'] if usable else None}")
sys.exit(0 if len(rows) >= 3 and usable else 1)
EOF
podman logs --tail 2 "${PROJECT}_monitor_1" 2>&1 | sed 's/^/    | /' || true
teardown
left=$(podman ps -aq --filter "label=io.podman.compose.project=$PROJECT"
  podman volume ls -q --filter "label=io.podman.compose.project=$PROJECT"
  comm -13 <(echo "$volumes_before") <(podman volume ls -q | sort)
  podman network ls -q --filter "name=^${PROJECT}_")
[ -z "$left" ] || die "compose down left containers, volumes or networks: $left"
done_step

STEP="report"
size=$(podman image inspect -f '{{.Size}}' "$IMAGE")
echo
echo "image-test: all passed in $((SECONDS - T0)) s"
printf '  %s\n' "${TIMINGS[@]}"
printf '  %-24s %s (%d MB; the base %s: %d MB)\n' "image size" "$IMAGE" "$((size / 1000000))" \
  "$BASE_IMAGE" "$(($(podman image inspect -f '{{.Size}}' "$BASE_IMAGE") / 1000000))"
