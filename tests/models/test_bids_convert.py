"""``neuroclip convert``: a recorded XDF session becomes a BIDS session that reads back the
same and scores the same; a conversion refused or failing at any step leaves the dataset as
it was (all or nothing), so that it can simply be run again."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from contract.errors import DatasetError, OutputError
from models.io import bids_convert, snirf_writer
from models.io.bids import BidsDataset
from models.io.bids_convert import STAGING_PREFIX, convert_session
from tests.streamer.test_bad_sessions import neuroclip, refused, session, write_xdf

__all__ = ["session"]  # the module fixture, shared with the bad-session tests


@pytest.fixture(scope="module")
def converted(session, tmp_path_factory):
    folder = tmp_path_factory.mktemp("convert")
    xdf = write_xdf(session, folder / "rec.xdf")
    root = folder / "bids"
    done = neuroclip(
        "convert", str(xdf), "--bids", str(root), "--subject", "07", "--session", "pre",
        "--group", "MA", "--rtms", "pre", "--craving", "62",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return xdf, root


def test_a_converted_session_reads_back_with_its_signals_events_and_labels(session, converted):
    _, root = converted
    ds = BidsDataset(root)
    assert ds.subjects == ["07"]
    info = ds.sessions("07")[0]
    assert (info.session, info.group, info.craving, info.rtms) == ("pre", "MA", 62.0, "pre")
    back = ds.read("07", "pre")
    n = back.eeg.n_samples
    assert abs(n - session.eeg.n_samples) <= 1
    assert np.allclose(back.eeg.data, session.eeg.data[:n], atol=0.01), "EEG in uV"
    m = back.nirs.n_samples
    assert np.allclose(back.nirs.data, session.nirs.data[:m], rtol=1e-5)
    assert back.nirs.nirs.pairs() == session.nirs.nirs.pairs()
    assert list(back.markers.labels) == list(session.markers.labels)
    assert np.allclose(back.markers.times - back.eeg.times[0], session.markers.times, atol=2e-3)


def test_a_converted_session_scores_as_its_recording(converted, tmp_path):
    xdf, root = converted
    for name, path in (("xdf", xdf), ("bids", root / "sub-07" / "ses-pre")):
        done = neuroclip("score", str(path), "--out", str(tmp_path / f"{name}.jsonl"))
        assert done.returncode == 0, done.stderr
    a, b = (
        [json.loads(x) for x in (tmp_path / f"{n}.jsonl").read_text().splitlines()]
        for n in ("xdf", "bids")
    )
    assert len(a) == len(b) > 10
    assert [m["usable"] for m in a] == [m["usable"] for m in b]
    diffs = [abs(x["score"] - y["score"]) for x, y in zip(a, b, strict=True) if x["usable"]]
    assert max(diffs) < 1e-4, max(diffs)


def test_a_session_is_never_converted_over_an_existing_one(converted):
    xdf, root = converted
    done = neuroclip(
        "convert", str(xdf), "--bids", str(root), "--subject", "07", "--session", "pre",
        "--group", "MA",
    )  # fmt: skip
    refused(done, "never overwritten", f"Nothing was written to {root}")


def test_a_montage_without_optode_positions_is_refused(session, tmp_path):
    xdf = write_xdf(session, tmp_path / "rec.xdf", rename=lambda c: c.replace("S1_", "S10_"))
    root = tmp_path / "b"
    done = neuroclip(
        "convert", str(xdf), "--bids", str(root), "--subject", "01", "--session",
        "pre", "--group", "HC",
    )  # fmt: skip
    refused(done, "--optodes", f"Nothing was written to {root}")
    assert not root.exists(), "a refused conversion into a new dataset leaves no dataset"


# --- all or nothing -----------------------------------------------------------------------


def snapshot(root: Path) -> dict[str, str]:
    """Every file (hidden ones too) and folder under ``root``: its SHA-256, or ``<dir>``."""
    return {
        str(p.relative_to(root)): "<dir>"
        if p.is_dir()
        else hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
    }


def staging_left(root: Path) -> list[Path]:
    """Staging folders left in ``root`` (there must be none after a conversion)."""
    return list(root.glob(f"{STAGING_PREFIX}*"))


@pytest.fixture(scope="module")
def dataset(session, tmp_path_factory):
    """A dataset of one converted session (sub-07 ses-pre), copied by each test that uses it."""
    root = tmp_path_factory.mktemp("dataset") / "bids"
    convert_session(session, root, "07", "pre", group="MA", rtms="pre", craving=62)
    return root


@pytest.fixture
def existing(dataset, tmp_path):
    """A copy of :func:`dataset` of this test's own."""
    root = tmp_path / "bids"
    shutil.copytree(dataset, root)
    return root


