"""``neuroclip record`` end to end with real processes: LSL outlets in, an XDF file out.

The recorder runs as a child process against ``neuroclip simulate --live`` (and a real
monitor publishing its score stream), or against outlets made here; the files it writes are
read back with pyxdf and with the project's own reader.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from models.simulation.montage import EEG_CHANNELS
from tests.conftest import REPO
from tests.live_parts import (
    monitor_config,
    read_log,
    start_cli,
    start_monitor,
    start_simulator,
    stop,
    unique,
)

pytestmark = pytest.mark.integration

EEG_RATE = 500.0


def _start_recorder(tmp_path: Path, lsl_env: dict, prefix: str, out: Path, *args: str):
    return start_cli(
        [
            sys.executable,
            "-m",
            "neuroclip",
            "record",
            "--name-prefix",
            prefix,
            "--out",
            str(out),
            *args,
        ],
        lsl_env,
        tmp_path / f"{out.stem}.out",
    )


def _run_recorder(lsl_env: dict, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "neuroclip", "record", *args],
        env={**lsl_env, **env},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )


def _output(proc: subprocess.Popen) -> str:
    return proc.output_path.read_text(errors="replace")  # type: ignore[attr-defined]


def _wait(predicate, timeout_s: float, what: str, proc: subprocess.Popen) -> float:
    """Poll until ``predicate()``; fail if ``proc`` exits first. Returns when it held."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return time.monotonic()
        if proc.poll() is not None:
            pytest.fail(f"the recorder exited ({proc.returncode}) before {what}:\n{_output(proc)}")
        time.sleep(0.1)
    pytest.fail(f"timed out after {timeout_s:g} s waiting for {what}:\n{_output(proc)}")


def _by_name(streams: list[dict]) -> dict[str, dict]:
    return {s["info"]["name"][0]: s for s in streams}


def _labels(stream: dict) -> list[str]:
    channels = stream["info"]["desc"][0]["channels"][0]["channel"]
    return [c["label"][0] for c in channels]


def _scores_logged(tmp_path: Path) -> int:
    logs = list((tmp_path / "logs").rglob("*.scores.jsonl"))
    return sum(len(f.read_text().splitlines()) for f in logs)


def test_record_a_live_session_with_the_monitor_score_stream(tmp_path, lsl_env):
    import pyxdf

    from models.io import read_recording

    prefix, session = unique("REC"), unique("s")
    out = tmp_path / "session.xdf"
    score_name = f"NeuroCLIP-Scores-lab-{session}"
    sim = start_simulator(prefix, lsl_env, duration_s=90)
    mon = start_monitor(monitor_config(tmp_path, prefix, session, None), lsl_env)
    launched = time.monotonic()
    rec = _start_recorder(tmp_path, lsl_env, prefix, out, "--site", "lab", "--session", session)
    try:
        started = _wait(lambda: "recording EEG" in _output(rec), 30, "the start line", rec)
        _wait(
            lambda: f"score '{score_name}'" in _output(rec) and _scores_logged(tmp_path) >= 3,
            45,
            "the score stream and three scores",
            rec,
        )
        time.sleep(max(0.0, 12.0 - (time.monotonic() - started)))
        stopped = time.monotonic()
        text = stop(rec, 30)
        assert rec.returncode == 0, text
    finally:
        stop(rec)
        stop(mon)
        stop(sim)
    assert "recorded" in text and "Traceback" not in text, text
    streams, header = pyxdf.load_xdf(str(out))
    assert header["info"]["version"] == ["1.0"]
    by_name = _by_name(streams)
    eeg_name, nirs_name, markers_name = f"{prefix}-EEG", f"{prefix}-NIRS", f"{prefix}-Markers"
    assert set(by_name) == {eeg_name, nirs_name, markers_name, score_name}, list(by_name)

    eeg = by_name[eeg_name]
    assert eeg["info"]["channel_count"] == ["33"]
    assert _labels(eeg) == [*EEG_CHANNELS, "counter"]
    counter = eeg["time_series"][:, -1].astype(np.int64)
    assert np.all(np.diff(counter) == 1), "EEG samples missing or repeated"
    assert np.all(np.diff(eeg["time_stamps"]) > 0)
    n = len(counter)
    recorded_s = stopped - started
    assert (recorded_s - 1.5) * EEG_RATE <= n <= (stopped - launched + 1.0) * EEG_RATE, (
        n,
        recorded_s,
    )

    nirs = by_name[nirs_name]
    nirs_channels = nirs["info"]["desc"][0]["channels"][0]["channel"]
    assert nirs_channels[0]["wavelength"][0] in ("760", "850")
    assert float(nirs_channels[0]["distance"][0]) > 0
    assert np.all(np.diff(nirs["time_series"][:, -1]) == 1)

    for stream in (eeg, nirs, by_name[markers_name]):
        assert len(stream["clock_times"]) >= 2, stream["info"]["name"]
        assert np.all(np.abs(stream["clock_values"]) < 1.0)  # same machine: tiny offsets
    for stream in streams:
        footer = stream["footer"]["info"]
        assert int(footer["sample_count"][0]) == len(stream["time_stamps"])

    score = by_name[score_name]
    assert score["info"]["type"] == ["NeuroCLIPScore"]
    assert score["info"]["desc"][0]["schema"] == ["neuroclip.score/2"]
    messages = [json.loads(row[0]) for row in score["time_series"]]
    assert len(messages) >= 2
    assert all(m["schema"] == "neuroclip.score/2" for m in messages)
    assert len(score["clock_times"]) >= 1
    logged = {m["seq"]: m for m in read_log(tmp_path / "logs")}
    assert all(logged[m["seq"]] == m for m in messages)

    recording = read_recording(out)
    assert recording.eeg is not None and recording.nirs is not None
    assert recording.eeg.ch_names == EEG_CHANNELS
    assert np.array_equal(recording.eeg.counter, counter)
    assert recording.nirs.nirs is not None
    assert len(recording.nirs.nirs.channels) == len(recording.nirs.ch_names) == 36
    assert recording.meta["score_streams"] == [score_name]
    assert not any(label.startswith("{") for label in recording.markers.labels)


