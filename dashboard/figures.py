"""Figure builders: pure functions from a session view to Plotly figures and trace updates.

The score figure is built once per session with every held point; afterwards the page only
appends new points with :func:`score_extension` (Dash's ``extendData``), so a long session
is never redrawn per tick. Trace order is fixed (:data:`SCORE_TRACES`) because
``extendData`` addresses traces by index.
"""

from __future__ import annotations

from datetime import datetime

import plotly.graph_objects as go

from dashboard.history import ScorePoint
from dashboard.store import SessionView

SCORE_TRACES = (
    "band",
    "estimate",
    "score",
    "smoothed",
    "unusable",
    "trains",
    "drug_cues",
    "neutral_cues",
)
"""Indices of the traces :func:`score_extension` extends, in order."""
MAX_POINTS = 20_000
"""``extendData``'s cap per trace: older points leave the browser beyond it."""
_CUE_TRACE = {"drug": "drug_cues", "neutral": "neutral_cues"}
BAND_COLOUR = "#b8d4ee"
"""The estimate's interval: opaque, so overlapping window segments read as one band."""


def wall_clock(t: float, offset: float | None) -> str:
    """A monitor LSL time as local wall-clock text Plotly reads as a date (ms precision)."""
    stamp = datetime.fromtimestamp(t + (offset or 0.0))
    return stamp.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _columns(
    points: list[ScorePoint],
    offset: float | None,
    trains: list[tuple[float, float]],
    cues: list[tuple[float, str]],
    hop_s: float = 1.0,
) -> dict[str, tuple[list, list]]:
    """The x and y of every trace. Lines (estimate, smoothed) have a ``None`` at every
    unusable window, so they break at gaps instead of running across them; the band is one
    filled rectangle per usable window, one hop wide, so neighbours join into a band and a
    gap stays a gap (Plotly's fill between two traces bridges gaps)."""

    def clock(t: float) -> str:
        return wall_clock(t, offset)

    usable = [p for p in points if p.usable and p.score is not None]
    unusable = [p for p in points if not p.usable]
    xs = [clock(p.t_end) for p in points]
    columns: dict[str, tuple[list, list]] = {
        "band": ([], []),
        "estimate": (xs, [p.estimate if p.usable else None for p in points]),
        "score": ([clock(p.t_end) for p in usable], [p.score for p in usable]),
        "smoothed": (xs, [p.smoothed if p.usable else None for p in points]),
        "unusable": ([clock(p.t_end) for p in unusable], [0.0] * len(unusable)),
        "trains": ([], []),
        "drug_cues": ([], []),
        "neutral_cues": ([], []),
    }
    for p in usable:
        if p.estimate_low is not None and p.estimate_high is not None:
            a, b = clock(p.t_end - hop_s * p.weight), clock(p.t_end)
            columns["band"][0].extend([a, a, b, b, None])
            low, high = p.estimate_low, p.estimate_high
            columns["band"][1].extend([low, high, high, low, None])
    for start, end in trains:  # one closed polygon per train; None separates them
        a, b = clock(start), clock(end)
        columns["trains"][0].extend([a, a, b, b, a, None])
        columns["trains"][1].extend([0, 1, 1, 0, 0, None])
    for t, kind in cues:  # one vertical segment per cue
        name = _CUE_TRACE.get(kind)
        if name is not None:
            columns[name][0].extend([clock(t), clock(t), None])
            columns[name][1].extend([0, 1, None])
    return columns


_STYLES: dict[str, dict] = {
    "band": {
        "mode": "lines",
        "fill": "toself",
        "fillcolor": BAND_COLOUR,
        "line": {"width": 0},
        "name": "estimate 95 % interval",
        "hoverinfo": "skip",
    },
    "estimate": {
        "mode": "lines",
        "line": {"color": "#08306b", "width": 3},
        "name": "session estimate",
        "connectgaps": False,
    },
    "score": {
        "mode": "markers",
        "marker": {"size": 5, "color": "#6a9fd0", "opacity": 0.8},
        "name": "window score",
    },
    "smoothed": {
        "mode": "lines",
        "line": {"color": "#d62728", "width": 1.5},
        "name": "smoothed window score",
        "connectgaps": False,
    },
    "unusable": {
        "mode": "markers",
        "marker": {"symbol": "line-ns-open", "size": 10, "color": "#7f7f7f"},
        "name": "unusable window",
    },
    "trains": {
        "mode": "lines",
        "fill": "toself",
        "fillcolor": "rgba(255,127,14,0.25)",
        "line": {"width": 0},
        "name": "rTMS train",
        "hoverinfo": "skip",
    },
    "drug_cues": {
        "mode": "lines",
        "line": {"color": "#9467bd", "dash": "dot"},
        "name": "drug cue",
        "hoverinfo": "skip",
    },
    "neutral_cues": {
        "mode": "lines",
        "line": {"color": "#8c564b", "dash": "dot"},
        "name": "neutral cue",
        "hoverinfo": "skip",
    },
}
_WEBGL = {"estimate", "score", "smoothed", "unusable"}
"""Traces drawn with WebGL; the band and trains need SVG (WebGL draws no fills). The page
keeps every trace short by redrawing from the decimated history now and then (see
``REDRAW_AFTER`` in :mod:`dashboard.app`)."""


