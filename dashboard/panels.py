"""Panel builders: pure functions from store rows and messages to Dash HTML components.

Each panel is small and rebuilt whole when its message changes (once a second at most);
only the score figure is extended in place. Element ids used by the browser test and by
people reading the page are stable: ``session-row-<site>-<session>``, ``quality-eeg``,
``quality-nirs``, ``health-<role>``, ``latency``, ``broker-banner``...
"""

from __future__ import annotations

import time
from datetime import datetime

from dash import html

from dashboard.feed import FeedSnapshot
from dashboard.summary import Comparison

_STATE_CLASS = {"online": "ok", "degraded": "warn", "offline": "off", "starting": "warn"}
_STAGES = ("ingest", "preprocess", "inference", "publish", "total")


def _fmt(value: object, digits: int = 2, unit: str = "") -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}{unit}"
    return f"{value}{unit}"


def _since(unix: float) -> str:
    return datetime.fromtimestamp(unix).strftime("%H:%M:%S")


def broker_banner(feed: FeedSnapshot) -> tuple[str, str]:
    """``(text, css class)`` of the banner; the text is empty while the broker is connected."""
    if feed.connected:
        return "", "banner hidden"
    reason = f" ({feed.error})" if feed.error else ""
    return (
        f"Broker {feed.url} unreachable since {_since(feed.since_unix)}{reason}: retrying. "
        "What this page shows may be out of date.",
        "banner alert",
    )


def sessions_table(rows: list[dict], selected: str | None) -> html.Table:
    """Every session seen on the broker, with its state, newest score and phase."""
    header = html.Tr(
        [html.Th(h) for h in ("site", "session", "state", "windows", "score", "smoothed", "phase")]
    )
    body = []
    for row in rows:
        state = row["state"]
        body.append(
            html.Tr(
                [
                    html.Td(row["site"]),
                    html.Td(row["session"]),
                    html.Td(state, className=f"state {_STATE_CLASS.get(state, 'off')}"),
                    html.Td(row["windows"]),
                    html.Td(_fmt(row["last_score"])),
                    html.Td(_fmt(row["smoothed"])),
                    html.Td(row["phase"] or "–"),
                ],
                id=f"session-row-{row['site']}-{row['session']}",
                className="selected" if row["key"] == selected else "",
            )
        )
    if not body:
        body = [html.Tr(html.Td("No session on the broker yet.", colSpan=7))]
    return html.Table([html.Thead(header), html.Tbody(body)], className="grid")


def quality_panel(score: dict | None, quality: dict | None) -> list:
    """Per-modality quality of the newest window, EEG channel status and bad channels named.

    ``score`` is the newest ``neuroclip.score/1`` message (its ``quality`` block), ``quality``
    the newest ``neuroclip.quality/1`` message (flags per EEG channel).
    """
    if score is None:
        return [html.P("No window scored yet.")]
    q = score.get("quality") or {}
    reasons = q.get("reasons") or []
    verdict = "usable" if q.get("usable") else "unusable: " + ", ".join(reasons or ["unknown"])
    eeg, nirs = q.get("eeg"), q.get("nirs")
    eeg_block = html.Div(
        [
            html.H4("EEG"),
            html.P(
                f"{_fmt(100 * eeg['bad_fraction'] if eeg else None, 0, ' %')} of channels bad"
                + (": " + ", ".join(eeg["bad_channels"]) if eeg and eeg["bad_channels"] else "")
            ),
            _eeg_status(quality),
        ],
        id="quality-eeg",
    )
    nirs_block = html.Div([html.H4("fNIRS"), html.P(_nirs_text(nirs))], id="quality-nirs")
    return [
        html.P(
            f"Window {score.get('seq')}: {verdict}",
            className="ok" if q.get("usable") else "warn",
            id="quality-verdict",
        ),
        eeg_block,
        nirs_block,
    ]


COUPLING_INDEX_NAMES = {"sci": "scalp coupling index", "psp": "cardiac peak power"}
"""The index a score's ``quality.nirs.index`` names: SCI for intensity and optical density,
the cardiac peak power of HbO for haemoglobin input (older messages carry no index: SCI)."""


def _nirs_text(nirs: dict | None) -> str:
    """Good pairs, the median coupling index by its name, poor and saturated pairs."""
    index = COUPLING_INDEX_NAMES.get((nirs or {}).get("index", "sci"), "coupling index")
    text = (
        f"{_fmt(100 * nirs['good_fraction'] if nirs else None, 0, ' %')} of pairs "
        f"good, median {index} {_fmt(nirs['sci_median'] if nirs else None)}"
    )
    saturated = (nirs or {}).get("saturated_pairs") or []
    poor = [p for p in (nirs or {}).get("bad_pairs") or [] if p not in saturated]
    if poor:
        text += "; poor coupling: " + ", ".join(poor)
    if saturated:
        text += "; saturated or lost: " + ", ".join(saturated)
    return text


