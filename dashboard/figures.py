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
    "interval_high",
    "interval_low",
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


def wall_clock(t: float, offset: float | None) -> str:
    """A monitor LSL time as local wall-clock text Plotly reads as a date (ms precision)."""
    stamp = datetime.fromtimestamp(t + (offset or 0.0))
    return stamp.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _columns(
    points: list[ScorePoint],
    offset: float | None,
    trains: list[tuple[float, float]],
    cues: list[tuple[float, str]],
) -> dict[str, tuple[list, list]]:
    def clock(t: float) -> str:
        return wall_clock(t, offset)

    usable = [p for p in points if p.usable and p.score is not None]
    unusable = [p for p in points if not p.usable]
    usable_x = [clock(p.t_end) for p in usable]
    columns: dict[str, tuple[list, list]] = {
        "interval_high": (usable_x, [p.high for p in usable]),
        "interval_low": (usable_x, [p.low for p in usable]),
        "score": (usable_x, [p.score for p in usable]),
        "smoothed": ([clock(p.t_end) for p in points], [p.smoothed for p in points]),
        "unusable": ([clock(p.t_end) for p in unusable], [0.0] * len(unusable)),
        "trains": ([], []),
        "drug_cues": ([], []),
        "neutral_cues": ([], []),
    }
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
    "interval_high": {"mode": "lines", "line": {"width": 0}, "showlegend": False},
    "interval_low": {
        "mode": "lines",
        "line": {"width": 0},
        "fill": "tonexty",
        "fillcolor": "rgba(31,119,180,0.2)",
        "name": "interval",
    },
    "score": {"mode": "markers", "marker": {"size": 4, "color": "#1f77b4"}, "name": "score"},
    "smoothed": {"mode": "lines", "line": {"color": "#d62728", "width": 2}, "name": "smoothed"},
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
_WEBGL = {"score", "smoothed", "unusable"}
"""Traces drawn with WebGL; the interval band, trains and cues need SVG (WebGL draws no fills).
The page keeps every trace short by redrawing from the decimated history now and then
(see ``REDRAW_AFTER`` in :mod:`dashboard.app`)."""


def score_figure(view: SessionView) -> go.Figure:
    """The live score of one session: interval band, score, smoothed score, the healthy
    control band, rTMS trains shaded, drug and neutral cues marked, unusable windows as
    grey ticks. The x axis is the wall-clock time of each window's end."""
    columns = _columns(view.history.points(), view.clock_offset, view.closed_trains(), view.cues)
    fig = go.Figure()
    for name in SCORE_TRACES:
        x, y = columns[name]
        trace = go.Scattergl if name in _WEBGL else go.Scatter
        fig.add_trace(trace(x=x, y=y, **_STYLES[name]))
    band = view.hc_band
    if band is not None:
        fig.add_hrect(
            y0=band[0],
            y1=band[1],
            fillcolor="rgba(44,160,44,0.12)",
            line_width=0,
            annotation_text="healthy controls (5-95 %)",
            annotation_position="top left",
        )
    fig.update_layout(
        yaxis={"range": [0, 1], "title": "MA-likeness (calibrated)", "fixedrange": True},
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
) -> tuple[dict, list[int], int] | None:
    """``(data, trace_indices, max_points)`` for Dash's ``extendData``: new points, newly
    closed trains and new cues appended to the traces :func:`score_figure` drew. None when
    there is nothing new."""
    if not (points or trains or cues):
        return None
    columns = _columns(points, offset, list(trains), list(cues))
    data = {
        "x": [columns[name][0] for name in SCORE_TRACES],
        "y": [columns[name][1] for name in SCORE_TRACES],
    }
    return data, list(range(len(SCORE_TRACES))), MAX_POINTS


def sci_strip(quality: dict | None, threshold: float = 0.5) -> go.Figure:
    """The fNIRS scalp coupling index per pair as a one-row heat strip (bad pairs below
    ``threshold`` are named in the hover text)."""
    nirs = (quality or {}).get("nirs") or {"pairs": [], "sci": []}
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
