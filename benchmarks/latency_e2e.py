"""End-to-end latency of the live path: last sample pushed -> score at an MQTT subscriber.

Processes, all on this machine: a Mosquitto broker on loopback; one *pusher* that streams
``--sessions`` synthetic patients (EEG 32+1 ch at 500 Hz and fNIRS 36+1 ch at 10 Hz, plus
markers) through real LSL outlets in real time, pushing every 10 ms and logging when each
chunk was pushed; the monitors with the default model, either one ``neuroclip monitor``
process per session (``--mode processes``) or one process serving every session as a room
of a rooms file (``--mode rooms``); and one independent subscriber process that stamps
every score's arrival on the LSL clock.

For each score, the latency is its arrival time minus the push time of the chunk that held
the window's last sample (the later of EEG and fNIRS), and its *age* is its arrival time
minus the window's end (where its last fNIRS sample's period ends): how old the newest data
behind a score is when a subscriber gets it, pushing granularity included. The monitor's
own per-stage figures (``latency_ms`` in each message) are summarised beside it, and each
monitor's CPU use is read from /proc at the end.

Both modes spread the sessions' window grids over the hop (``windows.phase_s``, as a rooms
process does by itself), so their windows do not all fall due at the same instant.

"In real time" is checked, not assumed: ``scores`` counts the scores that reached the
subscriber against ``expected``, the windows due from each session's first score to the end
of its streams, and ``age_p99_ms`` says whether they came while still fresh.

Run: ``.venv/bin/python benchmarks/latency_e2e.py --sessions 1 --seconds 180``, or side by
side in one run ``--compare 8,16,32 --seconds 90`` (both modes for each count, in turn;
needs Mosquitto and the bench extra; uses LSLAPICFG=configs/lsl/loopback.cfg).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
PUSH_PERIOD_S = 0.01
WARMUP_S = 2.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_pusher(prefix: str, sessions: int, seconds: float, out: Path, offset_s: float) -> None:
    """Stream ``sessions`` copies of one synthetic patient; log push times per chunk.

    Session ``s`` starts ``s * offset_s`` after session 0 (0: all windows fall due at the
    same instant, the worst case for a shared machine).
    """
    import pylsl

    from contract.settings import load_config
    from models.simulation.config import SimulationConfig
    from models.simulation.session import SessionSimulator
    from models.simulation.subject import draw_subject
    from streamer.lsl.simulator import _eeg_info, _nirs_info

    cfg = load_config(SimulationConfig, None, name="simulate", environ={})
    rng = np.random.default_rng(3)
    subject = draw_subject("bench", "MA", rng, cfg, severity=0.7)
    total_s = int(seconds + sessions * offset_s + 5)
    sim = SessionSimulator(subject, "pre", total_s, cfg, with_rtms_block=False)
    blocks = [sim.next_seconds(1) for _ in range(total_s)]
    data = {
        "eeg": np.vstack([b.eeg for b in blocks]),
        "nirs": np.vstack([b.nirs for b in blocks]),
    }
    rates = {"eeg": cfg.eeg_sfreq, "nirs": cfg.nirs_sfreq}
    outlets = []
    for s in range(sessions):
        live = cfg.live.__class__(
            eeg_name=f"{prefix}{s}-EEG",
            nirs_name=f"{prefix}{s}-NIRS",
            markers_name=f"{prefix}{s}-Markers",
            source_prefix=f"{prefix}{s}",
        )
        scfg = cfg.__class__(live=live)
        outlets.append(
            {
                "eeg": pylsl.StreamOutlet(_eeg_info(pylsl, scfg, sim.eeg_channels), 5),
                "nirs": pylsl.StreamOutlet(
                    _nirs_info(pylsl, scfg, sim.nirs_channels, sim.nirs_distances), 1
                ),
            }
        )
    t0 = pylsl.local_clock() + 0.5
    starts = [t0 + s * offset_s for s in range(sessions)]
    (out / "t_start.json").write_text(json.dumps({"t_start": starts}))
    pushed = [{"eeg": 0, "nirs": 0} for _ in range(sessions)]
    log = {m: [[] for _ in range(sessions)] for m in rates}
    while (now := pylsl.local_clock()) - t0 < seconds + sessions * offset_s:
        for s in range(sessions):
            for m, rate in rates.items():
                due = min(len(data[m]), int((now - starts[s]) * rate))
                n = due - pushed[s][m]
                if n <= 0:
                    continue
                idx = np.arange(pushed[s][m], due)
                chunk = np.hstack([data[m][idx], idx[:, None]]).astype(np.float32)
                outlets[s][m].push_chunk(chunk, (starts[s] + idx / rate).tolist())
                log[m][s].append((int(idx[-1]), pylsl.local_clock()))
                pushed[s][m] = due
        time.sleep(max(0.0, PUSH_PERIOD_S - (pylsl.local_clock() - now)))
    np.savez(
        out / "pushes.npz",
        **{f"{m}_{s}": np.asarray(log[m][s]) for m in log for s in range(sessions)},
    )


def run_subscriber(port: int, out: Path, seconds: float) -> None:
    """Record every score's arrival on the LSL clock."""
    import paho.mqtt.client as mqtt
    import pylsl

    rows = []

    def on_message(client, userdata, msg):
        arrival = pylsl.local_clock()
        m = json.loads(msg.payload)
        rows.append(
            {
                "session": m["session"],
                "seq": m["seq"],
                "end": m["window"]["end"],
                "usable": m["usable"],
                "arrival": arrival,
                "stages": m["latency_ms"],
            }
        )

    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-{uuid.uuid4().hex[:6]}"
    )
    client.on_connect = lambda c, u, f, rc, p: c.subscribe("neuroclip/v1/bench/+/score", qos=1)
    client.on_message = on_message
    client.connect("127.0.0.1", port)
    client.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    client.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    client.loop_start()
    time.sleep(seconds)
    client.loop_stop()
    (out / "arrivals.json").write_text(json.dumps(rows))


