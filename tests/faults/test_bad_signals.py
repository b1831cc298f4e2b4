"""Bad signals from a real (simulated) acquisition: every fault is flagged, no NaN is published.

One ``neuroclip simulate --live`` run at twice real time injects, in simulated seconds:
a NaN burst in two EEG channels (30-31 s), an infinite burst in one fNIRS channel (45-46 s),
a flat and a railing EEG channel (60-80 s) and a saturated fNIRS detector (90-110 s). A real
monitor scores it through a real Mosquitto; the test reads every message strictly (NaN and
infinity refused) and checks each window that holds a fault.
"""

from __future__ import annotations

import json
import math

import pytest

from tests.faults.helpers import simulator_yaml, window_times
from tests.live_parts import (
    Subscriber,
    contiguous,
    log_lines,
    monitor_config,
    start_monitor,
    start_simulator,
    stop,
    unique,
    wait_until,
)

pytestmark = pytest.mark.integration

WARMUP_S = 2.0
FAULTS = [
    {"kind": "nan", "stream": "eeg", "start_s": 30, "duration_s": 1, "channels": ["Fz", "Cz"]},
    {"kind": "inf", "stream": "nirs", "start_s": 45, "duration_s": 1, "channels": ["S4_D3 760"]},
    {"kind": "flat", "stream": "eeg", "start_s": 60, "duration_s": 20, "channels": ["O1"]},
    {"kind": "rail", "stream": "eeg", "start_s": 60, "duration_s": 20, "channels": ["T7"]},
    {
        "kind": "saturate",
        "stream": "nirs",
        "start_s": 90,
        "duration_s": 20,
        "channels": ["S7_D5 850"],
    },
]
SIMULATED_S = 135.0


def _overlaps(span: tuple[float, float], start: float, end: float) -> bool:
    return span[0] < end and span[1] > start


def _inside(span: tuple[float, float], start: float, end: float) -> bool:
    return span[0] >= start and span[1] <= end


def test_bad_samples_and_channels_are_flagged_and_never_published_as_nan(tmp_path, broker, lsl_env):
    prefix, session = unique("BAD"), unique("s")
    sub = Subscriber(broker.port, f"neuroclip/v1/lab/{session}/#")
    config = monitor_config(
        tmp_path, prefix, session, broker.port, **{"windows.warmup_s": WARMUP_S}
    )
    mon = start_monitor(config, lsl_env)
    sim = start_simulator(
        prefix,
        lsl_env,
        duration_s=SIMULATED_S,
        config=simulator_yaml(tmp_path, FAULTS, rtms=False),
        speed=2.0,
        wait_for_consumer_s=30.0,  # the monitor sees sample 0, so window times map to faults
    )
    log_dir = tmp_path / "logs"
    try:
        wait_until(lambda: sim.poll() is not None, SIMULATED_S / 2 + 60, "the simulator's end")
        wait_until(lambda: len(sub.of("score")) >= len(log_lines(log_dir)), 20, "all scores")
        assert mon.poll() is None, "bad samples must not stop the monitor"
    finally:
        out = stop(mon)
        stop(sim)
        sub.close()
    assert not sub.invalid, sub.invalid[:5]
    # no raw signal leaves over MQTT: only the five message kinds, none carrying samples
    kinds = {topic.rsplit("/", 1)[1] for topic, _, _ in sub.messages}
    assert kinds <= {"score", "quality", "status", "event", "summary"}, kinds
    assert max(len(json.dumps(m)) for _, m, _ in sub.messages) < 16_000
    scores = sub.of("score")
    quality = {m["seq"]: m for m in sub.of("quality")}
    assert contiguous([m["seq"] for m in scores]), "scores skipped or repeated"
    assert len(scores) >= 100, len(scores)
    # the protocol's first marker, "rest", is stamped at the simulator's first sample
    first_marker = next(m for m in sub.of("event") if m["label"] == "rest")
    t_start = first_marker["time"]

    def windows(predicate) -> list[dict]:
        return [m for m in scores if predicate(window_times(m, t_start))]

    # a NaN burst in the EEG: every window holding one is unusable, with no score
    hit = windows(lambda span: _overlaps(span, 30, 31))
    assert len(hit) >= 8, len(hit)
    assert all("nonfinite" in m["quality"]["reasons"] for m in hit), [
        (window_times(m, t_start), m["quality"]["reasons"]) for m in hit
    ]
    assert all(m["score"] is None and m["interval"] is None for m in hit)
    # an infinite burst on one fNIRS channel: its pair is flagged and left out, the window is
    # scored from the other pairs
    hit = windows(lambda span: _overlaps(span, 45, 46))
    assert len(hit) >= 8, len(hit)
    for m in hit:
        assert m["quality"]["nirs"]["saturated_pairs"] == ["S4_D3"], m["quality"]
        assert "nonfinite" not in m["quality"]["reasons"]
    assert sum(m["usable"] for m in hit) >= 5
    # a flat and a railing EEG channel: named in every window that lies inside the fault
    inside = windows(lambda span: _inside(span, 60, 80))
    assert len(inside) >= 8
    for m in inside:
        flags = quality[m["seq"]]["eeg"]["flags"]
        assert "O1" in flags["flat"] and "T7" in flags["railing"], flags
        assert {"O1", "T7"} <= set(m["quality"]["eeg"]["bad_channels"])
    # a saturated fNIRS detector: its pair is flagged while it lasts, not before
    saturated = windows(lambda span: _inside(span, 90, 110))
    before = windows(lambda span: _inside(span, 12, 30))
    assert len(saturated) >= 8 and len(before) >= 5
    assert all("S7_D5" in m["quality"]["nirs"]["bad_pairs"] for m in saturated)
    assert all("S7_D5" in m["quality"]["nirs"]["saturated_pairs"] for m in saturated)
    assert not any("S7_D5" in m["quality"]["nirs"]["bad_pairs"] for m in before)
    # scoring goes on around and after the faults, and every published number is finite
    after = windows(lambda span: span[0] >= 112)
    assert sum(m["usable"] for m in after) >= 3, [m["quality"]["reasons"] for m in after]
    assert sum(m["usable"] for m in before) >= 3
    for m in scores:
        if m["usable"]:
            assert 0.0 <= m["score"] <= 1.0 and all(math.isfinite(v) for v in m["interval"])
    assert "Traceback" not in out
