"""``neuroclip simulate --live`` as a real process with real LSL outlets, read by pylsl."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid

import numpy as np
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DURATION_S = 30.0


def test_live_streams_arrive_complete_without_loss_or_duplicates(lsl_env):
    import pylsl

    prefix = f"T{uuid.uuid4().hex[:8]}"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "neuroclip",
            "simulate",
            "--live",
            "--duration",
            str(DURATION_S),
            "--name-prefix",
            prefix,
            "--wait-consumers",
            "20",
        ],
        env=lsl_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        inlets = {}
        for kind in ("EEG", "NIRS", "Markers"):
            found = pylsl.resolve_byprop("name", f"{prefix}-{kind}", timeout=15)
            assert found, f"stream {prefix}-{kind} not found"
            inlets[kind] = pylsl.StreamInlet(found[0], max_buflen=int(DURATION_S) + 30)
            inlets[kind].open_stream(timeout=10)
        info = inlets["EEG"].info()
        labels = []
        ch = info.desc().child("channels").child("channel")
        while not ch.empty():
            labels.append(ch.child_value("label"))
            ch = ch.next_sibling()
        assert len(labels) == 33 and labels[-1] == "counter" and labels[3] == "F3"
        received = {k: [] for k in inlets}
        stamps = {k: [] for k in inlets}
        deadline = time.monotonic() + DURATION_S + 30
        while proc.poll() is None and time.monotonic() < deadline:
            for kind, inlet in inlets.items():
                data, ts = inlet.pull_chunk(timeout=0.0)
                received[kind].extend(data)
                stamps[kind].extend(ts)
            time.sleep(0.05)
        for kind, inlet in inlets.items():  # drain what arrived before the outlets closed
            data, ts = inlet.pull_chunk(timeout=0.5)
            received[kind].extend(data)
            stamps[kind].extend(ts)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    for kind, rate in (("EEG", 500.0), ("NIRS", 10.0)):
        counter = np.asarray(received[kind])[:, -1]
        expected = int(DURATION_S * rate)
        np.testing.assert_array_equal(
            counter, np.arange(expected), err_msg=f"{kind} lost or repeated"
        )
        steps = np.diff(stamps[kind])
        assert np.allclose(steps, 1 / rate, atol=1e-6)
    labels = {row[0] for row in received["Markers"]}
    assert {"rest", "rtms/train_start", "rtms/pulse"} <= labels
    assert f"{int(DURATION_S * 500)} EEG samples" in out


@pytest.mark.parametrize("wait_consumers", ["0", "120"], ids=["streaming", "waiting-for-readers"])
def test_sigterm_stops_the_simulator_cleanly(lsl_env, wait_consumers):
    """``docker stop`` sends SIGTERM: the simulator ends at once with exit 0 and its totals,
    whether it streams or still waits for a reader (no reader here)."""
    argv = [sys.executable, "-m", "neuroclip", "simulate", "--live", "--duration", "600"]
    argv += ["--name-prefix", f"T{uuid.uuid4().hex[:8]}", "--wait-consumers", wait_consumers]
    proc = subprocess.Popen(argv, env=lsl_env, stdout=subprocess.PIPE, text=True)
    try:
        expected = "streaming " if wait_consumers == "0" else "outlets up"
        lines = []
        while not any(line.startswith(expected) for line in lines):
            line = proc.stdout.readline()
            assert line, f"the simulator ended before {expected!r}: {lines}"
            lines.append(line)
        time.sleep(1.0)
        stopped_at = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=15)
        took = time.monotonic() - stopped_at
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert out.splitlines()[-1].startswith("stopped: "), out
    if wait_consumers != "0":
        assert "streaming" not in out, "a stop while waiting sends nothing"
    assert took < 5.0, f"the stop took {took:.1f} s"