def _monitor_settings(prefix: str, s: int, port: int, hop_s: float, work: Path) -> dict:
    """One session's monitor keys (a configuration file, or a room of a rooms file)."""
    return {
        "site": "bench",
        "session": f"S{s}",
        "status_interval_s": 5.0,
        "streams": {
            "eeg": {"name": f"{prefix}{s}-EEG"},
            "nirs": {"name": f"{prefix}{s}-NIRS"},
            "markers": {"name": f"{prefix}{s}-Markers"},
            "resolve_timeout_s": 60.0,
        },
        "windows": {"warmup_s": WARMUP_S, "hop_s": hop_s},
        "mqtt": {"port": port},
        "lsl_out": {"name": f"{prefix}-Scores"},
        "log": {"dir": str(work / "logs")},
    }


def _start_monitors(
    mode: str, prefix: str, sessions: int, port: int, hop_s: float, work: Path, env: dict
) -> list[subprocess.Popen]:
    configs = [_monitor_settings(prefix, s, port, hop_s, work) for s in range(sessions)]
    if mode == "rooms":
        rooms = [{k: c[k] for k in ("site", "session", "streams")} for c in configs]
        shared = {k: v for k, v in configs[0].items() if k not in ("site", "session", "streams")}
        shared["streams"] = {"resolve_timeout_s": 60.0}
        files = [work / "rooms.json"]
        files[0].write_text(json.dumps({**shared, "rooms": rooms}))
    else:
        files = []
        for s, cfg in enumerate(configs):
            # the grid phases a rooms process gives its rooms (streamer.rooms.spread_phases),
            # so that both modes cut the same windows at the same instants
            cfg["windows"]["phase_s"] = round(s * hop_s / sessions, 3)
            files.append(work / f"monitor{s}.json")
            files[-1].write_text(json.dumps(cfg))
    monitors = []
    for path in files:
        with open(work / f"{path.stem}.log", "w") as log:  # the child keeps its own copy
            monitors.append(
                subprocess.Popen(
                    [sys.executable, "-m", "neuroclip", "monitor", "--config", str(path)],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=log,
                )
            )
    return monitors


