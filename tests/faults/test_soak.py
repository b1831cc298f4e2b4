"""A soak: one hour of signal at ten times real time through the monitor and a real broker.

The monitor's resident memory is sampled every two seconds; growth from the tenth to the
sixtieth simulated minute must stay bounded. The figures are printed and written to
``test-artifacts/soak.json`` (docs/reliability.md quotes them).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.faults.helpers import rss_mib
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

SIMULATED_S = 3600.0
SPEED = 10.0
MAX_GROWTH_MIB = 24.0


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.timeout(900)
def test_an_hour_at_ten_times_real_time_keeps_memory_bounded(tmp_path, broker, lsl_env):
    prefix, session = unique("SOAK"), unique("s")
    sub = Subscriber(broker.port, f"neuroclip/v1/lab/{session}/score")
    mon = start_monitor(monitor_config(tmp_path, prefix, session, broker.port), lsl_env)
    sim = start_simulator(
        prefix, lsl_env, duration_s=SIMULATED_S, speed=SPEED, wait_for_consumer_s=30.0
    )
    log_dir = tmp_path / "logs"
    samples: list[tuple[float, int, float]] = []  # (wall s, windows logged, RSS MiB)
    started = time.monotonic()
    try:
        while sim.poll() is None and time.monotonic() - started < SIMULATED_S / SPEED + 90:
            assert mon.poll() is None, "the monitor died during the soak"
            samples.append((time.monotonic() - started, len(log_lines(log_dir)), rss_mib(mon.pid)))
            time.sleep(2.0)
        assert sim.poll() is not None, "the simulator did not finish in time"
        expected = int(SIMULATED_S - 14)
        wait_until(lambda: len(log_lines(log_dir)) >= expected, 30, f"{expected} windows")
        wait_until(lambda: len(sub.of("score")) >= expected, 30, "every score delivered")
        cpu = _cpu_s(mon.pid)
        samples.append((time.monotonic() - started, len(log_lines(log_dir)), rss_mib(mon.pid)))
    finally:
        stop(mon)
        stop(sim)
        sub.close()
    logged = read_log(log_dir)
    assert contiguous([m["seq"] for m in logged])
    assert not sub.invalid
    # windows per simulated minute: one per second with a 1 s hop
    at_10 = next(s for s in samples if s[1] >= 600)
    last = samples[-1]
    growth = last[2] - at_10[2]
    report = {
        "simulated_s": SIMULATED_S,
        "speed": SPEED,
        "wall_s": round(last[0], 1),
        "windows": len(logged),
        "usable": sum(m["usable"] for m in logged),
        "rss_mib_at_10_min": round(at_10[2], 1),
        "rss_mib_at_end": round(last[2], 1),
        "rss_mib_peak": round(max(s[2] for s in samples), 1),
        "growth_mib_10_to_60_min": round(growth, 1),
        "monitor_cpu_s": round(cpu, 1),
        "samples": [[round(t, 1), n, round(r, 1)] for t, n, r in samples],
    }
    artifacts = REPO / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    (artifacts / "soak.json").write_text(json.dumps(report, indent=1))
    print({k: v for k, v in report.items() if k != "samples"})
    assert growth < MAX_GROWTH_MIB, report
