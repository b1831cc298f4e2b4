"""The literature-based cohort generator: readable by our readers, reproducible, and
independent of :mod:`models.simulation`."""

from __future__ import annotations

import ast
import csv
from pathlib import Path

import numpy as np
import pytest

from contract.errors import ConfigError, OutputError
from models.dataset import load_windows
from models.io import BidsDataset
from models.literature_sim import LiteratureCohortConfig, write_literature_cohort
from models.literature_sim.design import DRUG, NEUTRAL, REST, cue_timeline
from models.literature_sim.eeg import simulate_eeg
from models.literature_sim.montage import optode_pairs
from models.literature_sim.nirs import simulate_nirs
from models.literature_sim.physiology import draw_body
from models.literature_sim.subjects import draw_subjects, session_state
from models.windows import SignalParams

PACKAGE = Path(__file__).resolve().parents[2] / "models" / "literature_sim"
TINY = LiteratureCohortConfig(
    ma=2, hc=2, minutes=2.0, design="event", eeg_sfreq=512.0, nirs_sfreq=7.8125, seed=3
)


@pytest.fixture(scope="module")
def tiny_literature_cohort(tmp_path_factory) -> Path:
    return write_literature_cohort(tmp_path_factory.mktemp("lit") / "bids", TINY)


@pytest.mark.slow
def test_tiny_cohort_reads_with_our_readers(tiny_literature_cohort):
    root = tiny_literature_cohort
    ds = BidsDataset(root)
    assert sorted(ds.group(s) for s in ds.subjects) == ["HC", "HC", "MA", "MA"]
    pairs = len(optode_pairs(TINY))
    for subject in ds.subjects:
        sessions = ds.sessions(subject)
        expected = ["post", "pre"] if ds.group(subject) == "MA" else ["none"]
        assert sorted(s.rtms for s in sessions) == expected
        assert all(s.craving is not None and 0 <= s.craving <= 100 for s in sessions)
        rec = ds.read(subject, sessions[0].session)
        assert rec.eeg.ch_names == TINY.eeg_channels and rec.eeg.sfreq == pytest.approx(512.0)
        assert rec.eeg.data.shape == (round(120 * 512.0), len(TINY.eeg_channels))
        assert rec.nirs.nirs.signal == "intensity" and len(rec.nirs.nirs.pairs()) == pairs
        assert rec.nirs.sfreq == pytest.approx(7.8125)
        assert np.all(np.isfinite(rec.nirs.nirs.distances_m))
        assert {REST, DRUG, NEUTRAL} <= set(rec.markers.labels)
        cues = [
            d
            for d, lab in zip(rec.markers.durations, rec.markers.labels, strict=True)
            if lab in (DRUG, NEUTRAL)
        ]
        assert cues and all(2 <= d <= 3 for d in cues)
    ws = load_windows(root, SignalParams(), hop_s=5.0)
    params = SignalParams()
    assert ws.eeg.shape[1:] == (len(TINY.eeg_channels), params.eeg_samples())
    assert ws.nirs.shape[1:] == (2 * pairs, params.nirs_samples())
    assert set(ws.group.tolist()) == {0, 1} and set(ws.rtms.tolist()) == {"pre", "post", "none"}
    assert np.all(np.isfinite(ws.craving)) and ws.usable.mean() > 0.5


@pytest.mark.slow
def test_ground_truth_stays_in_derivatives(tiny_literature_cohort):
    root = tiny_literature_cohort
    with (root / "participants.tsv").open() as handle:
        columns = next(csv.reader(handle, delimiter="\t"))
    assert "group" in columns and "severity" not in columns
    truth = root / "derivatives" / "literature_sim" / "ground_truth.tsv"
    with truth.open() as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    assert len(rows) == 2 * 2 + 2
    assert all(0 <= float(r["severity"]) <= 1 for r in rows)


