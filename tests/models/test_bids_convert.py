"""``neuroclip convert``: a recorded XDF session becomes a BIDS session that reads back the
same and scores the same."""

from __future__ import annotations

import json

import numpy as np
import pytest

from models.io.bids import BidsDataset
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
    refused(done, "never overwritten")


def test_a_montage_without_optode_positions_is_refused(session, tmp_path):
    xdf = write_xdf(session, tmp_path / "rec.xdf", rename=lambda c: c.replace("S1_", "S10_"))
    done = neuroclip(
        "convert", str(xdf), "--bids", str(tmp_path / "b"), "--subject", "01", "--session",
        "pre", "--group", "HC",
    )  # fmt: skip
    refused(done, "--optodes")
