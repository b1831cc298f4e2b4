"""End-to-end latency of the live path: last sample pushed -> score at an MQTT subscriber.

Processes, all on this machine: a Mosquitto broker on loopback; one *pusher* that streams
``--sessions`` synthetic patients (EEG 32+1 ch at 500 Hz and fNIRS 36+1 ch at 10 Hz, plus
markers) through real LSL outlets in real time, pushing every 10 ms and logging when each
chunk was pushed; one ``neuroclip monitor`` process per session with the default model;
and one independent subscriber process that stamps every score's arrival on the LSL clock.

For each score, the latency is its arrival time minus the push time of the chunk that held
the window's last sample (the later of EEG and fNIRS). The monitor's own per-stage figures
(``latency_ms`` in each message) are summarised beside it, and each monitor's CPU use is
read from /proc at the end.

Run: ``.venv/bin/python benchmarks/latency_e2e.py --sessions 1 --seconds 180`` and
``--sessions 8 --seconds 120`` (needs Mosquitto and the bench extra; uses
LSLAPICFG=configs/lsl/loopback.cfg).
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_pusher(prefix: str, sessions: int, seconds: float, out: Path) -> None:
    """Stream ``sessions`` copies of one synthetic patient; log push times per chunk."""
    import pylsl

    from models.settings import load_config
    from models.simulation.config import SimulationConfig
    from models.simulation.live import _eeg_info, _nirs_info
    from models.simulation.session import SessionSimulator
    from models.simulation.subject import draw_subject

    cfg = load_config(SimulationConfig, None, name="simulate", environ={})
    rng = np.random.default_rng(3)
    subject = draw_subject("bench", "MA", rng, cfg, severity=0.7)
    sim = SessionSimulator(subject, "pre", seconds + 5, cfg, with_rtms_block=False)
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
            (
                pylsl.StreamOutlet(_eeg_info(pylsl, scfg, sim.eeg_channels), 5),
                pylsl.StreamOutlet(
                    _nirs_info(pylsl, scfg, sim.nirs_channels, sim.nirs_distances), 1
                ),
            )
        )
    eeg_buf = np.zeros((0, len(sim.eeg_channels)))
    nirs_buf = np.zeros((0, len(sim.nirs_channels)))
    t_start = pylsl.local_clock() + 0.5
    (out / "t_start.json").write_text(json.dumps({"t_start": t_start}))
    pushed = {"eeg": 0, "nirs": 0}
    log = {m: [[] for _ in range(sessions)] for m in ("eeg", "nirs")}
    rates = {"eeg": cfg.eeg_sfreq, "nirs": cfg.nirs_sfreq}
    while (now := pylsl.local_clock()) - t_start < seconds:
        if now < t_start:
            time.sleep(t_start - now)
            continue
        due = {m: int((now - t_start) * rates[m]) for m in rates}
        while (
            len(eeg_buf) < due["eeg"] - pushed["eeg"]
            or len(nirs_buf) < due["nirs"] - pushed["nirs"]
        ):
            chunk = sim.next_seconds(1)
            eeg_buf = np.vstack([eeg_buf, chunk.eeg])
            nirs_buf = np.vstack([nirs_buf, chunk.nirs])
        for m, buf_name in (("eeg", "eeg_buf"), ("nirs", "nirs_buf")):
            n = due[m] - pushed[m]
            if n <= 0:
                continue
            buf = eeg_buf if buf_name == "eeg_buf" else nirs_buf
            idx = np.arange(pushed[m], pushed[m] + n)
            data = np.hstack([buf[:n], idx[:, None]]).astype(np.float32)
            stamps = (t_start + idx / rates[m]).tolist()
            for s, pair in enumerate(outlets):
                pair[0 if m == "eeg" else 1].push_chunk(data, stamps)
                log[m][s].append((int(idx[-1]), pylsl.local_clock()))
            pushed[m] += n
            if m == "eeg":
                eeg_buf = eeg_buf[n:]
            else:
                nirs_buf = nirs_buf[n:]
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


def orchestrate(sessions: int, seconds: float, hop_s: float) -> dict:
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
    monitors = []
    for s in range(sessions):
        cfg = {
            "site": "bench",
            "session": f"S{s}",
            "status_interval_s": 5.0,
            "streams": {
                "eeg": {"name": f"{prefix}{s}-EEG"},
                "nirs": {"name": f"{prefix}{s}-NIRS"},
                "markers": {"name": f"{prefix}{s}-Markers"},
                "resolve_timeout_s": 60.0,
            },
            "windows": {"warmup_s": 2.0, "hop_s": hop_s},
            "mqtt": {"port": port},
            "lsl_out": {"name": f"{prefix}-Scores"},
            "log": {"dir": str(work / "logs")},
        }
        path = work / f"monitor{s}.json"
        path.write_text(json.dumps(cfg))
        monitors.append(
            subprocess.Popen(
                [sys.executable, "-m", "neuroclip", "monitor", "--config", str(path)],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=open(work / f"monitor{s}.log", "w"),  # noqa: SIM115
            )
        )
    pusher.wait()
    cpu = []
    for proc in monitors:
        p = psutil.Process(proc.pid)
        times = p.cpu_times()
        cpu.append((times.user + times.system) / (time.time() - p.create_time()))
        proc.send_signal(signal.SIGINT)
    for proc in monitors:
        proc.wait(30)
    subscriber.wait()
    broker.terminate()
    broker.wait()
    return analyse(work, sessions, cpu)


def analyse(work: Path, sessions: int, cpu: list[float]) -> dict:
    t_start = json.loads((work / "t_start.json").read_text())["t_start"]
    pushes = np.load(work / "pushes.npz")
    rows = json.loads((work / "arrivals.json").read_text())
    latencies, stages = [], {}
    for row in rows:
        s = int(row["session"][1:])
        push = 0.0
        for m, rate in (("eeg", 500.0), ("nirs", 10.0)):
            last = round((row["end"] - t_start) * rate) - 1
            log = pushes[f"{m}_{s}"]
            k = int(np.searchsorted(log[:, 0], last))
            push = max(push, log[min(k, len(log) - 1), 1])
        latencies.append(1000 * (row["arrival"] - push))
        for stage, value in row["stages"].items():
            if value is not None:
                stages.setdefault(stage, []).append(value)
    lat = np.asarray(latencies)
    return {
        "sessions": sessions,
        "scores": int(lat.size),
        "usable": int(sum(r["usable"] for r in rows)),
        "e2e_p50_ms": round(float(np.percentile(lat, 50)), 2),
        "e2e_p99_ms": round(float(np.percentile(lat, 99)), 2),
        "e2e_max_ms": round(float(lat.max()), 2),
        "stage_p50_ms": {k: round(float(np.percentile(v, 50)), 2) for k, v in stages.items()},
        "stage_p99_ms": {k: round(float(np.percentile(v, 99)), 2) for k, v in stages.items()},
        "monitor_cpu_percent": [round(100 * c, 1) for c in cpu],
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
    parser.add_argument("--port", type=int, default=1883)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.role == "pusher":
        run_pusher(args.prefix, args.sessions, args.seconds, args.out)
    elif args.role == "subscriber":
        run_subscriber(args.port, args.out, args.seconds)
    else:
        print(json.dumps(orchestrate(args.sessions, args.seconds, args.hop), indent=1))


if __name__ == "__main__":
    main()
