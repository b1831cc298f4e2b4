"""The session estimate as windows arrive: whole session, per part, last minutes; carried in
score and summary messages that validate against the contract."""

from __future__ import annotations

import itertools

import jsonschema
import numpy as np
import pytest

from contract.messages import SCORE_SCHEMA
from models.bundle import Scores
from models.pipeline.grid import WindowGrid
from models.pipeline.phase import PhaseInfo
from models.pipeline.pipeline import GatedWindow
from models.session_estimate import SessionCalibration, SessionTracker, hc_band_position
from streamer.messages import Identity, SessionScoring, score_message

CAL = SessionCalibration(a=1.0, b=0.0, window_sd=1.0)

GRID = WindowGrid(window_s=10.0, hop_s=1.0, warmup_s=0.0)
"""Windows of 10 s every second: each counts as a tenth of an independent one."""


def test_the_interval_narrows_as_usable_windows_accumulate_and_unusable_ones_add_nothing():
    tracker = SessionTracker(CAL, independent_fraction=1.0)
    widths = []
    for i in range(40):
        tracker.add(float(i), "baseline", None, 0.5 if i % 4 else None)
        if (e := tracker.session()) is not None:
            widths.append(e.high - e.low)
    assert tracker.session().n_windows == 30
    assert all(b < a for a, b in itertools.pairwise(widths) if b != a)
    assert widths[-1] < widths[0] / 4
    assert tracker.session().probability == pytest.approx(1 / (1 + np.exp(-0.5)))


def test_recent_forgets_windows_older_than_its_span_and_parts_keep_their_own_windows():
    tracker = SessionTracker(CAL, 1.0, recent_s=10.0)
    for i in range(20):
        tracker.add(float(i), "baseline", None, -2.0)
    for i in range(20, 40):
        tracker.add(float(i), "inter_train", "drug" if i < 25 else None, 2.0)
    assert tracker.recent().n_windows == 10 and tracker.recent().probability > 0.8
    assert tracker.group("baseline").probability < 0.2
    assert tracker.group("cue_drug").n_windows == 5
    assert tracker.group("inter_train").n_windows == 15
    assert tracker.session().n_windows == 40
    assert list(tracker.groups()) == ["baseline", "cue_drug", "inter_train"]


def test_overlapping_windows_count_as_fewer_independent_ones():
    wide, narrow = SessionTracker(CAL, 0.1), SessionTracker(CAL, 1.0)
    for i in range(50):
        wide.add(float(i), "baseline", None, 0.0)
        narrow.add(float(i), "baseline", None, 0.0)
    assert wide.session().high - wide.session().low > 2 * (
        narrow.session().high - narrow.session().low
    )


@pytest.mark.parametrize(
    ("logit", "n", "band"),
    [(-3.0, 100, "within"), (0.6, 4, "near"), (-1.0, 1, "near"), (3.0, 100, "outside")],
)
def test_the_band_says_where_the_estimate_sits_against_the_healthy_range(logit, n, band):
    tracker = SessionTracker(CAL, 1.0, hc_range=(0.2, 0.6))
    for i in range(n):
        tracker.add(float(i), "baseline", None, logit)
    assert hc_band_position(tracker.session(), tracker.hc_range) == band
    assert hc_band_position(tracker.session(), None) is None


def _window(seq: int, usable: bool, phase: str = "baseline") -> GatedWindow:
    return GatedWindow(
        seq=seq,
        t_begin=float(seq),
        t_end=float(seq) + 10.0,
        window=None,
        reasons=() if usable else ("eeg_lost",),
        phase=PhaseInfo(phase, None, False),
    )


def _scores(p: float) -> Scores:
    logit = np.log(p / (1 - p))
    one = np.array([p])
    return Scores(one, one * 0.9, one * 1.1, np.array([logit]), one, one, np.zeros((1, 4)))


def test_messages_carry_the_estimate_and_unusable_windows_carry_no_smoothed_value():
    meta = {
        "calibration": {"session": CAL.as_dict()},
        "reference": {"hc_session": {"p05": 0.1, "median": 0.3, "p95": 0.5}},
    }
    scoring = SessionScoring(meta, smoothing_windows=5, grid=GRID)
    ident = Identity("site1", "P001-pre", "m", "0" * 64)
    first = scoring.add(_window(0, False), None)
    assert first is None and scoring.estimate() is None
    messages = []
    for seq, usable in enumerate([True, True, False, True], start=1):
        smoothed = scoring.add(_window(seq, usable), _scores(0.7) if usable else None)
        assert (smoothed is None) == (not usable)
        message = score_message(
            ident,
            _window(seq, usable),
            _scores(0.7) if usable else None,
            smoothed,
            {},
            eeg_channels=(),
            pair_names=[],
            estimate=scoring.estimate(),
        )
        jsonschema.validate(message, SCORE_SCHEMA)
        messages.append(message)
    estimate = messages[-1]["estimate"]
    assert estimate["session"]["windows"] == 3 and estimate["part"] == "baseline"
    assert estimate["session"]["low"] < estimate["session"]["probability"]
    assert estimate["session"]["band"] in ("within", "near", "outside")
    summary = scoring.summary_message(ident)
    assert summary["schema"] == "neuroclip.summary/2"
    assert summary["windows"] == 5 and summary["usable"] == 3
    assert summary["estimate"]["parts"]["baseline"]["windows"] == 3
    assert summary["estimate"]["hc_range"] == [0.1, 0.5]
