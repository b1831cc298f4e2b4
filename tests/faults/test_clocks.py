"""Clock faults: EEG and fNIRS devices drifting 200 ppm apart, and clock jumps.

A real simulator whose devices' sample clocks are off (``live.*_clock_ppm``) or jump
(``clock_jump`` faults) streams into a real monitor; the session log shows whether windows
stayed aligned or were flagged.
"""

from __future__ import annotations

import pytest

from tests.faults.helpers import simulator_yaml
from tests.live_parts import (
    Subscriber,
    contiguous,
    log_lines,
    monitor_config,
    read_log,
    start_monitor,
    start_simulator,
    stop,
    unique,
    wait_until,
)

pytestmark = pytest.mark.integration

STREAM_TROUBLE = ("_misaligned", "_gap", "_late", "_lost", "_restart", "_incomplete")


def _run(tmp_path, lsl_env, port, simulated_s: float, speed: float, **live):
    prefix, session = unique("CLK"), unique("s")
    sub = Subscriber(port, f"neuroclip/v1/lab/{session}/event") if port else None
    config = monitor_config(tmp_path, prefix, session, port, **{"windows.warmup_s": 2.0})
    mon = start_monitor(config, lsl_env)
    faults = live.pop("faults", [])
    sim = start_simulator(
        prefix,
        lsl_env,
        duration_s=simulated_s,
        config=simulator_yaml(tmp_path, faults, rtms=False, **live),
        speed=speed,
        wait_for_consumer_s=30.0,
    )
    log_dir = tmp_path / "logs"
    try:
        wait_until(lambda: sim.poll() is not None, simulated_s / speed + 60, "the simulator's end")
        # once the outlets are gone their windows are published as lost: all data is in
        wait_until(lambda: any(_lost(m) for m in log_lines(log_dir)), 60, "the stream's end")
        assert mon.poll() is None
    finally:
        out = stop(mon)
        stop(sim)
        if sub is not None:
            sub.close()
    logged = read_log(log_dir)
    assert contiguous([m["seq"] for m in logged]), "windows skipped or repeated"
    assert "Traceback" not in out
    end = next(i for i, m in enumerate(logged) if _lost(m))
    return logged[:end], out, sub


def _lost(message: dict) -> bool:
    return any(r.endswith("_lost") for r in message["quality"]["reasons"])


def test_devices_drifting_200_ppm_apart_stay_aligned(tmp_path, lsl_env):
    # ten minutes of signal at ten times real time: the clocks part by 120 ms, six times the
    # 20 ms a window may be off before it is flagged misaligned
    logged, _, _ = _run(
        tmp_path, lsl_env, None, 600.0, 10.0, eeg_clock_ppm=-100.0, nirs_clock_ppm=100.0
    )
    assert len(logged) >= 550
    troubled = [
        (m["seq"], m["quality"]["reasons"])
        for m in logged
        if any(r.endswith(STREAM_TROUBLE) for r in m["quality"]["reasons"])
    ]
    assert not troubled, troubled[:5]
    assert sum(m["usable"] for m in logged) >= 0.9 * len(logged)


def test_clock_jumps_are_corrected_and_windows_stay_aligned(tmp_path, broker, lsl_env):
    # the devices' clocks jump while their samples keep coming: the monitor takes each step
    # out of later timestamps (tests/streamer/test_scheduler.py shows the windows are then
    # sample for sample those of a session without jumps) and says so in an event
    jumps = [
        {"kind": "clock_jump", "stream": "nirs", "start_s": 40, "value": 5.0},
        {"kind": "clock_jump", "stream": "eeg", "start_s": 80, "value": -1.0},
    ]
    logged, out, sub = _run(tmp_path, lsl_env, broker.port, 140.0, 2.0, faults=jumps)
    events = sorted(
        (m for m in sub.of("event") if m["label"] == "stream/clock_jump"), key=lambda m: m["role"]
    )
    assert [(m["role"], m["corrected"]) for m in events] == [("eeg", True), ("nirs", True)]
    assert [m["step_s"] for m in events] == pytest.approx([-1.0, 5.0], abs=0.01)
    assert out.count("clock jump") >= 2, out[-3000:]
    troubled = [
        (m["seq"], m["quality"]["reasons"])
        for m in logged
        if any(r.endswith(STREAM_TROUBLE) for r in m["quality"]["reasons"])
    ]
    assert not troubled, troubled[:5]
    assert len(logged) >= 100
    assert sum(m["usable"] for m in logged) >= 0.9 * len(logged)
    assert all(m["score"] is None for m in logged if not m["usable"])
