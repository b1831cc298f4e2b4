"""Replay and offline scoring: the same session scored live through LSL and offline agrees.

A simulated session is replayed (``neuroclip replay --speed 4``) into a real monitor, and
scored offline (``neuroclip score``), at the simulator's rates (EEG 500 Hz, fNIRS 10 Hz) and
at a real device's (EEG 512 Hz, NIRScout fNIRS 7.8125 Hz, the session resampled and written
as XDF). Every window must carry the same end, usability, reasons, phase and score
(|diff| <= 1e-5), and two live runs of the same replay must agree with each other.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
from scipy.signal import resample_poly

from contract.errors import OutputError
from models.io.bids import BidsDataset
from tests.conftest import REPO
from tests.live_parts import monitor_config, read_log, start_monitor, stop, unique, write_xdf
from tests.streamer.test_device_kinds import _derived

pytestmark = pytest.mark.integration


def _session_folder(cohort):
    folders = sorted(cohort.glob("sub-*/ses-pre"))
    assert folders, f"no pre session in {cohort}"
    return folders[0]


def _score(folder, out, *extra) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "neuroclip", "score", str(folder), "--out", str(out), *extra],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )


def _at_rates(recording, eeg_rate: float, nirs_rate: float, up_down: dict):
    """``recording`` resampled to other device rates (regular timestamps from its start)."""
    blocks = []
    for block, rate in ((recording.eeg, eeg_rate), (recording.nirs, nirs_rate)):
        up, down = up_down[block.kind]
        data = resample_poly(block.data, up, down, axis=0)
        times = block.times[0] + np.arange(len(data)) / rate
        blocks.append(replace(block, sfreq=rate, data=data, times=times))
    return replace(recording, blocks=tuple(blocks))


@pytest.fixture(scope="module")
def sessions(tiny_cohort, tmp_path_factory):
    """The same pre session at the simulator's rates (BIDS) and a real device's (XDF)."""
    folder = _session_folder(tiny_cohort)
    ds = BidsDataset(tiny_cohort)
    recording = ds.read(folder.parent.name[4:], "pre")
    real = _at_rates(recording, 512.0, 7.8125, {"eeg": (128, 125), "nirs": (25, 32)})
    path = write_xdf(real, tmp_path_factory.mktemp("real-rates") / "nirscout.xdf")
    # a device that streams HbO/HbR itself, at a NIRSport2's rate, beside 2048 Hz EEG
    haemoglobin = _at_rates(
        _derived(recording, "hb"), 2048.0, 10.172526041666666,
        {"eeg": (512, 125), "nirs": (3125, 3072)},
    )  # fmt: skip
    hb_path = write_xdf(haemoglobin, tmp_path_factory.mktemp("hb") / "nirsport2-hb.xdf")
    return {"simulator": folder, "real-rates": path, "haemoglobin": hb_path}


def _live(tmp_path, source, lsl_env, run: str) -> list[dict]:
    prefix = unique("RPL")
    work = tmp_path / run
    work.mkdir()
    config = monitor_config(work, prefix, "S1", None)  # 1 s hop, 2 s warm-up, log only
    monitor = start_monitor(config, lsl_env)
    replay = subprocess.run(
        [
            sys.executable,
            "-m",
            "neuroclip",
            "replay",
            str(source),
            "--speed",
            "4",
            "--name-prefix",
            prefix,
            "--wait-consumers",
            "30",
        ],
        env=lsl_env,
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=200,
    )
    out = stop(monitor)
    assert replay.returncode == 0, replay.stdout + replay.stderr
    assert "Traceback" not in out, out
    return read_log(work / "logs")


def _compare(live: list[dict], offline: list[dict]) -> tuple[int, float]:
    """Windows compared and the largest difference of scores, smoothed scores and session
    estimates; asserts everything else equal."""
    by_seq = {r["seq"]: r for r in live}
    compared, worst = 0, 0.0
    t_live0, t_offline0 = live[0]["window"]["end"], offline[0]["window"]["end"]
    for want in offline:
        got = by_seq.get(want["seq"])
        assert got is not None, f"window {want['seq']} was not scored live"
        assert got["usable"] == want["usable"], (want["seq"], got["quality"], want["quality"])
        assert got["quality"]["reasons"] == want["quality"]["reasons"], want["seq"]
        assert got["phase"] == want["phase"] and got["cue"] == want["cue"]
        span_live = got["window"]["end"] - t_live0
        assert span_live == pytest.approx(want["window"]["end"] - t_offline0, abs=1e-4)
        if want["usable"]:
            for key in ("score", "smoothed"):
                worst = max(worst, abs(got[key] - want[key]))
            compared += 1
        worst = max(worst, _estimate_difference(got["estimate"], want["estimate"], want["seq"]))
    return compared, worst


def _estimate_difference(got: dict | None, want: dict | None, seq: int) -> float:
    """The largest difference of the session estimates' numbers; asserts their window counts,
    bands and parts equal."""
    assert (got is None) == (want is None), seq
    if want is None:
        return 0.0
    assert got["part"] == want["part"], seq
    worst = 0.0
    for which in ("session", "recent", "part_estimate"):
        a, b = got[which], want[which]
        assert (a is None) == (b is None), (seq, which)
        if b is None:
            continue
        assert (a["windows"], a["band"]) == (b["windows"], b["band"]), (seq, which, a, b)
        worst = max(worst, *(abs(a[k] - b[k]) for k in ("probability", "low", "high")))
    return worst


@pytest.mark.parametrize("rates", ["simulator", "real-rates", "haemoglobin"])
def test_a_replayed_session_scores_live_as_offline(tmp_path, sessions, lsl_env, rates):
    source = sessions[rates]
    offline_path = tmp_path / "offline.jsonl"
    done = _score(source, offline_path, "--hop", "1", "--warmup", "2", "--session", "S1")
    assert done.returncode == 0, done.stderr
    assert "x real time" in done.stdout
    offline = [json.loads(line) for line in offline_path.read_text().splitlines()]
    assert offline and any(r["usable"] for r in offline)
    assert any("rtms_train" in r["quality"]["reasons"] for r in offline), "the rTMS block"
    index = {r["quality"]["nirs"]["index"] for r in offline if r["quality"]["nirs"]}
    assert index == ({"psp"} if rates == "haemoglobin" else {"sci"}), index
    first = _live(tmp_path, source, lsl_env, "first")
    compared, worst = _compare(first, offline)
    assert compared >= 10, f"only {compared} usable windows compared"
    assert worst <= 1e-5, f"live and offline scores or estimates differ by up to {worst:.2e}"
    if rates == "real-rates":  # and a second live run of the same replay is the same again
        second = _live(tmp_path, source, lsl_env, "second")
        assert _compare(second, offline)[1] <= 1e-5
        assert len(second) >= len(offline)


def test_offline_scoring_refuses_what_it_cannot_use(tmp_path, tiny_cohort):
    folder = _session_folder(tiny_cohort)
    existing = tmp_path / "exists.jsonl"
    existing.write_text("keep me\n")
    done = _score(folder, existing)
    assert done.returncode == 2 and "already exists" in done.stderr and "Fix:" in done.stderr
    assert existing.read_text() == "keep me\n", "nothing overwritten"
    done = _score(folder.parent, tmp_path / "a.jsonl")
    assert done.returncode == 2 and "sessions" in done.stderr and "ses-" in done.stderr
    done = _score(tmp_path / "missing.xdf", tmp_path / "b.jsonl")
    assert done.returncode == 2 and "does not exist" in done.stderr
    assert "Traceback" not in done.stderr
    with pytest.raises(OutputError):
        from models.io.output import require_new_file

        require_new_file(tmp_path / "no" / "such" / "folder.jsonl", "the score file")
