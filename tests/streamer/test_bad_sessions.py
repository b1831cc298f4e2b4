"""Bad sessions get a clear message from ``neuroclip score`` and ``neuroclip replay``.

XDF files are written here with the project's XDF writer from a simulated session, then cut,
renamed or shortened; the shared example files add real edge cases (empty streams, clock
resets). Every refusal exits 2 with the thing named and a ``Fix:`` line, never a traceback.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pylsl
import pytest

from models.io.bids import BidsDataset
from models.io.xdf_writer import truncate_to_last_chunk
from tests.conftest import REPO
from tests.live_parts import write_xdf


def neuroclip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "neuroclip", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )


def refused(done: subprocess.CompletedProcess, *needles: str) -> None:
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Fix:" in done.stderr and "Traceback" not in done.stderr, done.stderr
    for needle in needles:
        assert needle in done.stderr, (needle, done.stderr)


@pytest.fixture(scope="module")
def session(tiny_cohort):
    ds = BidsDataset(tiny_cohort)
    subject = ds.subjects[0]
    return ds.read(subject, ds.sessions(subject)[0].session)


def test_our_xdf_scores_whole_and_a_cut_one_scores_up_to_the_cut(tmp_path, session):
    whole = write_xdf(session, tmp_path / "whole.xdf")
    done = neuroclip("score", str(whole), "--out", str(tmp_path / "whole.jsonl"))
    assert done.returncode == 0, done.stderr
    n_whole = len((tmp_path / "whole.jsonl").read_text().splitlines())
    # a crash (or power loss) cuts the file in the middle of a chunk
    cut = tmp_path / "cut.xdf"
    data = whole.read_bytes()
    cut.write_bytes(data[: int(len(data) * 0.6) + 3])
    done = neuroclip("score", str(cut), "--out", str(tmp_path / "cut.jsonl"))
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in (tmp_path / "cut.jsonl").read_text().splitlines()]
    assert 0 < len(records) < n_whole
    assert truncate_to_last_chunk(cut) > 0, "the repair removes the partial chunk"
    done = neuroclip("score", str(cut), "--out", str(tmp_path / "repaired.jsonl"))
    assert done.returncode == 0, done.stderr


def test_a_session_shorter_than_one_window_is_refused(tmp_path, session):
    short = write_xdf(session, tmp_path / "short.xdf", seconds=15.0)
    refused(neuroclip("score", str(short), "--out", str(tmp_path / "s.jsonl")), "too short")
    assert not (tmp_path / "s.jsonl").exists()


def test_a_replay_of_channels_the_model_does_not_know_is_refused(tmp_path, session):
    renamed = write_xdf(session, tmp_path / "renamed.xdf", rename=lambda c: c.replace("F", "X"))
    refused(neuroclip("replay", str(renamed)), "inputs.eeg.channels")
    refused(neuroclip("score", str(renamed), "--out", str(tmp_path / "r.jsonl")), "EEG")


def test_corrupt_and_foreign_xdf_files_get_clear_messages(tmp_path, recordings):
    examples = recordings / "xdf" / "xdf-examples"
    refused(
        neuroclip("score", str(examples / "empty_streams.xdf"), "--out", str(tmp_path / "a")),
        "empty streams",
        "EEG and fNIRS",
    )
    refused(
        neuroclip("replay", str(examples / "clock_resets.xdf")),
        "no NIRS stream",
    )
    garbage = tmp_path / "garbage.xdf"
    garbage.write_bytes(b"XDF:" + bytes(range(256)) * 8)
    refused(neuroclip("score", str(garbage), "--out", str(tmp_path / "b")), "no stream")
    not_xdf = tmp_path / "notes.xdf"
    not_xdf.write_text("meeting notes")
    refused(neuroclip("replay", str(not_xdf)), "not an XDF file")


def test_an_xdf_replays_faster_with_timestamps_consistent_with_its_rates(
    tmp_path, session, lsl_env
):
    path = write_xdf(session, tmp_path / "minute.xdf", seconds=60.0)
    prefix = f"FAST{np.random.default_rng().integers(1 << 30)}"
    replay = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "neuroclip",
            "replay",
            str(path),
            "--speed",
            "10",
            "--name-prefix",
            prefix,
            "--wait-consumers",
            "30",
        ],
        env=lsl_env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    inlets = {}
    for role in ("EEG", "NIRS", "Markers"):
        found = pylsl.resolve_byprop("name", f"{prefix}-{role}", 1, 30)
        assert found, f"no {prefix}-{role} outlet"
        inlets[role] = pylsl.StreamInlet(found[0], max_buflen=360)
        inlets[role].open_stream(10)
    got = {role: ([], []) for role in inlets}
    while replay.poll() is None:
        for role, inlet in inlets.items():
            data, stamps = inlet.pull_chunk(timeout=0.0)
            got[role][0].extend(data)
            got[role][1].extend(stamps)
    out, _ = replay.communicate()
    assert replay.returncode == 0, out
    eeg_stamps = np.asarray(got["EEG"][1])
    assert len(eeg_stamps) == 60 * 500, "every EEG sample, once"
    np.testing.assert_allclose(np.diff(eeg_stamps), 1 / 500, atol=1e-9)
    assert [row[-1] for row in got["EEG"][0]] == list(range(60 * 500)), "counter continuous"
    assert len(got["NIRS"][1]) == 60 * 10
    # one shift for every stream: the recording's relative timing is kept exactly
    nirs_first = got["NIRS"][1][0] - (session.nirs.times[0] - session.eeg.times[0])
    assert nirs_first == pytest.approx(eeg_stamps[0], abs=1e-9)
    expected_markers = [
        lab
        for t, lab in zip(session.markers.times, session.markers.labels, strict=True)
        if t < 60.0
    ]
    assert [row[0] for row in got["Markers"][0]] == expected_markers
