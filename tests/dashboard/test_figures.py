"""Figure builders are pure: the same view gives the same traces; extensions match them."""

from __future__ import annotations

from dashboard.figures import SCORE_TRACES, sci_strip, score_extension, score_figure
from dashboard.history import ScorePoint
from dashboard.store import SessionView


def _view() -> SessionView:
    view = SessionView("room1", "S7")
    for seq in range(6):
        usable = seq != 3
        view.history.add(
            ScorePoint(
                110.0 + seq,
                seq,
                0.3 + 0.1 * seq if usable else None,
                0.2 if usable else None,
                0.9 if usable else None,
                0.35,
                usable,
                "rtms_train" if seq == 3 else "baseline",
                None,
            )
        )
    view.trains.append([112.5, float("nan")])
    view.cues.append((111.0, "drug"))
    return view


def test_the_score_figure_separates_usable_and_unusable_windows():
    fig = score_figure(_view(), hc_band=(0.01, 0.45))
    traces = {name: fig.data[i] for i, name in enumerate(SCORE_TRACES)}
    assert list(traces["score"].x) == [110.0, 111.0, 112.0, 114.0, 115.0]
    assert list(traces["unusable"].x) == [113.0]
    assert len(traces["smoothed"].x) == 6
    shapes = fig.layout.shapes
    assert any(s.type == "rect" and s.x0 == 112.5 for s in shapes), "rTMS train shaded"
    assert any(s.type == "rect" and s.y0 == 0.01 and s.y1 == 0.45 for s in shapes), "HC band"
    assert any(s.type == "line" and s.x0 == 111.0 for s in shapes), "cue marked"


def test_an_extension_appends_to_the_same_traces_the_figure_drew():
    view = _view()
    new = view.history.since(3)
    data, indices, cap = score_extension(new)
    assert indices == list(range(len(SCORE_TRACES))) and cap > 14_400
    assert data["x"][SCORE_TRACES.index("score")] == [114.0, 115.0]
    assert data["x"][SCORE_TRACES.index("unusable")] == []
    assert score_extension([]) is None


def test_the_sci_strip_shows_every_pair():
    quality = {"nirs": {"pairs": ["S1_D1", "S2_D1"], "sci": [0.9, 0.2]}}
    fig = sci_strip(quality)
    assert list(fig.data[0].x) == ["S1_D1", "S2_D1"] and list(fig.data[0].z[0]) == [0.9, 0.2]
    assert list(sci_strip(None).data[0].x) == []
