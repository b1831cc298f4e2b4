"""The monitor end to end with real parts: LSL outlets, Mosquitto, the default bundle, MQTT.

Every test runs ``neuroclip monitor`` as a child process in which torch cannot be imported,
against ``neuroclip simulate --live`` outlets with unique names, and checks what an
independent subscriber and the session log received.
"""

from __future__ import annotations

import itertools
import json
import time

import jsonschema
import pytest

from contract.messages import SCORE_SCHEMA
from tests.live_parts import (
    Subscriber,
    monitor_config,
    read_log,
    start_monitor,
    start_simulator,
    stop,
    unique,
)

pytestmark = pytest.mark.integration


def _contiguous(seqs: list[int]) -> bool:
    return seqs == list(range(seqs[0], seqs[0] + len(seqs)))


def test_monitor_scores_a_live_session_to_mqtt_lsl_and_the_log(tmp_path, broker, lsl_env):
    import pylsl
    from pylsl.util import LostError

    prefix, session = unique("E2E"), unique("s")
    sub = Subscriber(broker.port, f"neuroclip/v1/lab/{session}/#")
    sim = start_simulator(prefix, lsl_env)
    config = monitor_config(tmp_path, prefix, session, broker.port)
    mon = start_monitor(config, lsl_env, "--duration", "24")
    lsl_samples: list = []
    lsl_stamps: list = []
    try:
        found = pylsl.resolve_bypred(f"name='NeuroCLIP-Scores-lab-{session}'", 1, 20.0)
        assert found, "the LSL score stream did not appear"
        inlet = pylsl.StreamInlet(found[0], recover=False)
        inlet.open_stream(timeout=5.0)
        while mon.poll() is None:
            try:
                samples, stamps = inlet.pull_chunk(timeout=0.2)
            except LostError:
                break
            lsl_samples.extend(samples)
            lsl_stamps.extend(stamps)
        mon.wait(60)
        out = stop(mon)
        assert mon.returncode == 0, out
    finally:
        stop(mon)
        stop(sim)
    sub.wait_for(lambda s: any(m["state"] == "offline" for m in s.of("status")), 10, "offline")
    sub.close()
    logged = read_log(tmp_path / "logs")
    published = sub.of("score")
    assert len(logged) >= 8, out
    # every window scored once, in order, and the log and MQTT agree
    assert [m["seq"] for m in logged] == list(range(len(logged)))
    assert published == logged
    for message in logged:
        jsonschema.validate(message, SCORE_SCHEMA)
    assert all(m["usable"] and m["score"] is not None for m in logged), [
        m["quality"]["reasons"] for m in logged
    ]
    ends = [m["window"]["end"] for m in logged]
    assert all(abs(b - a - 1.0) < 1e-6 for a, b in itertools.pairwise(ends))
    assert logged[0]["latency_ms"]["inference"] > 0
    # the LSL score stream carries the same messages stamped with the window end
    from_lsl = [json.loads(row[0]) for row in lsl_samples]
    assert len(from_lsl) >= len(logged) - 2  # the last may leave after the inlet stopped
    assert from_lsl == logged[: len(from_lsl)]
    for stamp, message in zip(lsl_stamps, from_lsl, strict=True):
        assert stamp == pytest.approx(message["window"]["end"], abs=1e-6)
    # no sample lost or duplicated on the way in (the counter channel)
    status = [m for m in sub.of("status") if m["state"] == "online"][-1]
    for role, rate in (("eeg", 500), ("nirs", 10)):
        stream = status["streams"][role]
        assert stream["gaps"] == 0 and stream["duplicates"] == 0, stream
        assert stream["samples"] > 15 * rate
    assert len(sub.of("quality")) == len(logged)
    summary = sub.of("summary")[-1]
    assert summary["usable"] == len(logged) and summary["schema"] == "neuroclip.summary/2"
    assert summary["estimate"]["session"]["windows"] == len(logged)
    assert logged[-1]["estimate"]["session"] == summary["estimate"]["session"]
    # the final status tells the truth: the real counts, why and when it stopped
    final = [m for m in sub.of("status") if m["state"] == "offline"][-1]
    assert final["windows"]["emitted"] == len(logged) and final["windows"]["usable"] == len(logged)
    assert final["stopped"]["reason"] == "duration reached"
    assert final["stopped"]["ended_unix"] >= final["started_unix"]
    assert final["streams"]["eeg"]["samples"] > 15 * 500
    last = out.strip().splitlines()[-1]
    assert last.startswith(f"monitor stopped (duration reached): {len(logged)} window(s) scored")
    assert "not delivered" not in last
    assert "Traceback" not in out, out[-3000:]