def empty_figure(text: str, height: int = 380) -> go.Figure:
    """A blank figure that says what it waits for (no axes: an empty date axis would run
    from January 2000)."""
    fig = go.Figure()
    fig.add_annotation(
        text=text, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False, font={"size": 15}
    )
    fig.update_layout(
        xaxis={"visible": False},
        yaxis={"visible": False},
        margin={"l": 10, "r": 10, "t": 10, "b": 10},
        height=height,
        plot_bgcolor="#fafbfc",
    )
    return fig


def score_figure(view: SessionView) -> go.Figure:
    """The session's trajectory: the running session estimate with its interval band,
    window scores as dots, the smoothed window score, the healthy-control range, rTMS trains
    shaded, drug and neutral cues marked, unusable windows as grey ticks (and gaps in every
    line). The x axis is the wall-clock time of each window's end."""
    points = view.history.points()
    if not points:
        return empty_figure("No window scored yet: the trajectory starts after the warm-up.")
    columns = _columns(points, view.clock_offset, view.closed_trains(), view.cues, view.hop_s)
    fig = go.Figure()
    for name in SCORE_TRACES:
        x, y = columns[name]
        trace = go.Scattergl if name in _WEBGL else go.Scatter
        fig.add_trace(trace(x=x, y=y, **_STYLES[name]))
    band, label = view.hc_session_range, "healthy-control sessions (5-95 %)"
    if band is None:
        band, label = view.hc_band, "healthy-control windows (5-95 %)"
    if band is not None:
        fig.add_hrect(
            y0=band[0],
            y1=band[1],
            fillcolor="rgba(44,160,44,0.14)",
            line_width=0,
            annotation_text=label,
            annotation_position="top left",
        )
    fig.update_layout(
        yaxis={"range": [0, 1], "title": "P(MA-like), calibrated", "fixedrange": True},
        xaxis={"title": "window end (local time)", "type": "date"},
        margin={"l": 60, "r": 10, "t": 10, "b": 40},
        uirevision=view.key,
        legend={"orientation": "h", "y": -0.2},
        height=380,
    )
    return fig


def score_extension(
    points: list[ScorePoint],
    offset: float | None,
    trains: list[tuple[float, float]] = (),
    cues: list[tuple[float, str]] = (),
    hop_s: float = 1.0,
) -> tuple[dict, list[int], int] | None:
    """``(data, trace_indices, max_points)`` for Dash's ``extendData``: new points, newly
    closed trains and new cues appended to the traces :func:`score_figure` drew. None when
    there is nothing new."""
    if not (points or trains or cues):
        return None
    columns = _columns(points, offset, list(trains), list(cues), hop_s)
    data = {
        "x": [columns[name][0] for name in SCORE_TRACES],
        "y": [columns[name][1] for name in SCORE_TRACES],
    }
    return data, list(range(len(SCORE_TRACES))), MAX_POINTS


def sci_strip(quality: dict | None, threshold: float = 0.5) -> go.Figure:
    """The fNIRS scalp coupling index per pair as a one-row heat strip (bad pairs below
    ``threshold`` are named in the hover text)."""
    nirs = (quality or {}).get("nirs")
    if not nirs or not nirs.get("pairs"):
        return empty_figure("No fNIRS coupling index in the newest window (no data in it).", 140)
    fig = go.Figure(
        go.Heatmap(
            z=[nirs["sci"]],
            x=nirs["pairs"],
            y=["SCI"],
            zmin=0,
            zmax=1,
            colorscale=[[0, "#d62728"], [threshold, "#ffbf00"], [1, "#2ca02c"]],
            hovertemplate="%{x}: %{z:.2f}<extra></extra>",
        )
    )
    fig.update_layout(margin={"l": 40, "r": 10, "t": 10, "b": 60}, height=140)
    return fig
