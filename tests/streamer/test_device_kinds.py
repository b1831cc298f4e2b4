"""A recording whose device streams optical density or haemoglobin, end to end through
``neuroclip score`` on the default model: the unit decides the scale, never a guess.

Found before: the same haemoglobin data labelled in M gave 376 of 376 usable windows with
scores 0.80-0.98, labelled in uM a median of 0.17; optical density was scored as intensity.
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from models.preprocessing.nirs import BeerLambert, NirsParams, OpticalDensity
from models.signals import NirsLayout, Recording
from tests.live_parts import write_xdf
from tests.streamer.test_bad_sessions import neuroclip, refused, session

__all__ = ["session"]
SECONDS = 150.0


def _derived(recording: Recording, kind: str) -> Recording:
    """``recording`` as a device computing optical density or HbO/HbR itself would give it."""
    block = recording.nirs
    params = NirsParams()
    od = OpticalDensity(round(params.baseline_s * block.sfreq))(block.data)
    if kind == "od":
        layout = replace(block.nirs, signal="od")
        return replace(recording, blocks=(recording.eeg, replace(block, data=od, nirs=layout)))
    mbll = BeerLambert(block.nirs, params.ppf)
    pair_distances = np.repeat(block.nirs.pair_distances(), 2)
    layout = NirsLayout.from_labels(mbll.ch_names, distances_m=pair_distances, signal="hb")
    hb = replace(block, data=mbll(od), ch_names=tuple(mbll.ch_names), nirs=layout)
    return replace(recording, blocks=(recording.eeg, hb))


def _scores(tmp_path, recording: Recording, name: str, units=None, *extra: str) -> list[dict]:
    xdf = write_xdf(recording, tmp_path / f"{name}.xdf", seconds=SECONDS, units=units)
    out = tmp_path / f"{name}.jsonl"
    done = neuroclip("score", str(xdf), "--out", str(out), *extra)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in out.read_text().splitlines()]


def test_haemoglobin_in_m_and_in_um_scores_the_same(tmp_path, session):
    hb = _derived(session, "hb")
    in_molar = replace(hb, blocks=(hb.eeg, replace(hb.nirs, data=hb.nirs.data * 1e-6)))
    micro = _scores(tmp_path, hb, "um")
    molar = _scores(tmp_path, in_molar, "m", {"nirs": "M"})
    assert len(micro) == len(molar) > 20
    usable = [m for m in micro if m["usable"]]
    assert len(usable) >= 0.5 * len(micro)
    assert {m["quality"]["nirs"]["index"] for m in micro if m["quality"]["nirs"]} == {"psp"}
    for a, b in zip(micro, molar, strict=True):
        assert a["usable"] == b["usable"]
        if a["usable"]:
            assert a["score"] == pytest.approx(b["score"], abs=1e-5)


def test_optical_density_is_scored_as_optical_density(tmp_path, session):
    intensity = _scores(tmp_path, session, "intensity")
    od = _scores(tmp_path, _derived(session, "od"), "od")
    assert len(od) == len(intensity)
    both = [(a, b) for a, b in zip(od, intensity, strict=True) if a["usable"] and b["usable"]]
    assert len(both) >= 0.5 * len(od)
    # the OD stream is the intensity stream's own first chain stage: the same scores
    np.testing.assert_allclose(
        [a["score"] for a, _ in both], [b["score"] for _, b in both], atol=1e-3
    )


def test_haemoglobin_without_a_unit_is_refused_naming_the_channel(tmp_path, session):
    xdf = write_xdf(
        _derived(session, "hb"), tmp_path / "nounit.xdf", seconds=40.0, units={"nirs": ""}
    )
    done = neuroclip("score", str(xdf), "--out", str(tmp_path / "x.jsonl"))
    refused(done, "hbo'", "no unit", "accepted")
    assert not (tmp_path / "x.jsonl").exists()


def _renumbered(label: str) -> str:
    """S<i>_D<j> -> S<i+10>_D<j+20>: the same probe, its optodes numbered another way."""
    pair, what = label.split(" ")
    source, detector = pair[1:].split("_D")
    return f"S{int(source) + 10}_D{int(detector) + 20} {what}"


def test_a_probe_numbered_differently_is_matched_by_position_and_scores_the_same(tmp_path, session):
    assert session.nirs.nirs.midpoints_m is not None, "the simulated SNIRF carries positions"
    original = _scores(tmp_path, session, "original")
    xdf = write_xdf(
        session,
        tmp_path / "renumbered.xdf",
        seconds=SECONDS,
        rename=lambda c: _renumbered(c) if c.startswith("S") else c,
    )
    out = tmp_path / "renumbered.jsonl"
    done = neuroclip("score", str(xdf), "--out", str(out))
    assert done.returncode == 0, done.stderr
    renumbered = [json.loads(line) for line in out.read_text().splitlines()]
    assert [m["score"] for m in renumbered] == [m["score"] for m in original]
    bad = [p for m in renumbered for p in (m["quality"]["nirs"] or {}).get("bad_pairs", [])]
    assert all(p.startswith("S1") for p in bad), "messages name the stream's own pairs"