def test_a_recorder_killed_mid_recording_leaves_a_readable_file(tmp_path, lsl_env):
    import pyxdf

    prefix = unique("KIL")
    out = tmp_path / "killed.xdf"
    sim = start_simulator(prefix, lsl_env, duration_s=60)
    rec = _start_recorder(tmp_path, lsl_env, prefix, out, "--no-scores")
    try:
        _wait(lambda: "recording EEG" in _output(rec), 30, "the start line", rec)
        time.sleep(4.0)
        rec.send_signal(signal.SIGKILL)
        rec.wait(10)
    finally:
        stop(rec)
        stop(sim)
    assert rec.returncode == -signal.SIGKILL
    streams, _ = pyxdf.load_xdf(str(out))
    eeg = _by_name(streams)[f"{prefix}-EEG"]
    assert len(eeg["time_stamps"]) >= 3 * EEG_RATE
    assert np.all(np.diff(eeg["time_series"][:, -1]) == 1)
    assert "footer" not in eeg  # killed: no footers, and the file still reads


def test_record_names_every_missing_stream_and_writes_no_file(tmp_path, lsl_env):
    prefix = unique("NONE")
    out = tmp_path / "y.xdf"
    result = _run_recorder(
        lsl_env,
        "--name-prefix",
        prefix,
        "--out",
        str(out),
        NEUROCLIP_MONITOR__STREAMS__RESOLVE_TIMEOUT_S="2",
    )
    text = result.stdout + result.stderr
    assert result.returncode == 2, text
    assert f"No LSL EEG stream matching name='{prefix}-EEG'" in text, text
    assert f"No LSL NIRS stream matching name='{prefix}-NIRS'" in text, text
    assert "within 2 s" in text and "streams.eeg, streams.nirs" in text, text
    assert "\nFix: " in text and "Traceback" not in text, text
    assert not out.exists(), "a refused recording must leave no file"


def test_record_refuses_an_existing_file_at_once(tmp_path, lsl_env):
    out = tmp_path / "old.xdf"
    out.write_bytes(b"precious")
    began = time.monotonic()
    result = _run_recorder(lsl_env, "--name-prefix", unique("NONE"), "--out", str(out))
    elapsed = time.monotonic() - began
    text = result.stdout + result.stderr
    assert result.returncode == 2, text
    assert "already exists" in text and "\nFix: " in text and "Traceback" not in text, text
    assert out.read_bytes() == b"precious"
    assert elapsed < 20, "refused only after looking for streams (30 s by default)"


