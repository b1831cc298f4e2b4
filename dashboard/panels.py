"""Panel builders: pure functions from store rows and messages to Dash HTML components.

Each panel is small and rebuilt whole when its message changes (once a second at most);
only the score figure is extended in place. Element ids used by the browser test and by
people reading the page are stable: ``session-row-<site>-<session>``, ``quality-eeg``,
``quality-nirs``, ``health-<role>``, ``latency``, ``broker-banner``...
"""

from __future__ import annotations

import time
from datetime import datetime
from urllib.parse import urlencode

from dash import dcc, html

from dashboard.feed import FeedSnapshot
from dashboard.store import SessionView
from dashboard.summary import PART_NAMES, Comparison

PHASE_NAMES = {
    "unknown": "phase unknown (no markers)",
    "baseline": "baseline",
    "rtms_train": "rTMS train",
    "inter_train": "between trains",
    "post": "post-treatment",
}
BAND_TEXT = {
    "within": "within the healthy-control range",
    "near": "near the healthy-control range",
    "outside": "outside the healthy-control range",
}
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


def session_link(key: str) -> str:
    """The page's address for one session (a link an operator can bookmark or share)."""
    return "?" + urlencode({"session": key})


def sessions_table(rows: list[dict], selected: str | None) -> html.Table:
    """Every session seen on the broker, with its state, estimate and phase; each session
    links to its own page."""
    header = html.Tr(
        [html.Th(h) for h in ("site", "session", "state", "windows", "estimate", "phase")]
    )
    body = []
    for row in rows:
        state = row["state"]
        estimate = row.get("estimate") or {}
        body.append(
            html.Tr(
                [
                    html.Td(row["site"]),
                    html.Td(dcc.Link(row["session"], href=session_link(row["key"]))),
                    html.Td(state, className=f"state {_STATE_CLASS.get(state, 'off')}"),
                    html.Td(row["windows"]),
                    html.Td(_fmt(estimate.get("probability"))),
                    html.Td(PHASE_NAMES.get(row["phase"], row["phase"]) or "–"),
                ],
                id=f"session-row-{row['site']}-{row['session']}",
                className="selected" if row["key"] == selected else "",
            )
        )
    if not body:
        body = [html.Tr(html.Td("No session on the broker yet.", colSpan=6))]
    return html.Table([html.Thead(header), html.Tbody(body)], className="grid")


def quality_panel(score: dict | None, quality: dict | None, windows: int | None = None) -> list:
    """Per-modality quality of the newest window, EEG channel status and bad channels named.

    ``score`` is the newest score message (its ``quality`` block), ``quality`` the newest
    ``neuroclip.quality/1`` message (flags per EEG channel), ``windows`` the session's window
    count (the one the page shows everywhere).
    """
    if score is None:
        return [
            html.P("No window scored yet: quality comes with each window.", className="awaiting")
        ]
    q = score.get("quality") or {}
    reasons = q.get("reasons") or []
    verdict = "usable" if q.get("usable") else "unusable: " + ", ".join(reasons or ["unknown"])
    eeg, nirs = q.get("eeg"), q.get("nirs")
    if eeg is None and nirs is None:  # nothing was cut: the streams were lost or late
        return [
            html.P(
                f"Window {int(score.get('seq', -1)) + 1}"
                + (f" of {windows}" if windows else "")
                + f": {verdict}: no signal in this window.",
                className="warn",
                id="quality-verdict",
            )
        ]
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
            f"Window {int(score.get('seq', -1)) + 1}"
            + (f" of {windows}" if windows else "")
            + f": {verdict}",
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


def _clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    return (f"{hours}:" if hours else "") + f"{rest // 60:02d}:{rest % 60:02d}"


def _interval(estimate: dict) -> str:
    return f"95 % interval {estimate['low']:.2f}–{estimate['high']:.2f}"


def phase_text(view: SessionView) -> str:
    """Phase of the newest window, the train count (``train 3 of 10``) and the cue."""
    last = view.last_score or {}
    phase = last.get("phase")
    if phase is None:
        return ""
    text = PHASE_NAMES.get(phase, phase)
    started = len(view.trains)
    if started and phase in ("rtms_train", "inter_train"):
        text += f" · train {started}" + (
            f" of {view.trains_planned}" if view.trains_planned else ""
        )
    if last.get("cue"):
        text += f" · {last['cue']} cue"
    return text


def elapsed_s(view: SessionView, now: float) -> float | None:
    """Seconds since the monitor started (until it stopped, for a finished session)."""
    status = view.status or {}
    start = status.get("started_unix") or view.first_emitted_unix
    if start is None:
        return None
    end = ((status.get("stopped") or {}).get("ended_unix")) if view.finished else None
    return (end or now) - float(start)


