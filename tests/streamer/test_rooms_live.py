"""Many rooms in one monitor process, with real parts: LSL outlets, Mosquitto, ONNX Runtime.

One ``neuroclip monitor --config rooms.yaml`` serves four rooms at once, each fed by its own
``neuroclip simulate --live``:

- ``calm``: a normal session. It must not notice the others: every window on time, in order
  and usable, no window waiting for another room's data.
- ``lost``: its streams vanish for a while and come back (the simulator is stopped and
  started again); the room reports the loss and scores again.
- ``bad``: NaN, infinite and railing samples; flagged in that room only, no NaN published.
- ``absent``: its streams never appear; the room ends with a fatal status of its own while
  the others go on.

Each room publishes under its own topics (status, score, summary) and has its own last will.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from tests.faults.helpers import simulator_yaml
from tests.live_parts import (
    Subscriber,
    contiguous,
    start_monitor,
    start_simulator,
    stop,
    unique,
    wait_until,
)

pytestmark = pytest.mark.integration

HOP_S = 1.0
BAD_FAULTS = [
    {"kind": "nan", "stream": "eeg", "start_s": 8, "duration_s": 1, "channels": ["Fz", "Cz"]},
    {"kind": "inf", "stream": "nirs", "start_s": 12, "duration_s": 1, "channels": ["S4_D3 760"]},
    {"kind": "rail", "stream": "eeg", "start_s": 16, "duration_s": 60, "channels": ["T7"]},
]


def _rooms_config(tmp_path: Path, prefixes: dict[str, str], port: int, **shared) -> Path:
    rooms = []
    for site, prefix in prefixes.items():
        room = {
            "site": site,
            "session": f"S-{site}",
            "streams": {
                "eeg": {"name": f"{prefix}-EEG"},
                "nirs": {"name": f"{prefix}-NIRS"},
                "markers": {"name": f"{prefix}-Markers"},
            },
        }
        if site == "absent":
            room["streams"]["resolve_timeout_s"] = 6.0
        rooms.append(room)
    data = {
        "status_interval_s": 1.0,
        "streams": {"resolve_timeout_s": 30.0},
        "windows": {"warmup_s": 2.0, "hop_s": HOP_S, "max_wait_s": 2.0},
        "mqtt": {"port": port},
        "log": {"dir": str(tmp_path / "logs")},
        "lsl_out": {"name": unique("Scores")},
        **shared,
        "rooms": rooms,
    }
    path = tmp_path / "rooms.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _of(sub: Subscriber, site: str, kind: str) -> list[dict]:
    return [m for m in sub.of(kind) if m["site"] == site]


def _not_offline(sub: Subscriber, sites: tuple[str, ...]) -> list[str]:
    """Rooms with no final (offline) status yet."""
    return [s for s in sites if not any(m["state"] == "offline" for m in _of(sub, s, "status"))]


def test_rooms_in_one_process_never_hold_each_other_up(tmp_path, broker, lsl_env):
    sites = ("calm", "lost", "bad", "absent")
    prefixes = {site: unique(site[:3].upper()) for site in sites}
    sub = Subscriber(broker.port, "neuroclip/v1/+/+/#")
    faults = simulator_yaml(tmp_path, BAD_FAULTS)
    sims = {
        "calm": start_simulator(prefixes["calm"], lsl_env, 90.0, rtms="false"),
        "lost": start_simulator(prefixes["lost"], lsl_env, 90.0, rtms="false"),
        "bad": start_simulator(prefixes["bad"], lsl_env, 90.0, config=faults, rtms="false"),
    }
    config = _rooms_config(tmp_path, prefixes, broker.port)
    mon = start_monitor(config, lsl_env)
    try:
        sub.wait_for(lambda s: len(_of(s, "calm", "score")) >= 6, 60, "the calm room's scores")
        # the absent room gives up on its own, with its own final status
        sub.wait_for(
            lambda s: any(m["state"] == "offline" for m in _of(s, "absent", "status")),
            30,
            "the absent room's final status",
        )
        # the lost room's streams vanish for 8 s, then come back
        lost_before = max(m["seq"] for m in _of(sub, "lost", "score"))
        stop(sims["lost"])
        time.sleep(8.0)
        sims["lost"] = start_simulator(prefixes["lost"], lsl_env, 90.0, rtms="false")
        wait_until(
            lambda: any(
                m["usable"] for m in _of(sub, "lost", "score") if m["seq"] > lost_before + 8
            ),
            60,
            "the lost room to score again",
        )
        assert mon.poll() is None, "the monitor process ended"
    finally:
        mon.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            mon.wait(30)  # stop() would add a SIGINT, which Linux delivers first
        out = stop(mon)
        for sim in sims.values():
            stop(sim)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and (missing := _not_offline(sub, sites)):
        time.sleep(0.1)
    sub.close()
    assert not missing, f"no final status from {missing}; monitor output:\n{out}"
    assert not sub.invalid, sub.invalid  # no NaN or infinity reached the broker
    assert mon.returncode == 1, out  # one room failed
    assert "Traceback" not in out, out

    # the calm room: every window in order, usable once warm, never late or waiting
    calm = _of(sub, "calm", "score")
    assert contiguous([m["seq"] for m in calm]), [m["seq"] for m in calm]
    warm = [m for m in calm if "warmup" not in m["quality"]["reasons"]]
    assert len(warm) >= 20 and all(m["usable"] for m in warm), [
        m["quality"]["reasons"] for m in warm if not m["usable"]
    ]
    totals = [m["latency_ms"]["total"] for m in calm if m["latency_ms"]["total"] is not None]
    # waiting for another room's data would cost at least max_wait_s (2 s)
    assert max(totals) < 1000.0, sorted(totals)[-5:]

    # the lost room: the loss reported, windows flagged, and scoring again after it
    lost_events = [m["label"] for m in _of(sub, "lost", "event")]
    assert "stream/lost" in lost_events and "stream/found" in lost_events, lost_events
    lost = _of(sub, "lost", "score")
    reasons = {r for m in lost for r in m["quality"]["reasons"]}
    assert reasons & {"eeg_lost", "nirs_lost", "eeg_late", "nirs_late", "eeg_restart"}, reasons
    assert contiguous([m["seq"] for m in lost])

    # the bad room: its faults flagged there, nowhere else
    bad_reasons = {r for m in _of(sub, "bad", "score") for r in m["quality"]["reasons"]}
    assert "nonfinite" in bad_reasons, bad_reasons
    calm_reasons = {r for m in calm for r in m["quality"]["reasons"]}
    assert "nonfinite" not in calm_reasons

    # every room stopped with its own reason and counts; the absent one as a fatal error
    finals = {
        site: [m for m in _of(sub, site, "status") if m["state"] == "offline"][-1] for site in sites
    }
    assert finals["absent"]["stopped"]["reason"].startswith("fatal error"), finals["absent"]
    for site in ("calm", "lost", "bad"):
        assert finals[site]["stopped"]["reason"] == "SIGTERM", finals[site]
        logged = len(_of(sub, site, "score"))
        assert finals[site]["windows"]["emitted"] == logged
        assert f"{site}/S-{site}: monitor stopped (SIGTERM): {logged} window(s)" in out, out
    assert "room absent/S-absent stopped" in out


def test_each_room_has_its_own_last_will(tmp_path, broker, lsl_env):
    sites = ("r1", "r2")
    prefixes = {site: unique(site.upper()) for site in sites}
    sub = Subscriber(broker.port, "neuroclip/v1/+/+/status")
    sims = [start_simulator(prefixes[site], lsl_env, 60.0) for site in sites]
    config = _rooms_config(tmp_path, prefixes, broker.port)
    mon = start_monitor(config, lsl_env)
    try:
        sub.wait_for(
            lambda s: all(
                any(
                    m["state"] == "online" and m["windows"]["emitted"]
                    for m in _of(s, site, "status")
                )
                for site in sites
            ),
            60,
            "both rooms online and scoring",
        )
        mon.kill()  # no goodbye: the broker publishes each room's will
        mon.wait(10)
        sub.wait_for(
            lambda s: all(
                any(m["state"] == "offline" for m in _of(s, site, "status")) for site in sites
            ),
            20,
            "both rooms' last wills",
        )
    finally:
        stop(mon)
        for sim in sims:
            stop(sim)
    sub.close()
    for site in sites:
        will = [m for m in _of(sub, site, "status") if m["state"] == "offline"][-1]
        assert will["session"] == f"S-{site}"
        assert "vanished" in (will["stopped"]["reason"] or ""), will