class _Outlets(threading.Thread):
    """An EEG-like and a NIRS-like outlet fed in real time with a counter channel; the EEG
    outlet can be taken away and brought back (same name and source_id)."""

    def __init__(self, prefix: str):
        super().__init__(daemon=True)
        self.prefix = prefix
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.counts = {"EEG": 0, "NIRS": 0}
        self.rates = {"EEG": 100.0, "NIRS": 10.0}
        self.outlets = {kind: self._make(kind) for kind in self.counts}
        self.t0 = time.monotonic()

    def _make(self, kind: str):
        import pylsl

        info = pylsl.StreamInfo(
            f"{self.prefix}-{kind}",
            kind,
            3,
            self.rates[kind],
            pylsl.cf_float32,
            f"{self.prefix}-{kind.lower()}",
        )
        channels = info.desc().append_child("channels")
        for label in ("a", "b", "counter"):
            channels.append_child("channel").append_child_value("label", label)
        return pylsl.StreamOutlet(info)

    def take_eeg_away(self) -> None:
        with self.lock:
            self.outlets["EEG"] = None

    def bring_eeg_back(self) -> None:
        outlet = self._make("EEG")
        with self.lock:
            self.outlets["EEG"] = outlet

    def run(self) -> None:
        import pylsl

        while not self.stopping.wait(0.02):
            with self.lock:
                for kind, outlet in self.outlets.items():
                    due = int((time.monotonic() - self.t0) * self.rates[kind])
                    first, n = self.counts[kind], due - self.counts[kind]
                    self.counts[kind] = due
                    if outlet is None or n <= 0:
                        continue
                    index = np.arange(first, due, dtype=np.float32)
                    block = np.column_stack([np.zeros((n, 2), np.float32), index])
                    now = pylsl.local_clock()
                    outlet.push_chunk(block, list(now - (due - 1 - index) / self.rates[kind]))

    def close(self) -> None:
        self.stopping.set()
        self.join(5)
        with self.lock:
            self.outlets.clear()


def test_record_resumes_a_stream_whose_outlet_comes_back(tmp_path, lsl_env):
    import pyxdf

    prefix = unique("LOST")
    out = tmp_path / "resumed.xdf"
    outlets = _Outlets(prefix)
    outlets.start()
    rec = _start_recorder(tmp_path, lsl_env, prefix, out, "--no-scores")
    try:
        _wait(lambda: "recording EEG" in _output(rec), 30, "the start line", rec)
        time.sleep(2.0)
        outlets.take_eeg_away()
        _wait(lambda: "lost (outlet gone)" in _output(rec), 15, "the loss to be noticed", rec)
        gone_until = outlets.counts["EEG"]
        outlets.bring_eeg_back()
        _wait(lambda: "is back" in _output(rec), 15, "the stream to come back", rec)
        time.sleep(2.0)
        rec.send_signal(signal.SIGTERM)  # stops like Ctrl-C: footers written, exit 0
        rec.wait(30)
        text = stop(rec)
        assert rec.returncode == 0, text
    finally:
        stop(rec)
        outlets.close()
    assert "reconnected EEG x1" in text and "Traceback" not in text, text
    streams, _ = pyxdf.load_xdf(str(out))
    assert sorted(_by_name(streams)) == [f"{prefix}-EEG", f"{prefix}-NIRS"]
    eeg = _by_name(streams)[f"{prefix}-EEG"]  # one stream in the file, before and after
    counter = eeg["time_series"][:, -1]
    assert np.all(np.diff(counter) > 0)
    before, after = counter[counter < gone_until], counter[counter >= gone_until]
    assert len(before) >= 150 and len(after) >= 150, (len(before), len(after))
    assert np.all(np.diff(before) == 1) and np.all(np.diff(after) == 1)
    assert int(eeg["footer"]["info"]["sample_count"][0]) == len(counter)
    assert len(eeg["clock_times"]) >= 2  # one more offset measured on the new connection
