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

from streamer.schema import SCORE_SCHEMA
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
    assert sub.of("summary")[-1]["usable"] == len(logged)


def test_monitor_recovers_after_the_outlets_restart(tmp_path, lsl_env):
    prefix, session = unique("RST"), unique("s")
    sim = start_simulator(prefix, lsl_env)
    config = monitor_config(tmp_path, prefix, session, None)
    mon = start_monitor(config, lsl_env)
    try:
        log_dir = tmp_path / "logs"
        _wait(lambda: log_dir.exists() and len(_lines(log_dir)) >= 3, 40, "first scores")
        stop(sim)
        time.sleep(3.0)
        sim = start_simulator(prefix, lsl_env)
        _wait(
            lambda: (
                any(m["usable"] and m["seq"] > 8 for m in _lines(log_dir)[5:])
                and _restarted(_lines(log_dir))
            ),
            60,
            "usable scores after the restart",
        )
        assert mon.poll() is None, "the monitor must not exit when an outlet disappears"
    finally:
        out = stop(mon)
        stop(sim)
    logged = read_log(tmp_path / "logs")
    assert _contiguous([m["seq"] for m in logged]), "sequence numbers skipped or repeated"
    reasons = {r for m in logged for r in m["quality"]["reasons"]}
    assert reasons & {"eeg_lost", "eeg_restart", "eeg_late", "warmup"}, reasons
    assert all(m["score"] is None for m in logged if not m["usable"])
    assert "lost (outlet gone)" in out, out[-2000:]


def _restarted(lines: list[dict]) -> bool:
    seen_bad = False
    for m in lines:
        if not m["usable"]:
            seen_bad = True
        elif seen_bad:
            return True
    return False


def _lines(folder) -> list[dict]:
    files = sorted(folder.rglob("*.scores.jsonl"))
    if not files:
        return []
    return [json.loads(x) for x in files[0].read_text().splitlines() if x.strip()]


def _wait(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout_s:g} s waiting for {what}")


def test_scores_published_while_the_broker_is_down_arrive_in_order(tmp_path, broker, lsl_env):
    prefix, session = unique("BRK"), unique("s")
    sub = Subscriber(broker.port, f"neuroclip/v1/lab/{session}/score")
    sim = start_simulator(prefix, lsl_env)
    config = monitor_config(tmp_path, prefix, session, broker.port)
    mon = start_monitor(config, lsl_env)
    try:
        sub.wait_for(lambda s: len(s.of("score")) >= 2, 40, "scores before the broker stops")
        broker.stop()
        down_from = time.time()
        time.sleep(5.0)  # about five windows are scored while the broker is away
        down_until = time.time()
        broker.start()
        log_dir = tmp_path / "logs"
        logged_when_up = len(_lines(log_dir))
        _wait(lambda: len(_lines(log_dir)) >= logged_when_up + 3, 30, "scores after the restart")
        target = _lines(log_dir)[-1]["seq"]
        sub.wait_for(
            lambda s: any(m["seq"] >= target for m in s.of("score")), 30, "queued scores delivered"
        )
    finally:
        out = stop(mon)
        stop(sim)
        sub.close()
    logged = read_log(tmp_path / "logs")
    received = sub.of("score")
    seqs = [m["seq"] for m in received]
    deduplicated = list(dict.fromkeys(seqs))  # QoS 1 may deliver a message twice
    assert deduplicated == sorted(deduplicated), "scores arrived out of order"
    logged_seqs = [m["seq"] for m in logged if m["seq"] <= deduplicated[-1]]
    assert deduplicated == logged_seqs, "a score in the session log never reached the broker"
    while_down = [m for m in logged if down_from < m["emitted_unix"] < down_until]
    assert len(while_down) >= 3, "the test must score windows while the broker is down"
    assert "unreachable" in out, out[-2000:]


def _outlets(prefix: str, eeg_labels: list[str], eeg_rate: float, nirs_rate: float):
    import pylsl

    from models.simulation.montage import NIRS_WAVELENGTHS, nirs_pairs

    nirs_labels = [f"{p.name} {w:g}" for p in nirs_pairs() for w in NIRS_WAVELENGTHS]
    outlets = []
    for kind, labels, rate in (("EEG", eeg_labels, eeg_rate), ("NIRS", nirs_labels, nirs_rate)):
        info = pylsl.StreamInfo(
            f"{prefix}-{kind}", kind, len(labels), rate, pylsl.cf_float32, prefix + kind
        )
        chans = info.desc().append_child("channels")
        for label in labels:
            channel = chans.append_child("channel")
            channel.append_child_value("label", label)
            channel.append_child_value("distance", "0.03")
        outlets.append((pylsl.StreamOutlet(info), len(labels)))
    return outlets


@pytest.mark.parametrize(
    ("eeg_labels", "eeg_rate", "nirs_rate", "field"),
    [
        (["Fp1", "Fp2", "Cz", "Pz"], 500.0, 10.0, "inputs.eeg.channels"),
        (None, 500.0, 4.0, "inputs.nirs.sfreq"),
    ],
    ids=["eeg-channels", "nirs-rate"],
)
def test_monitor_refuses_streams_the_bundle_does_not_fit(
    tmp_path, lsl_env, eeg_labels, eeg_rate, nirs_rate, field
):
    import numpy as np

    from models.simulation.montage import EEG_CHANNELS

    prefix = unique("MIS")
    outlets = _outlets(prefix, eeg_labels or list(EEG_CHANNELS), eeg_rate, nirs_rate)
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