def estimate_panel(view: SessionView | None, now: float | None = None) -> list:
    """The headline: the session estimate large, its interval and band, the last minutes,
    elapsed time, phase, per-part estimates; or what the page is waiting for."""
    now = time.time() if now is None else now
    if view is None:
        return [html.P("Waiting for a session on the broker.", className="awaiting")]
    elapsed = elapsed_s(view, now)
    facts = [
        html.Span(f"elapsed {_clock(elapsed)}" if elapsed is not None else "", id="elapsed"),
        html.Span(phase_text(view), id="phase-now"),
        html.Span(f"{view.windows} windows scored", id="window-count"),
    ]
    silence = _silent_s(view, now)
    if silence is not None:
        facts.append(
            html.Span(
                f"no new window for {silence:.0f} s: streams stale or lost (see stream health)",
                className="warn",
                id="stale-warning",
            )
        )
    estimate = view.estimate
    if estimate is None:
        return [_awaiting(view, now), html.Div(facts, className="facts-row")]
    session = estimate["session"]
    band = session.get("band")
    recent = estimate.get("recent")
    headline = html.Div(
        [
            html.Div(f"{session['probability']:.2f}", className="big", id="estimate-value"),
            html.Div(
                [
                    html.Div("session estimate, P(MA-like)", className="label"),
                    html.Div(_interval(session), id="estimate-interval"),
                    html.Div(
                        BAND_TEXT.get(band, "no healthy-control range in this model"),
                        className=f"band {band or 'none'}",
                        id="estimate-band",
                    ),
                    html.Div(f"from {session['windows']} usable windows", className="label"),
                ]
            ),
            html.Div(
                [
                    html.Div("last 5 minutes", className="label"),
                    html.Div(
                        f"{recent['probability']:.2f}" if recent else "–",
                        className="mid",
                        id="estimate-recent",
                    ),
                    html.Div(
                        _interval(recent) if recent else "no usable window", className="label"
                    ),
                ]
            ),
        ],
        className="headline",
    )
    return [headline, html.Div(facts, className="facts-row"), parts_table(view)]


def _silent_s(view: SessionView, now: float) -> float | None:
    """Seconds since the newest score of a running session, when that is several hops."""
    if view.finished or view.last_score is None:
        return None
    hop = ((view.status or {}).get("windows") or {}).get("hop_s") or 1.0
    age = now - float(view.last_score.get("emitted_unix", now))
    return age if age > max(10.0, 5 * float(hop)) else None


def _awaiting(view: SessionView, now: float) -> html.P:
    """What the page waits for before the first estimate: streams, the warm-up, or a
    usable window."""
    status = view.status or {}
    if view.finished:
        text = "The session ended without a usable window: no estimate."
    elif view.history.count:
        text = "No usable window yet: every window so far was unusable (see signal quality)."
    elif status.get("state") == "starting" or not status:
        text = "Waiting for the monitor to find the EEG and fNIRS streams."
    else:
        first_in = (status.get("windows") or {}).get("first_in_s")
        if isinstance(first_in, (int, float)):
            left = first_in - (now - float(status.get("emitted_unix", now)))
            text = (
                f"Warming up: the first score is due in about {max(0, round(left))} s."
                if left > 0
                else "Warming up: the first score is due now."
            )
        else:
            text = "Warming up: waiting for both streams' first samples."
    return html.P(text, className="awaiting", id="awaiting")


def parts_table(view: SessionView) -> html.Table | html.Div:
    """The estimate of each part of the session so far."""
    parts = view.part_estimates()
    if not parts:
        return html.Div(id="parts")
    rows = [
        html.Tr(
            [
                html.Td(PART_NAMES.get(name, name)),
                html.Td(f"{e['probability']:.2f}"),
                html.Td(f"{e['low']:.2f}–{e['high']:.2f}"),
                html.Td(e["windows"]),
                html.Td(BAND_TEXT.get(e.get("band"), "–").split(" the ")[0]),
            ],
            id=f"part-{name}",
        )
        for name, e in parts.items()
        if e is not None
    ]
    header = html.Tr([html.Th(h) for h in ("part", "estimate", "95 % interval", "windows", "")])
    return html.Table([html.Thead(header), html.Tbody(rows)], className="grid", id="parts")


def session_banner(view: SessionView | None, wanted: str | None, known: list[str]) -> tuple:
    """``(text, css class)`` for a link to an unknown session or a finished one."""
    if wanted and view is None:
        listed = ", ".join(known[:6]) if known else "none yet"
        return (
            f"No such session: {wanted!r} has sent nothing to this broker (sessions: {listed}). "
            "Check the link, or wait if the monitor is still starting.",
            "banner alert",
        )
    if view is not None and view.finished:
        stopped = (view.status or {}).get("stopped") or {}
        ended = stopped.get("ended_unix")
        reason = stopped.get("reason") or "reason not given"
        when = f" at {_since(ended)}" if isinstance(ended, (int, float)) else ""
        return (
            f"Session finished{when} ({reason}): {view.windows} windows scored.",
            "banner done",
        )
    return "", "banner hidden"