def _eeg_status(quality: dict | None) -> html.Div:
    """One cell per EEG channel, coloured and titled by its flags."""
    eeg = (quality or {}).get("eeg")
    if not eeg:
        return html.Div()
    flagged: dict[str, list[str]] = {}
    for flag, channels in (eeg.get("flags") or {}).items():
        for channel in channels:
            flagged.setdefault(channel, []).append(flag)
    cells = [
        html.Span(
            name,
            title=", ".join(flagged[name]) if name in flagged else "good",
            className="chan bad" if name in flagged else "chan good",
        )
        for name in eeg.get("channels", [])
    ]
    return html.Div(cells, className="channels", id="eeg-channels")


def health_panel(status: dict | None, feed: FeedSnapshot) -> list:
    """Streams (age, rates, gaps, reconnects, clock offset), latency per stage, the monitor's
    broker and log, and this page's own broker connection."""
    if status is None:
        return [html.P("No status from this session's monitor yet.")]
    streams = status.get("streams") or {}
    header = html.Tr(
        [
            html.Th(h)
            for h in (
                "stream",
                "connected",
                "age (s)",
                "rate (Hz)",
                "gaps",
                "missing",
                "reconnects",
                "clock offset (ms)",
            )
        ]
    )
    rows = []
    for role, s in streams.items():
        nominal = s.get("rate_nominal")
        rate = f"{_fmt(s.get('rate_effective'))} / {_fmt(nominal, 0)}" if nominal else "irregular"
        connected = "stale" if s.get("stale") else ("yes" if s.get("connected") else "NO")
        rows.append(
            html.Tr(
                [
                    html.Td(role.upper()),
                    html.Td(connected, className="ok" if connected == "yes" else "warn"),
                    html.Td(_fmt(s.get("age_s"))),
                    html.Td(rate),
                    html.Td(s.get("gaps", "–")),
                    html.Td(s.get("missing_samples", "–")),
                    html.Td(s.get("reconnects", "–")),
                    html.Td(_fmt(s.get("clock_offset_ms"))),
                ],
                id=f"health-{role}",
            )
        )
    latency = status.get("latency_ms") or {}
    latency_row = html.Table(
        [
            html.Tr([html.Th("latency (ms)"), *[html.Th(s) for s in _STAGES]]),
            *[
                html.Tr(
                    [
                        html.Td(q),
                        *[html.Td(_fmt((latency.get(s) or {}).get(q), 1)) for s in _STAGES],
                    ]
                )
                for q in ("p50", "p99")
            ],
        ],
        className="grid",
        id="latency",
    )
    broker = status.get("broker") or {}
    log = status.get("log") or {}
    model = status.get("model") or {}
    age = time.time() - float(status.get("emitted_unix", time.time()))
    facts = [
        f"monitor {status.get('state', '?')} (status {age:.0f} s old)",
        "monitor's broker: "
        + (
            "off"
            if not broker.get("enabled")
            else ("connected" if broker.get("connected") else "DOWN")
            + f", {broker.get('queued', 0)} queued, {broker.get('dropped', 0)} dropped"
        ),
        "session log: " + ("ok" if log.get("ok", True) else f"ERROR {log.get('error')}"),
        f"model {model.get('name', '?')} {str(model.get('sha256', ''))[:12]} on "
        + ", ".join(model.get("providers") or ["?"]),
        f"this page's broker: {'connected' if feed.connected else 'DOWN'} ({feed.url}), "
        f"{feed.messages} messages, {feed.ignored} ignored",
    ]
    return [
        html.Table([html.Thead(header), html.Tbody(rows)], className="grid", id="health-streams"),
        latency_row,
        html.Ul([html.Li(f) for f in facts], className="facts"),
    ]


def summary_panel(comparisons: list[Comparison]) -> list:
    """Baseline against now, and pre against post when both sessions exist."""
    if not comparisons:
        return [html.P("Not enough usable windows for a comparison yet.")]
    items = []
    for c in comparisons:
        items.append(
            html.Li(
                f"{c.label}: {c.before_name} {c.before:.2f} → {c.after_name} {c.after:.2f} "
                f"({c.change:+.2f}, {c.measure}; {c.direction} healthy controls"
                + (f" at {c.hc_median:.2f})" if c.hc_median is not None else ")"),
                id=f"summary-{c.label.replace(' ', '-')}",
            )
        )
    return [html.Ul(items)]