def test_a_stop_with_the_broker_down_says_what_was_not_delivered(tmp_path, broker, lsl_env):
    """Ctrl-C while the broker is away: a clean stop whose last line counts the messages the
    broker never took; the session log holds every score."""
    import signal

    prefix, session = unique("UND"), unique("s")
    sub = Subscriber(broker.port, f"neuroclip/v1/lab/{session}/#")
    sim = start_simulator(prefix, lsl_env)
    mon = start_monitor(monitor_config(tmp_path, prefix, session, broker.port), lsl_env)
    try:
        sub.wait_for(lambda s: len(s.of("score")) >= 3, 60, "three scores")
        sub.close()
        broker.stop()
        logs = tmp_path / "logs"
        before = len(read_log(logs))
        deadline = time.monotonic() + 30
        while len(read_log(logs)) < before + 4 and time.monotonic() < deadline:
            time.sleep(0.2)
        mon.send_signal(signal.SIGINT)
        assert mon.wait(30) == 0, "Ctrl-C is a clean stop"
        out = stop(mon)
    finally:
        stop(mon)
        stop(sim)
    last = out.strip().splitlines()[-1]
    logged = read_log(tmp_path / "logs")
    assert last.startswith(f"monitor stopped (Ctrl-C): {len(logged)} window(s) scored"), last
    undelivered = int(last.split("; ")[-1].split(" message(s) not delivered")[0])
    assert undelivered >= 4, last
    assert "Traceback" not in out


def _outlets(prefix: str, eeg_labels: list[str], eeg_rate: float, nirs_rate: float, nirs_unit: str):
    import pylsl

    from models.simulation.montage import NIRS_WAVELENGTHS, nirs_pairs

    nirs_labels = [f"{p.name} {w:g}" for p in nirs_pairs() for w in NIRS_WAVELENGTHS]
    outlets = []
    streams = (
        ("EEG", eeg_labels, eeg_rate, "microvolts"),
        ("NIRS", nirs_labels, nirs_rate, nirs_unit),
    )
    for kind, labels, rate, unit in streams:
        info = pylsl.StreamInfo(
            f"{prefix}-{kind}", kind, len(labels), rate, pylsl.cf_float32, prefix + kind
        )
        chans = info.desc().append_child("channels")
        for label in labels:
            channel = chans.append_child("channel")
            channel.append_child_value("label", label)
            channel.append_child_value("unit", unit)
            channel.append_child_value("distance", "0.03")
        outlets.append((pylsl.StreamOutlet(info), len(labels)))
    return outlets


@pytest.mark.parametrize(
    ("eeg_labels", "eeg_rate", "nirs_rate", "nirs_unit", "field"),
    [
        (["Fp1", "Fp2", "Cz", "Pz"], 500.0, 10.0, "a.u.", "inputs.eeg.channels"),
        (None, 500.0, 4.0, "a.u.", "inputs.nirs.sfreq"),
        (None, 500.0, 10.0, "", "channel 'S1_D1 760' has no unit"),
    ],
    ids=["eeg-channels", "nirs-rate", "nirs-unit"],
)
def test_monitor_refuses_streams_the_bundle_does_not_fit(
    tmp_path, lsl_env, eeg_labels, eeg_rate, nirs_rate, nirs_unit, field
):
    import numpy as np

    from models.simulation.montage import EEG_CHANNELS

    prefix = unique("MIS")
    outlets = _outlets(prefix, eeg_labels or list(EEG_CHANNELS), eeg_rate, nirs_rate, nirs_unit)
    mon = start_monitor(monitor_config(tmp_path, prefix, unique("s"), None), lsl_env)
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline and mon.poll() is None:
        for outlet, n in outlets:
            outlet.push_sample(np.zeros(n, np.float32))
        time.sleep(0.05)
    out = stop(mon, 30)
    assert mon.returncode == 2, out
    assert field in out and "Fix:" in out, out
    assert "Traceback" not in out


def test_monitor_says_which_stream_is_missing(tmp_path, lsl_env):
    config = monitor_config(
        tmp_path, unique("NONE"), unique("s"), None, **{"streams.resolve_timeout_s": 2.0}
    )
    mon = start_monitor(config, lsl_env)
    mon.wait(60)
    out = stop(mon)
    assert mon.returncode == 2, out
    # Both streams are missing: one refusal names both, whichever timed out first.
    assert "No LSL EEG stream matching name=" in out, out
    assert "No LSL NIRS stream matching name=" in out, out
    assert "streams.eeg, streams.nirs" in out and "Fix:" in out, out
    assert "Traceback" not in out