def test_designs_and_markers():
    rng = np.random.default_rng(0)
    block = LiteratureCohortConfig(design="block", minutes=4.0, rest_markers=True)
    markers = cue_timeline(block, rng)
    assert markers[0].label == REST and markers[0].onset == 0 and markers[0].duration == 60
    cues = [m for m in markers if m.label in (DRUG, NEUTRAL)]
    assert all(15 <= m.duration <= 25 for m in cues)
    assert abs(sum(m.label == DRUG for m in cues) - sum(m.label == NEUTRAL for m in cues)) <= 1
    assert all(m.onset + m.duration <= block.duration_s for m in markers)
    event = LiteratureCohortConfig(design="event", minutes=4.0, rest_markers=False)
    markers = cue_timeline(event, rng)
    assert [m.label for m in markers].count(REST) == 1
    assert all(2 <= m.duration <= 3 for m in markers[1:])
    gaps = np.diff([m.onset for m in markers[1:]]) - [m.duration for m in markers[1:-1]]
    assert np.all((gaps >= 6 - 1e-6) & (gaps <= 14 + 1e-6))


def _session(cfg: LiteratureCohortConfig):
    subject = draw_subjects(cfg)[0]
    rng = [np.random.default_rng([cfg.seed, k]) for k in range(5)]
    state = session_state(subject, "pre" if subject.group == "MA" else "base", cfg, rng[0])
    markers = cue_timeline(cfg, rng[1])
    body = draw_body(state, cfg.duration_s, rng[2])
    eeg = simulate_eeg(state, markers, body, cfg, rng[3])
    nirs = simulate_nirs(state, markers, body, optode_pairs(cfg), cfg, rng[4])
    return eeg, nirs


def test_same_seed_same_signals_and_odd_rates():
    cfg = LiteratureCohortConfig(
        ma=1, hc=1, minutes=1.0, baseline_s=20.0, eeg_sfreq=250.0, nirs_sfreq=12.5, seed=9
    )
    eeg, nirs = _session(cfg)
    again_eeg, again_nirs = _session(cfg)
    assert eeg.shape == (19, 15000) and nirs.shape == (750, 2 * len(optode_pairs(cfg)))
    assert np.array_equal(eeg, again_eeg) and np.array_equal(nirs, again_nirs)
    assert np.all(nirs > 0) and np.all(np.isfinite(eeg))
    other_eeg, _ = _session(LiteratureCohortConfig(**{**cfg.__dict__, "seed": 10}))
    assert not np.array_equal(eeg, other_eeg)


def test_labels_do_not_follow_group():
    subjects = draw_subjects(LiteratureCohortConfig(ma=20, hc=20, seed=5))
    groups = [s.group for s in subjects]
    assert [s.label for s in subjects] == sorted(s.label for s in subjects)
    assert groups != sorted(groups) and groups != sorted(groups, reverse=True)


def test_leaning_splits_the_expression_between_modalities():
    subjects = draw_subjects(LiteratureCohortConfig(ma=12, hc=4, leaning=1.0))
    ma = [s for s in subjects if s.group == "MA"]
    assert all(s.leans and s.eeg_gain + s.nirs_gain == pytest.approx(1.0) for s in ma)
    assert all(not s.leans and s.eeg_gain == s.nirs_gain == 1.0 for s in subjects if s not in ma)
    plain = draw_subjects(LiteratureCohortConfig(ma=12, hc=4, leaning=0.0))
    assert all(s.eeg_gain == s.nirs_gain == 1.0 for s in plain)


def test_bad_settings_and_existing_folder_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="leaning"):
        LiteratureCohortConfig(leaning=1.5).check()
    with pytest.raises(ConfigError, match="design"):
        LiteratureCohortConfig(design="mixed").check()  # type: ignore[arg-type]
    out = tmp_path / "data"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    with pytest.raises(OutputError, match="not empty"):
        write_literature_cohort(out, TINY)
    assert (out / "keep.txt").read_text() == "precious"


def test_no_module_imports_the_first_generator():
    offenders = []
    for path in sorted(PACKAGE.glob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
                if node.module == "models":
                    names += [f"models.{alias.name}" for alias in node.names]
            else:
                continue
            offenders += [
                f"{path.name}: {n}"
                for n in names
                if n == "models.simulation" or n.startswith("models.simulation.")
            ]
    assert len(list(PACKAGE.glob("*.py"))) >= 6
    assert not offenders, offenders
