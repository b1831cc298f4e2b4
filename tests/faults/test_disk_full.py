"""The session log's disk fills up mid-session: a clear error on status, publishing goes on,
and once there is room again every held line is written, in order, none split or repeated.

The log folder is a real 256 KiB tmpfs mounted for the test (the tests run as root), filled
but for a few lines by a filler file; removing the filler makes room again.
"""

from __future__ import annotations

import subprocess

import pytest

from tests.live_parts import (
    Subscriber,
    contiguous,
    monitor_config,
    read_log,
    start_monitor,
    start_simulator,
    stop,
    unique,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs for the full-disk test (run as root): {done.stderr}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _latest_status(sub: Subscriber) -> dict:
    statuses = sub.of("status")
    return statuses[-1] if statuses else {}


def test_a_full_log_disk_is_reported_publishing_goes_on_and_nothing_is_lost(
    tmp_path, small_disk, broker, lsl_env
):
    filler = small_disk / "filler"
    filler.write_bytes(b"\0" * (256 - 24) * 1024)  # room for about a dozen score lines
    prefix, session = unique("DSK"), unique("s")
    sub = Subscriber(broker.port, f"neuroclip/v1/lab/{session}/#")
    config = monitor_config(
        tmp_path, prefix, session, broker.port, **{"log.dir": str(small_disk / "logs")}
    )
    sim = start_simulator(prefix, lsl_env)
    mon = start_monitor(config, lsl_env)
    try:
        sub.wait_for(
            lambda s: _latest_status(s).get("log", {}).get("ok") is False, 90, "a log error"
        )
        status = _latest_status(sub)
        assert status["state"] == "degraded", status["state"]
        assert "No space left" in status["log"]["error"], status["log"]
        failed_at = len(sub.of("score"))
        sub.wait_for(lambda s: len(s.of("score")) >= failed_at + 8, 30, "scores on a full disk")
        assert _latest_status(sub)["log"]["backlog"] >= 5
        filler.unlink()  # room again
        sub.wait_for(
            lambda s: (
                _latest_status(s).get("log", {}).get("ok") is True
                and _latest_status(s)["log"]["backlog"] == 0
            ),
            30,
            "the held lines written",
        )
    finally:
        out = stop(mon)
        stop(sim)
        sub.close()
    logged = read_log(small_disk / "logs")
    seqs = [m["seq"] for m in logged]
    assert contiguous(seqs), "a line was lost, split or repeated"
    published = list(dict.fromkeys(m["seq"] for m in sub.of("score")))
    assert seqs[: len(published)] == published[: len(seqs)]
    assert len(seqs) >= failed_at + 8
    assert "No space left" in out and "backlog flushed" in out, out[-2000:]
