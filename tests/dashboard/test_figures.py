"""Figure builders are pure: the same view gives the same traces; extensions match them."""

from __future__ import annotations

from dashboard.figures import SCORE_TRACES, sci_strip, score_extension, score_figure, wall_clock
from dashboard.history import ScorePoint
from dashboard.store import SessionView

OFFSET = 1_790_000_000.0  # wall clock minus LSL clock


def _view(band: bool = True) -> SessionView:
    view = SessionView("room1", "S7", clock_offset=OFFSET)
    if band:
        view.status = {"reference": {"hc_band": [0.01, 0.45], "hc_median": 0.1}}
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
                estimate=0.6 if usable else None,
                estimate_low=0.4 if usable else None,
                estimate_high=0.8 if usable else None,
            )
        )
    view.trains.extend([[112.5, 114.5], [140.0, float("nan")]])
    view.cues.extend([(111.0, "drug"), (111.5, "neutral"), (111.7, "unknown-kind")])
    return view


def _x(*lsl_times: float) -> list[str]:
    return [wall_clock(t, OFFSET) for t in lsl_times]


def test_the_score_figure_separates_usable_and_unusable_windows():
    fig = score_figure(_view())
    traces = {name: fig.data[i] for i, name in enumerate(SCORE_TRACES)}
    assert list(traces["score"].x) == _x(110.0, 111.0, 112.0, 114.0, 115.0)
    assert list(traces["unusable"].x) == _x(113.0)
    # lines break at the unusable window instead of running across it
    for line in ("smoothed", "estimate"):
        assert len(traces[line].x) == 6 and traces[line].y[3] is None
        assert None not in (traces[line].y[2], traces[line].y[4])
    assert list(traces["estimate"].y[:3]) == [0.6] * 3
    # the interval band: one hop-wide rectangle per usable window, none at the gap
    assert traces["band"].fill == "toself"
    band_x = [x for x in traces["band"].x if x is not None]
    ends = (110.0, 111.0, 112.0, 114.0, 115.0)
    assert band_x == [x for t in ends for x in _x(t - 1, t - 1, t, t)]
    assert [y for y in traces["band"].y if y is not None] == [0.4, 0.8, 0.8, 0.4] * 5
    # the closed train is one polygon; the open one is not drawn until it ends
    a, b = _x(112.5, 114.5)
    assert list(traces["trains"].x) == [a, a, b, b, a, None]
    assert list(traces["drug_cues"].x) == [*_x(111.0, 111.0), None]
    assert list(traces["neutral_cues"].x) == [*_x(111.5, 111.5), None]
    shapes = fig.layout.shapes
    assert any(s.type == "rect" and s.y0 == 0.01 and s.y1 == 0.45 for s in shapes), "HC band"


def test_no_band_is_drawn_before_the_monitor_said_which():
    assert not score_figure(_view(band=False)).layout.shapes


def test_an_extension_appends_to_the_same_traces_the_figure_drew():
    view = _view()
    new = view.history.since(3)
    data, indices, cap = score_extension(new, OFFSET, [(140.0, 144.0)], [(141.0, "drug")])
    assert indices == list(range(len(SCORE_TRACES))) and cap > 14_400
    assert data["x"][SCORE_TRACES.index("score")] == _x(114.0, 115.0)
    assert data["x"][SCORE_TRACES.index("unusable")] == []
    assert len(data["x"][SCORE_TRACES.index("trains")]) == 6
    assert data["x"][SCORE_TRACES.index("drug_cues")] == [*_x(141.0, 141.0), None]
    assert data["x"][SCORE_TRACES.index("neutral_cues")] == []
    assert all(len(x) == len(y) for x, y in zip(data["x"], data["y"], strict=True))
    assert score_extension([], OFFSET) is None


def test_the_x_axis_is_local_wall_clock_with_milliseconds():
    text = wall_clock(110.25, OFFSET)
    assert text.endswith(".250") and len(text) == len("2026-11-23 16:40:05.250")


def test_the_sci_strip_shows_every_pair():
    quality = {"nirs": {"pairs": ["S1_D1", "S2_D1"], "sci": [0.9, 0.2]}}
    fig = sci_strip(quality)
    assert list(fig.data[0].x) == ["S1_D1", "S2_D1"] and list(fig.data[0].z[0]) == [0.9, 0.2]
    empty = sci_strip(None)
    assert not empty.data and "No fNIRS" in empty.layout.annotations[0].text


def test_an_empty_session_shows_what_it_waits_for_not_an_empty_date_axis():
    fig = score_figure(SessionView("room1", "S8"))
    assert not fig.data and fig.layout.xaxis.visible is False
    assert "No window scored yet" in fig.layout.annotations[0].text


def test_the_session_range_of_healthy_controls_is_drawn_when_the_summary_has_it():
    view = _view()
    view.summary = {"estimate": {"hc_range": [0.2, 0.5]}}
    shapes = score_figure(view).layout.shapes
    assert any(s.y0 == 0.2 and s.y1 == 0.5 for s in shapes)


def test_the_partial_plotly_bundle_matches_the_plotly_package():
    """The page's plotly.js (dashboard/assets) is the version the figures are written for;
    an upgrade of plotly fails here until the bundle is rebuilt."""
    from dashboard.app import ASSETS
    from dashboard.server import PLOTLY_BUNDLE, plotly_bundle_mismatch

    assert (ASSETS / PLOTLY_BUNDLE).is_file()
    assert plotly_bundle_mismatch() is None
