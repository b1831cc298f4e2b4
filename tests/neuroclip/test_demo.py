"""``neuroclip demo``: every part starts, scores reach the broker and the page, and Ctrl-C
leaves no process behind (with the embedded broker and with Mosquitto)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

from tests.conftest import REPO
from tests.live_parts import free_port


def _children_of(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is gone for our purpose
    state = subprocess.run(["ps", "-o", "stat=", "-p", str(pid)], capture_output=True, text=True)
    return bool(state.stdout.strip()) and not state.stdout.strip().startswith("Z")


@pytest.mark.parametrize("broker", ["embedded", "mosquitto"])
def test_the_demo_runs_everything_and_stops_everything(tmp_path, lsl_env, broker):
    import paho.mqtt.client as mqtt

    broker_port, http_port = free_port(), free_port()
    argv = [
        sys.executable,
        "-m",
        "neuroclip",
        "demo",
        "--port",
        str(http_port),
        "--broker-port",
        str(broker_port),
        "--log-dir",
        str(tmp_path / "sessions"),
    ]
    if broker == "embedded":
        argv.append("--embedded-broker")
    env = {
        **lsl_env,
        # a quicker first score than the monitor's 30 s warm-up
        "NEUROCLIP_MONITOR__WINDOWS__WARMUP_S": "2",
        "NEUROCLIP_MONITOR__WINDOWS__HOP_S": "1",
    }
    demo = subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(demo.stdout), daemon=True)
    reader.start()
    scores: list[dict] = []
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.on_message = lambda c, u, m: scores.append(json.loads(m.payload))
    try:
        deadline = time.monotonic() + 60
        while not any("Dashboard: http://" in line for line in lines):
            assert demo.poll() is None, "".join(lines)
            assert time.monotonic() < deadline, "no URL printed:\n" + "".join(lines)
            time.sleep(0.2)
        url = next(line for line in lines if "Dashboard:" in line).split("Dashboard: ")[1]
        with urllib.request.urlopen(url.strip(), timeout=10) as response:
            assert response.status == 200
        client.connect("127.0.0.1", broker_port)
        client.subscribe("neuroclip/v1/demo/P001-pre/score", qos=1)
        client.loop_start()
        deadline = time.monotonic() + 60
        while len(scores) < 3:
            assert demo.poll() is None, "".join(lines)
            assert time.monotonic() < deadline, "no score on the broker within 60 s"
            time.sleep(0.2)
        assert all(s["schema"] == "neuroclip.score/1" for s in scores)
        children = _children_of(demo.pid)
        assert len(children) == 4, children  # broker, patient, monitor, dashboard
        demo.send_signal(signal.SIGINT)  # Ctrl-C
        assert demo.wait(60) in (0, 130)
    finally:
        client.loop_stop()
        if demo.poll() is None:
            demo.kill()
            demo.wait(10)
    reader.join(5)
    demo.stdout.close()
    time.sleep(0.5)
    left = [pid for pid in children if _alive(pid)]
    assert not left, f"processes left behind: {left}\n" + "".join(lines)
    assert "Traceback" not in "".join(lines)
    assert list((tmp_path / "sessions").rglob("*.scores.jsonl")), "the session log"
