"""Real parts for the live tests: a Mosquitto broker, simulated LSL outlets, the monitor.

Each process is started by a fixture or helper and always stopped; names (LSL streams, MQTT
sessions) are unique per test so that tests never see each other's streams or topics.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.conftest import REPO, missing_tool

# the monitor runs in a child process where torch cannot be imported: the proof that the
# live path never needs it
NO_TORCH_MAIN = REPO / "tests" / "streamer" / "no_torch_main.py"


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """A real Mosquitto on loopback with persistence (so QoS 1 sessions survive a restart)."""

    def __init__(self, folder: Path):
        self.binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(self.binary).exists():
            missing_tool("mosquitto", "scripts/test.sh installs it (apt-get install mosquitto)")
        self.port = free_port()
        self.folder = folder
        self.conf = folder / "mosquitto.conf"
        self.conf.write_text(
            f"user root\nlistener {self.port} 127.0.0.1\nallow_anonymous true\n"
            "set_tcp_nodelay true\n"
            f"persistence true\npersistence_location {folder}/\nautosave_interval 1\n"
            f"log_dest file {folder}/mosquitto.log\n"
        )
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen([self.binary, "-c", str(self.conf)])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        self.stop()
        pytest.fail(f"mosquitto did not listen on port {self.port} within 10 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    def kill(self) -> None:
        """SIGKILL, as a crash: only what autosave (every second) wrote survives."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None


@dataclass
class Subscriber:
    """An independent MQTT subscriber (paho in its own thread), persistent QoS 1 session."""

    port: int
    topic: str
    messages: list[tuple[str, dict, float]] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)
    """Payloads that were not strict JSON (a NaN, say), with their topic."""

    def __post_init__(self):
        import paho.mqtt.client as mqtt

        self._lock = threading.Lock()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=f"test-sub-{uuid.uuid4().hex[:8]}",
            clean_session=False,
        )
        self.client.reconnect_delay_set(0.1, 0.5)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(self.topic, qos=1)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", self.port, keepalive=5)
        self.client.loop_start()

    def _on_message(self, client, userdata, msg) -> None:
        import pylsl

        try:  # NaN and infinities are not JSON; json.loads would accept them
            message = json.loads(msg.payload, parse_constant=_refuse_non_finite)
        except ValueError as exc:
            with self._lock:
                self.invalid.append(f"{msg.topic}: {exc}")
            return
        with self._lock:
            self.messages.append((msg.topic, message, pylsl.local_clock()))

    def of(self, kind: str) -> list[dict]:
        with self._lock:
            return [m for t, m, _ in self.messages if t.endswith("/" + kind)]

    def wait_for(self, predicate, timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate(self):
                return
            time.sleep(0.1)
        pytest.fail(f"timed out after {timeout_s:g} s waiting for {what}")

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _refuse_non_finite(name: str) -> float:
    raise ValueError(f"non-finite number {name}")


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:6]}"


def start_simulator(
    prefix: str, lsl_env: dict, duration_s: float = 120.0, config: Path | None = None, **live
) -> subprocess.Popen:
    """``neuroclip simulate --live`` with stream names ``<prefix>-EEG`` etc.; ``live`` keys
    become environment overrides of ``live.*``, ``config`` a YAML (faults, say)."""
    env = {**lsl_env}
    for key, value in live.items():
        env[f"NEUROCLIP_SIMULATE__LIVE__{key.upper()}"] = str(value)
    env["NEUROCLIP_SIMULATE__LIVE__DURATION_S"] = str(duration_s)
    argv = [sys.executable, "-m", "neuroclip", "simulate", "--live", "--name-prefix", prefix]
    if config is not None:
        argv += ["--config", str(config)]
    return subprocess.Popen(
        argv,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=REPO,
    )


def monitor_config(tmp_path: Path, prefix: str, session: str, port: int | None, **extra) -> Path:
    """A monitor YAML for the simulator's streams: 2 s warm-up, 1 s hop, 1 s status."""
    cfg = {
        "site": "lab",
        "session": session,
        "status_interval_s": 1.0,
        "streams": {
            "eeg": {"name": f"{prefix}-EEG"},
            "nirs": {"name": f"{prefix}-NIRS"},
            "markers": {"name": f"{prefix}-Markers"},
            "resolve_timeout_s": 20.0,
        },
        "windows": {"warmup_s": 2.0, "hop_s": 1.0, "max_wait_s": 2.0},
        "mqtt": {"enabled": port is not None, "port": port or 1883},
        "log": {"dir": str(tmp_path / "logs")},
    }
    for dotted, value in extra.items():
        target = cfg
        *parents, last = dotted.split(".")
        for p in parents:
            target = target.setdefault(p, {})
        target[last] = value
    path = tmp_path / f"{session}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def start_cli(argv: list[str], env: dict, output: Path) -> subprocess.Popen:
    """A child process whose output goes to ``output`` (a pipe could fill and stall it);
    :func:`stop` returns it."""
    handle = output.open("w")
    proc = subprocess.Popen(argv, env=env, stdout=handle, stderr=subprocess.STDOUT, cwd=REPO)
    handle.close()
    proc.output_path = output  # type: ignore[attr-defined]
    return proc


