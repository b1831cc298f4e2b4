"""Figure builders: pure functions from a session view to Plotly figures and trace updates.

The score figure is built once per session with every held point; afterwards the page only
appends new points with :func:`score_extension` (Dash's ``extendData``), so a long session
is never redrawn per tick. Trace order is fixed (:data:`SCORE_TRACES`) because
``extendData`` addresses traces by index.
"""

from __future__ import annotations

import math

import plotly.graph_objects as go

from dashboard.history import ScorePoint
from dashboard.store import SessionView

SCORE_TRACES = ("interval_high", "interval_low", "score", "smoothed", "unusable")
"""Indices of the traces :func:`score_extension` extends, in order."""
MAX_POINTS = 20_000
"""``extendData``'s cap per trace: older points leave the browser beyond it."""


def _columns(points: list[ScorePoint]) -> dict[str, list]:
    usable = [p for p in points if p.usable and p.score is not None]
    unusable = [p for p in points if not p.usable]
    return {
        "interval_high": ([p.t_end for p in usable], [p.high for p in usable]),
        "interval_low": ([p.t_end for p in usable], [p.low for p in usable]),
        "score": ([p.t_end for p in usable], [p.score for p in usable]),
        "smoothed": ([p.t_end for p in points], [p.smoothed for p in points]),
        "unusable": ([p.t_end for p in unusable], [0.0] * len(unusable)),
    }


def score_figure(view: SessionView, hc_band: tuple[float, float] | None = None) -> go.Figure:
    """The live score of one session: interval band, score, smoothed score, the healthy
    control band, rTMS trains shaded, cues marked and unusable windows as grey ticks."""
    columns = _columns(view.history.points())
    fig = go.Figure()
    styles = {
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
    }
    for name in SCORE_TRACES:
        x, y = columns[name]
        fig.add_trace(go.Scattergl(x=x, y=y, **styles[name]))
    if hc_band is not None and all(v is not None for v in hc_band):
        fig.add_hrect(
            y0=hc_band[0],
            y1=hc_band[1],
            fillcolor="rgba(44,160,44,0.12)",
            line_width=0,
            annotation_text="healthy controls (5-95 %)",
            annotation_position="top left",
        )
    for start, end in view.trains:
        stop = end if not math.isnan(end) else start + 4.0
        fig.add_vrect(x0=start, x1=stop, fillcolor="rgba(255,127,14,0.25)", line_width=0)
    for t, kind in view.cues:
        fig.add_vline(x=t, line_dash="dot", line_color="#9467bd" if kind == "drug" else "#8c564b")
    fig.update_layout(
        yaxis={"range": [0, 1], "title": "MA-likeness"},
        xaxis={"title": "LSL time (s)"},
        margin={"l": 50, "r": 10, "t": 10, "b": 40},
        uirevision=view.key,
        legend={"orientation": "h"},
    )
    return fig


def score_extension(points: list[ScorePoint]) -> tuple[dict, list[int], int] | None:
    """``(data, trace_indices, max_points)`` for Dash's ``extendData``; None if no points."""
    if not points:
        return None
    columns = _columns(points)
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
