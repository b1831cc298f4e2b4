"""Faults of the parts around the monitor: an outlet killed mid-session, the broker killed.

Real processes throughout: ``neuroclip simulate --live`` outlets, the monitor (without
torch), a Mosquitto with persistence and an independent paho subscriber.
"""

from __future__ import annotations

import time

import pytest

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


def _resumed_after_trouble(lines: list[dict]) -> bool:
    seen_bad = False
    for m in lines:
        if not m["usable"]:
            seen_bad = True
        elif seen_bad:
            return True
    return False


def test_an_outlet_killed_mid_session_and_restarted_needs_no_monitor_restart(tmp_path, lsl_env):
    prefix, session = unique("KIL"), unique("s")
    sim = start_simulator(prefix, lsl_env)
    mon = start_monitor(monitor_config(tmp_path, prefix, session, None), lsl_env)
    log_dir = tmp_path / "logs"
    try:
        wait_until(lambda: len(log_lines(log_dir)) >= 3, 40, "first scores")
        sim.kill()  # SIGKILL: the outlets vanish without saying goodbye
        sim.communicate(timeout=10)
        time.sleep(3.0)
        sim = start_simulator(prefix, lsl_env)
        wait_until(
            lambda: (
                any(m["usable"] and m["seq"] > 8 for m in log_lines(log_dir)[5:])
                and _resumed_after_trouble(log_lines(log_dir))
            ),
            60,
            "usable scores after the restart",
        )
        assert mon.poll() is None, "the monitor must not exit when an outlet disappears"
    finally:
        out = stop(mon)
        stop(sim)
    logged = read_log(log_dir)
    assert contiguous([m["seq"] for m in logged]), "sequence numbers skipped or repeated"
    reasons = {r for m in logged for r in m["quality"]["reasons"]}
    assert reasons & {"eeg_lost", "eeg_restart", "eeg_late", "warmup"}, reasons
    assert all(m["score"] is None for m in logged if not m["usable"])
    assert "lost (outlet gone)" in out, out[-2000:]


def test_every_logged_score_reaches_a_persistent_subscriber_after_the_broker_is_killed(
    tmp_path, broker, lsl_env
):
    outage_s = 30.0
    prefix, session = unique("BRK"), unique("s")
    sub = Subscriber(broker.port, f"neuroclip/v1/lab/{session}/score")
    sim = start_simulator(prefix, lsl_env, duration_s=240.0)
    mon = start_monitor(monitor_config(tmp_path, prefix, session, broker.port), lsl_env)
    log_dir = tmp_path / "logs"
    try:
        sub.wait_for(lambda s: len(s.of("score")) >= 3, 40, "scores before the broker dies")
        broker.kill()  # SIGKILL; the subscriber's session survives in the autosaved store
        down_from = time.time()
        time.sleep(outage_s)
        down_until = time.time()
        broker.start()
        logged_when_up = len(log_lines(log_dir))
        wait_until(lambda: len(log_lines(log_dir)) >= logged_when_up + 3, 30, "later scores")
        target = log_lines(log_dir)[-1]["seq"]
        sub.wait_for(lambda s: any(m["seq"] >= target for m in s.of("score")), 40, "queued scores")
    finally:
        out = stop(mon)
        stop(sim)
        sub.close()
    logged = read_log(log_dir)
    logged_seqs = [m["seq"] for m in logged]
    assert contiguous(logged_seqs), "the session log skipped or repeated a window"
    received = [m["seq"] for m in sub.of("score")]
    delivered = list(dict.fromkeys(received))  # QoS 1 may deliver a message twice
    assert delivered == sorted(delivered), "scores arrived out of order"
    assert delivered == [s for s in logged_seqs if s <= delivered[-1]], (
        "a score in the session log never reached the subscriber"
    )
    while_down = [m for m in logged if down_from < m["emitted_unix"] < down_until]
    assert len(while_down) >= 10, "the test must score windows while the broker is down"
    assert "unreachable" in out, out[-2000:]
    assert not sub.invalid, sub.invalid
    print(
        f"broker down {outage_s:.0f} s: {len(while_down)} windows scored meanwhile, "
        f"{len(delivered)} delivered in order, {len(received) - len(delivered)} QoS 1 repeats"
    )


_PUBLISH_INTO_A_FROZEN_BROKER = """
import asyncio, json, os, signal, sys
from streamer.config import MqttConfig
from streamer.outputs.mqtt import MqttPublisher

port, pid = int(sys.argv[1]), int(sys.argv[2])


async def scenario():
    cfg = MqttConfig(port=port, reconnect_max_s=0.2)
    async with MqttPublisher(cfg, "lab", "S1", b'{"state":"offline"}') as pub:
        while not pub.connected:
            await asyncio.sleep(0.02)
        os.kill(pid, signal.SIGSTOP)
        pub.enqueue("score", b'{"seq":0}')
        await asyncio.sleep(0.3)  # the publish now waits for a PUBACK that never comes
        os.kill(pid, signal.SIGKILL)
        os.kill(pid, signal.SIGCONT)
        # the publish gives up after its 5 s timeout; the loop then retries to connect
        while pub.last_error is None or pub.connected:
            await asyncio.sleep(0.1)
        return pub.snapshot()


print("snapshot", json.dumps(asyncio.run(scenario())), flush=True)
"""


def test_a_broker_lost_while_a_publish_awaits_its_ack_leaves_no_traceback_at_exit(broker):
    """The broker freezes (no acknowledgement), then dies, while a score is in flight: the
    score stays queued and the process ends without a traceback (CI once saw "Future exception
    was never retrieved ... MqttCodeError" printed after the monitor's stop summary). A child
    process, because the traceback comes from garbage collected at the end of a process."""
    import json
    import os
    import signal
    import subprocess
    import sys

    from tests.conftest import REPO

    try:
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                _PUBLISH_INTO_A_FROZEN_BROKER,
                str(broker.port),
                str(broker.proc.pid),
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        if broker.proc.poll() is None:  # the child ended before it killed the broker
            os.kill(broker.proc.pid, signal.SIGCONT)  # so that the fixture can stop it
    assert done.returncode == 0, done.stderr
    snapshot = json.loads(done.stdout.split("snapshot", 1)[1])
    assert snapshot["queued"] == 1 and snapshot["sent"] == 0, snapshot
    assert "unreachable" in done.stderr  # the loss itself is reported, once, as a warning
    assert "Traceback" not in done.stderr and "never retrieved" not in done.stderr, done.stderr