def start_monitor(config: Path, lsl_env: dict, *args: str) -> subprocess.Popen:
    """The monitor CLI in a child process where torch is unimportable; its output goes to
    a file beside ``config``."""
    return start_cli(
        [sys.executable, str(NO_TORCH_MAIN), "monitor", "--config", str(config), *args],
        {**lsl_env, "PYTHONPATH": str(REPO)},
        config.with_suffix(".out"),
    )


def stop(proc: subprocess.Popen, timeout_s: float = 15.0) -> str:
    """Interrupt a child like Ctrl-C, wait, and return its output."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        out, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    path = getattr(proc, "output_path", None)
    if path is not None:
        return path.read_text(errors="replace")
    if isinstance(out, bytes):
        out = out.decode(errors="replace")
    return out or ""


def read_log(folder: Path) -> list[dict]:
    """Every score line of the (single) session log under ``folder``."""
    files = sorted(folder.rglob("*.scores.jsonl"))
    assert len(files) == 1, files
    return [json.loads(line) for line in files[0].read_text().splitlines()]


def log_lines(folder: Path) -> list[dict]:
    """Every complete line of the (single) session log under ``folder`` so far."""
    files = sorted(folder.rglob("*.scores.jsonl")) if folder.exists() else []
    if not files:
        return []
    text = files[0].read_text()
    return [json.loads(x) for x in text[: text.rfind("\n") + 1].splitlines() if x.strip()]


def wait_until(predicate, timeout_s: float, what: str) -> None:
    """Poll ``predicate`` until true; fail the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout_s:g} s waiting for {what}")


def contiguous(seqs: list[int]) -> bool:
    """Whether sequence numbers run 0, 1, 2... with nothing skipped or repeated."""
    return seqs == list(range(len(seqs)))


os.environ.setdefault("PYTHONUNBUFFERED", "1")


def write_xdf(
    recording,
    path: Path,
    *,
    seconds: float | None = None,
    rename=None,
    units: dict[str, str] | None = None,
) -> Path:
    """``recording`` as an XDF file, streams interleaved second by second as a recorder
    writes them, described as an acquisition system's outlets would describe them
    (``units`` overrides the unit written per kind, e.g. ``{"nirs": "OD"}``)."""
    import pylsl

    from models.io.stream_desc import channel_entries
    from models.io.xdf_writer import XdfWriter
    from streamer.lsl.outlets import stream_info

    blocks = (recording.eeg, recording.nirs)
    with XdfWriter(path) as writer:
        ids = []
        for block in blocks:
            names = [rename(c) if rename else c for c in block.ch_names]
            channels = channel_entries(block, names)
            if units and block.kind in units:
                channels = [{**c, "unit": units[block.kind]} for c in channels]
            info = stream_info(pylsl, block.name, block.kind.upper(), block.sfreq, "", channels)
            ids.append(
                writer.add_stream(
                    block.name,
                    block.kind.upper(),
                    len(channels) + 1,
                    block.sfreq,
                    "float32",
                    desc_xml=info.as_xml(),
                )
            )
        mid = writer.add_stream("Markers", "Markers", 1, 0.0, "string")
        total = min(b.n_samples / b.sfreq for b in blocks) if seconds is None else seconds
        marks = recording.markers
        for second in range(int(np.ceil(total))):
            for sid, block in zip(ids, blocks, strict=True):
                start = round(second * block.sfreq)
                stop = min(round(min(second + 1, total) * block.sfreq), block.n_samples)
                if stop > start:
                    counter = np.arange(start, stop, dtype=float)[:, None]
                    writer.write_samples(
                        sid,
                        1000.0 + block.times[start:stop],
                        np.hstack([block.data[start:stop], counter]),
                    )
            now = [i for i, t in enumerate(marks.times) if second <= t < second + 1]
            if now:
                writer.write_samples(
                    mid, 1000.0 + marks.times[now], [[marks.labels[i]] for i in now]
                )
    return path