def orchestrate(
    sessions: int, seconds: float, hop_s: float, stagger: bool, mode: str = "processes"
) -> dict:
    import psutil

    work = Path(tempfile.mkdtemp(prefix="neuroclip-bench-"))
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "LSLAPICFG": os.environ.get("LSLAPICFG", str(REPO / "configs/lsl/loopback.cfg")),
    }
    port = _free_port()
    # the broker as configs/mosquitto.conf has it, on a free port
    (work / "mosquitto.conf").write_text(
        f"user root\nlistener {port} 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\n"
    )

    broker = subprocess.Popen(
        [shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c", str(work / "mosquitto.conf")]
    )
    prefix = f"B{uuid.uuid4().hex[:4]}"
    me = [sys.executable, __file__]
    pusher = subprocess.Popen(
        [
            *me,
            "--offset",
            str(hop_s / sessions if stagger else 0.0),
            "--role",
            "pusher",
            "--prefix",
            prefix,
            "--sessions",
            str(sessions),
            "--seconds",
            str(seconds),
            "--out",
            str(work),
        ],
        env=env,
    )
    subscriber = subprocess.Popen(
        [
            *me,
            "--role",
            "subscriber",
            "--port",
            str(port),
            "--seconds",
            str(seconds + 5),
            "--out",
            str(work),
        ],
        env=env,
    )
    deadline = time.monotonic() + 120
    while not (work / "t_start.json").exists() and time.monotonic() < deadline:
        time.sleep(0.2)  # the outlets exist once the pusher wrote its start time
    monitors = _start_monitors(mode, prefix, sessions, port, hop_s, work, env)
    pusher.wait()
    cpu = []
    for proc in monitors:
        p = psutil.Process(proc.pid)
        times = p.cpu_times()
        cpu.append((times.user + times.system) / (time.time() - p.create_time()))
        proc.send_signal(signal.SIGINT)
    stopped_s = []
    begun = time.monotonic()  # every monitor was sent SIGINT just before
    for proc in monitors:
        try:
            proc.wait(120)
        except subprocess.TimeoutExpired:
            proc.kill()  # reported: a stop this slow is a finding, not a crash of the bench
            proc.wait(10)
        stopped_s.append(round(time.monotonic() - begun, 1))
    subscriber.wait()
    broker.terminate()
    broker.wait()
    result = analyse(work, sessions, cpu, seconds, hop_s)
    result["mode"] = mode
    result["stop_s"] = max(stopped_s)
    result["stagger"] = stagger
    return result


def analyse(work: Path, sessions: int, cpu: list[float], seconds: float, hop_s: float) -> dict:
    starts = json.loads((work / "t_start.json").read_text())["t_start"]
    pushes = np.load(work / "pushes.npz")
    rows = json.loads((work / "arrivals.json").read_text())
    latencies, ages, stages = [], [], {}
    for row in rows:
        s = int(row["session"][1:])
        push = 0.0
        # a window ends where its last fNIRS sample's period ends (models/pipeline/grid.py)
        ages.append(1000 * (row["arrival"] - row["end"]))
        for m, rate in (("eeg", 500.0), ("nirs", 10.0)):
            last = round((row["end"] - starts[s]) * rate) - 1
            log = pushes[f"{m}_{s}"]
            k = int(np.searchsorted(log[:, 0], last))
            push = max(push, log[min(k, len(log) - 1), 1])
        latencies.append(1000 * (row["arrival"] - push))
        for stage, value in row["stages"].items():
            if value is not None:
                stages.setdefault(stage, []).append(value)
    lat = np.asarray(latencies)
    # the windows due from each session's first score to the end of its streams: a monitor
    # that kept up scored them all (one that fell behind, or dropped some, did not)
    expected = 0
    for s in range(sessions):
        ends = [r["end"] for r in rows if int(r["session"][1:]) == s]
        if ends:
            # those ending half a second before the streams did, to stay clear of the edge
            expected += int((starts[s] + seconds - 0.5 - min(ends)) / hop_s) + 1
    return {
        "sessions": sessions,
        "scores": int(lat.size),
        "expected": expected,
        "usable": int(sum(r["usable"] for r in rows)),
        "e2e_p50_ms": round(float(np.percentile(lat, 50)), 2),
        "e2e_p99_ms": round(float(np.percentile(lat, 99)), 2),
        "e2e_max_ms": round(float(lat.max()), 2),
        "age_p50_ms": round(float(np.percentile(ages, 50)), 2),
        "age_p99_ms": round(float(np.percentile(ages, 99)), 2),
        "stage_p50_ms": {k: round(float(np.percentile(v, 50)), 2) for k, v in stages.items()},
        "stage_p99_ms": {k: round(float(np.percentile(v, 99)), 2) for k, v in stages.items()},
        "monitor_cpu_percent": [round(100 * c, 1) for c in cpu],
        "cpu_percent_per_room": round(100 * sum(cpu) / sessions, 1),
        "work": str(work),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--role", choices=["orchestrate", "pusher", "subscriber"], default="orchestrate"
    )
    parser.add_argument("--sessions", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--hop", type=float, default=1.0, help="seconds between windows")
    parser.add_argument("--prefix", default="B")
    parser.add_argument(
        "--stagger",
        action="store_true",
        help="start session s s*hop/sessions later (default: all windows due at once)",
    )
    parser.add_argument("--offset", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument(
        "--mode",
        choices=["processes", "rooms"],
        default="processes",
        help="one monitor process per session, or one process serving every session as a room",
    )
    parser.add_argument(
        "--compare",
        help="comma-separated session counts: run both modes for each, in turn, and print a "
        "table (e.g. 8,16,32)",
    )
    parser.add_argument("--port", type=int, default=1883)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.role == "pusher":
        run_pusher(args.prefix, args.sessions, args.seconds, args.out, args.offset)
    elif args.role == "subscriber":
        run_subscriber(args.port, args.out, args.seconds)
    elif args.compare:
        rows = []
        for n in [int(x) for x in args.compare.split(",")]:
            for mode in ("rooms", "processes"):
                rows.append(orchestrate(n, args.seconds, args.hop, args.stagger, mode))
                print(json.dumps(rows[-1]), flush=True)
        print(_table(rows))
    else:
        result = orchestrate(args.sessions, args.seconds, args.hop, args.stagger, args.mode)
        print(json.dumps(result, indent=1))


def _table(rows: list[dict]) -> str:
    """The comparison as a Markdown table."""
    lines = [
        "| rooms | mode | scored / expected | e2e p50 | e2e p99 | age p99 | CPU per room |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['sessions']} | {r['mode']} | {r['scores']} / {r['expected']} | "
            f"{r['e2e_p50_ms']} ms | {r['e2e_p99_ms']} ms | {r['age_p99_ms']} ms | "
            f"{r['cpu_percent_per_room']} % |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
