"""``write_cohort`` produces a dataset MNE-BIDS opens, following DESIGN.md's contract."""

from __future__ import annotations

import csv

import mne_bids
import pytest

from contract.errors import OutputError
from models.io import BidsDataset
from models.simulation.bids_writer import write_cohort
from models.simulation.config import SimulationConfig


def test_every_subject_session_and_modality_opens_with_mne_bids(tiny_cohort):
    opened = 0
    for sub in mne_bids.get_entity_vals(tiny_cohort, "subject"):
        for ses in mne_bids.get_entity_vals(tiny_cohort / f"sub-{sub}", "session"):
            for datatype, ext in (("eeg", ".vhdr"), ("nirs", ".snirf")):
                path = mne_bids.BIDSPath(
                    root=tiny_cohort,
                    subject=sub,
                    session=ses,
                    task="cue",
                    datatype=datatype,
                    suffix=datatype,
                    extension=ext,
                )
                raw = mne_bids.read_raw_bids(path, verbose="error")
                assert raw.n_times > 0
                assert {"cue/drug", "cue/neutral", "rest"} <= set(raw.annotations.description)
                opened += 1
    assert opened == 2 * 3  # MA pre + post, HC base; EEG and NIRS each


def test_participants_sessions_and_ground_truth(tiny_cohort):
    ds = BidsDataset(tiny_cohort)
    assert sorted(ds.group(s) for s in ds.subjects) == ["HC", "MA"]
    for subject in ds.subjects:
        sessions = ds.sessions(subject)
        states = sorted(s.rtms for s in sessions)
        assert states == (["post", "pre"] if ds.group(subject) == "MA" else ["none"])
        assert all(s.craving is not None and 0 <= s.craving <= 100 for s in sessions)
        rec = ds.read(subject, sessions[0].session)
        assert rec.eeg.data.shape[1] == 32 and rec.eeg.sfreq == 500.0
        assert rec.nirs.nirs.signal == "intensity" and len(rec.nirs.nirs.pairs()) == 18
        assert "rtms/pulse" in rec.markers.labels
    with (tiny_cohort / "derivatives/simulation/ground_truth.tsv").open() as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    assert len(rows) == 3 and all(0 <= float(r["severity"]) <= 1 for r in rows)


def test_existing_folder_is_refused_and_left_untouched(tmp_path):
    out = tmp_path / "data"
    out.mkdir()
    keep = out / "keep.txt"
    keep.write_text("precious")
    with pytest.raises(OutputError, match="not empty; nothing was written"):
        write_cohort(out, SimulationConfig())
    assert keep.read_text() == "precious" and sorted(out.iterdir()) == [keep]