def fail_snirf(monkeypatch, root: Path, error: BaseException) -> None:
    """Make the SNIRF step raise ``error``, after checking that the EEG is written (staged):
    the conversion stops midway, as it did for the missing optode positions."""

    def write_snirf(path, *args, **kwargs):
        assert list(root.glob(f"{STAGING_PREFIX}*/bids/sub-*/ses-*/eeg/*_eeg.eeg")), "EEG first"
        raise error

    monkeypatch.setattr(snirf_writer, "write_snirf", write_snirf)


@pytest.mark.parametrize(
    ("subject", "label", "error", "raised"),
    [
        ("07", "post", DatasetError("refused midway.", fix="fix it."), DatasetError),
        ("08", "pre", OSError(errno.ENOSPC, "No space left on device"), OutputError),
        ("08", "pre", RuntimeError("a bug in a library"), RuntimeError),
    ],
    ids=["refusal-new-session", "disk-full-new-subject", "bug-new-subject"],
)
def test_a_conversion_stopped_midway_leaves_the_dataset_as_it_was_and_can_be_rerun(
    session, existing, monkeypatch, subject, label, error, raised
):
    before = snapshot(existing)
    fail_snirf(monkeypatch, existing, error)
    with pytest.raises(raised) as caught:
        convert_session(session, existing, subject, label, group="HC")
    said = str(caught.value) + " ".join(getattr(caught.value, "__notes__", []))
    assert f"Nothing was written to {existing}" in said, said
    assert snapshot(existing) == before, "no EEG, no participants row, no sessions row"
    assert not staging_left(existing)

    monkeypatch.undo()
    folder = convert_session(session, existing, subject, label, group="HC")
    assert folder == existing / f"sub-{subject}" / f"ses-{label}"
    ds = BidsDataset(existing)
    assert [s.session for s in ds.sessions(subject)][-1] == label
    assert ds.read(subject, label).nirs.n_samples > 0
    assert not staging_left(existing)


@pytest.mark.parametrize(
    ("subject", "label", "fails_on"),
    [("07", "post", "sub-07_sessions.tsv"), ("08", "pre", "participants.tsv")],
    ids=["new-session", "new-subject"],
)
def test_a_commit_that_fails_halfway_is_undone(
    session, existing, monkeypatch, subject, label, fails_on
):
    before = snapshot(existing)
    replace = os.replace
    moved: list[Path] = []

    def failing_replace(source, target):
        """Renames into the dataset succeed up to the one onto ``fails_on``, which fails."""
        target = Path(target)
        if STAGING_PREFIX not in str(target):
            if target.name == fails_on:
                raise OSError(errno.EIO, "Input/output error")
            moved.append(target)
        replace(source, target)

    monkeypatch.setattr(bids_convert.os, "replace", failing_replace)
    with pytest.raises(OutputError, match="Nothing was written to"):
        convert_session(session, existing, subject, label, group="HC")
    assert existing / f"sub-{subject}" / f"ses-{label}" in moved or (
        existing / f"sub-{subject}" in moved
    ), "the session's folder was in place before the failure"
    assert snapshot(existing) == before
    assert not staging_left(existing)


def test_a_refused_conversion_into_a_new_folder_leaves_no_folder(session, tmp_path, monkeypatch):
    root = tmp_path / "new" / "clinic-bids"
    fail_snirf(monkeypatch, root, DatasetError("refused midway.", fix="fix it."))
    with pytest.raises(DatasetError, match="Nothing was written to"):
        convert_session(session, root, "01", "pre", group="MA", rtms="pre")
    assert list(tmp_path.iterdir()) == [], "neither the root nor its new parent remain"


@pytest.mark.parametrize(
    ("kind", "units", "words"),
    [
        ("od", None, ["optical density", "only raw intensity"]),
        ("intensity", {"eeg": ""}, ["EEG channel", "no unit"]),
    ],
    ids=["optical-density", "eeg-without-unit"],
)
def test_what_is_not_raw_intensity_and_microvolts_is_refused(session, tmp_path, kind, units, words):
    """Optical density was once written into SNIRF as negative "intensities"."""
    from tests.streamer.test_device_kinds import _derived

    recording = _derived(session, "od") if kind == "od" else session
    xdf = write_xdf(recording, tmp_path / "rec.xdf", seconds=40.0, units=units)
    root = tmp_path / "bids"
    done = neuroclip(
        "convert", str(xdf), "--bids", str(root), "--subject", "01", "--session", "pre",
        "--group", "MA",
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    for word in words:
        assert word in done.stderr, done.stderr
    assert not root.exists()
