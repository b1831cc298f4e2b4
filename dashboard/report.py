"""The session report: one self-contained HTML page from monitor session logs.

``neuroclip report LOG [LOG ...] --out R.html`` and the dashboard's link for a finished
session both build it here. It reads the session logs (one score message per window, JSON
lines; the record of truth) and shows, per session: the trajectory (window scores as dots,
the running session estimate with its interval, rTMS trains shaded, unusable windows as
ticks and gaps), the final estimate and its band, the phases, quality over time, the
estimate of each part, pre against post when the logs hold both sessions of one patient
(``P012-pre`` and ``P012-post``), the model that scored them and the not-a-medical-device
note. Charts are inline SVG: the page needs no script and no network.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from contract.errors import NeuroclipError
from contract.messages import READABLE_FORMATS, valid_id
from dashboard.summary import PART_NAMES, treatment_stage

NOT_A_DEVICE = (
    "Research software, not a medical device: the estimate is not a diagnosis and must not "
    "guide treatment. Sessions are pseudonymous ids; no patient names."
)
_W, _H, _PAD = 900, 260, 40


@dataclass
class SessionRecord:
    """The windows of one session, from one or more logs (monitor runs), in order."""

    site: str
    session: str
    windows: list[dict] = field(default_factory=list)
    sources: list[Path] = field(default_factory=list)

    @property
    def key(self) -> str:
        """``site/session``."""
        return f"{self.site}/{self.session}"

    @property
    def usable(self) -> list[dict]:
        """Windows that were scored."""
        return [w for w in self.windows if w.get("usable") and w.get("score") is not None]

    def final_estimate(self) -> dict | None:
        """The session estimate after the last window (the newest run's)."""
        for w in reversed(self.windows):
            if (w.get("estimate") or {}).get("session"):
                return w["estimate"]["session"]
        return None

    def part_estimates(self) -> dict[str, dict]:
        """Each part's estimate as its last window left it."""
        parts: dict[str, dict] = {}
        for w in self.windows:
            estimate = w.get("estimate") or {}
            if estimate.get("part") and estimate.get("part_estimate"):
                parts[estimate["part"]] = estimate["part_estimate"]
        return {p: parts[p] for p in PART_NAMES if p in parts}

    def models(self) -> list[tuple[str, str]]:
        """Every (name, sha256) that scored a window of the session."""
        seen = dict.fromkeys((w["model"]["name"], w["model"]["sha256"]) for w in self.windows)
        return list(seen)


def read_logs(paths: Iterable[Path]) -> list[SessionRecord]:
    """Session logs grouped by site and session, windows in order; a clear error for a file
    that is missing or holds no score message."""
    sessions: dict[str, SessionRecord] = {}
    for path in sorted(Path(p) for p in paths):
        if not path.is_file():
            raise NeuroclipError(
                f"Session log {path} does not exist.",
                fix="give the .scores.jsonl files the monitor wrote (log.dir, 'sessions/' "
                "by default).",
            )
        count = 0
        with path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                try:
                    message = json.loads(line)
                except ValueError:
                    raise NeuroclipError(
                        f"{path}, line {number}: not JSON ({line[:60]!r}).",
                        fix="give a session log (.scores.jsonl) as the monitor writes it.",
                    ) from None
                if message.get("schema") not in READABLE_FORMATS["score"]:
                    continue
                key = f"{message['site']}/{message['session']}"
                record = sessions.setdefault(
                    key, SessionRecord(message["site"], message["session"])
                )
                if path not in record.sources:
                    record.sources.append(path)
                record.windows.append(message)
                count += 1
        if count == 0:
            raise NeuroclipError(
                f"{path} holds no score message.",
                fix="give a session log (.scores.jsonl) as the monitor writes it.",
            )
    return [sessions[k] for k in sorted(sessions)]


def _esc(value: object) -> str:
    return html.escape(str(value))


def _fmt(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _interval(estimate: dict | None) -> str:
    if not estimate:
        return "–"
    return f"{estimate['probability']:.2f} ({estimate['low']:.2f}–{estimate['high']:.2f})"


def _runs(windows: list[dict], key) -> list[tuple[object, int, int]]:
    """``(value, first, last)`` index runs of ``key(window)``."""
    runs: list[tuple[object, int, int]] = []
    for i, w in enumerate(windows):
        value = key(w)
        if runs and runs[-1][0] == value and runs[-1][2] == i - 1:
            runs[-1] = (value, runs[-1][1], i)
        else:
            runs.append((value, i, i))
    return runs


class _Axes:
    """Minutes since the first window on x, 0..1 on y, mapped to SVG pixels."""

    def __init__(self, t0: float, t1: float):
        self.t0, self.span = t0, max(t1 - t0, 1.0)

    def x(self, t: float) -> float:
        return _PAD + (t - self.t0) / self.span * (_W - 2 * _PAD)

    @staticmethod
    def y(v: float) -> float:
        return _H - _PAD - v * (_H - 2 * _PAD)

    def frame(self, y_label: str) -> list[str]:
        parts = [
            f'<rect x="{_PAD}" y="{_PAD}" width="{_W - 2 * _PAD}" height="{_H - 2 * _PAD}"'
            ' fill="#fff" stroke="#ccc"/>'
        ]
        for v in (0, 0.25, 0.5, 0.75, 1.0):
            y = self.y(v)
            parts.append(
                f'<line x1="{_PAD}" x2="{_W - _PAD}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>'
            )
            parts.append(f'<text x="{_PAD - 6}" y="{y + 4:.1f}" text-anchor="end">{v:g}</text>')
        minutes = self.span / 60
        step = next(s for s in (0.25, 0.5, 1, 2, 5, 10, 15, 30, 60, 120) if minutes / s <= 10)
        for k in range(int(minutes / step) + 1):
            x = self.x(self.t0 + 60 * k * step)
            parts.append(
                f'<text x="{x:.1f}" y="{_H - _PAD + 16}" text-anchor="middle">{k * step:g}</text>'
            )
        parts.append(f'<text x="{_W / 2}" y="{_H - 6}" text-anchor="middle">minutes</text>')
        parts.append(
            f'<text x="12" y="{_H / 2}" transform="rotate(-90 12 {_H / 2})" '
            f'text-anchor="middle">{_esc(y_label)}</text>'
        )
        return parts


def _polyline(points: list[tuple[float, float] | None], colour: str, width: float) -> str:
    """Lines between consecutive points; ``None`` breaks the line (a gap)."""
    paths, current = [], []
    for p in [*points, None]:
        if p is None:
            if len(current) > 1:
                paths.append(" ".join(f"{x:.1f},{y:.1f}" for x, y in current))
            current = []
        else:
            current.append(p)
    return "".join(
        f'<polyline points="{d}" fill="none" stroke="{colour}" stroke-width="{width}"/>'
        for d in paths
    )


def _svg(parts: list[str], title: str) -> str:
    return (
        f'<svg viewBox="0 0 {_W} {_H}" role="img" aria-label="{_esc(title)}" '
        f'font-size="11" font-family="sans-serif">{"".join(parts)}</svg>'
    )


def _previous_end(windows: list[dict], i: int) -> float:
    """Where window ``i``'s own stretch of time starts: the previous window's end (one hop
    back for the first)."""
    end = windows[i]["window"]["end"]
    if i > 0:
        return max(windows[i - 1]["window"]["end"], end - 60.0)
    if len(windows) > 1:
        return end - (windows[1]["window"]["end"] - end)
    return end - 1.0


def trajectory_svg(record: SessionRecord, hc_range: tuple[float, float] | None) -> str:
    """Window scores, the running estimate with its interval, trains, unusable windows."""
    windows = record.windows
    axes = _Axes(windows[0]["window"]["end"], windows[-1]["window"]["end"])
    parts = axes.frame("P(MA-like)")
    if hc_range is not None:
        y0, y1 = axes.y(hc_range[1]), axes.y(hc_range[0])
        parts.append(
            f'<rect x="{_PAD}" y="{y0:.1f}" width="{_W - 2 * _PAD}" '
            f'height="{y1 - y0:.1f}" fill="rgba(44,160,44,0.15)"/>'
        )
    for phase, first, last in _runs(windows, lambda w: w.get("phase")):
        if phase == "rtms_train":
            a = axes.x(_previous_end(windows, first))
            b = axes.x(windows[last]["window"]["end"])
            parts.append(
                f'<rect x="{a:.1f}" y="{_PAD}" width="{max(b - a, 1):.1f}" '
                f'height="{_H - 2 * _PAD}" fill="rgba(255,127,14,0.2)"/>'
            )
    band, line = [], []
    for i, w in enumerate(windows):
        x = axes.x(w["window"]["end"])
        session = (w.get("estimate") or {}).get("session") if w.get("usable") else None
        if session:  # one rectangle per window, from the previous window's end
            a = axes.x(_previous_end(windows, i))
            top, bottom = axes.y(session["high"]), axes.y(session["low"])
            band.append(
                f'<rect x="{a:.1f}" y="{top:.1f}" width="{max(x - a, 0.5):.1f}" '
                f'height="{bottom - top:.1f}" fill="#b8d4ee"/>'
            )
        line.append((x, axes.y(session["probability"])) if session else None)
        if not w.get("usable"):
            parts.append(
                f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{_H - _PAD}" '
                f'y2="{_H - _PAD - 6}" stroke="#888"/>'
            )
    parts.extend(band)
    parts.extend(
        f'<circle cx="{axes.x(w["window"]["end"]):.1f}" cy="{axes.y(w["score"]):.1f}" r="2" '
        'fill="#6a9fd0"/>'
        for w in record.usable
    )
    parts.append(_polyline(line, "#08306b", 2.5))
    return _svg(parts, f"trajectory of {record.key}")


def _quality(window: dict, modality: str, name: str) -> float | None:
    block = (window.get("quality") or {}).get(modality)
    return None if not block else float(block[name])


def quality_svg(record: SessionRecord) -> str:
    """Over time: the usable fraction of windows, EEG channels good, fNIRS pairs good
    (in at most 60 bins of at least 10 s)."""
    windows = record.windows
    t0 = windows[0]["window"]["end"]
    axes = _Axes(t0, windows[-1]["window"]["end"])
    parts = axes.frame("fraction")
    bin_s = max(10.0, axes.span / 60)
    bins: dict[int, list[dict]] = {}
    for w in windows:
        bins.setdefault(int((w["window"]["end"] - t0) // bin_s), []).append(w)
    series: dict[str, list[tuple[float, float] | None]] = {"usable": [], "eeg": [], "nirs": []}
    for m in sorted(bins):
        ws = bins[m]
        x = axes.x(t0 + bin_s * (m + 0.5))
        series["usable"].append((x, axes.y(sum(bool(w.get("usable")) for w in ws) / len(ws))))
        eeg = [v for w in ws if (v := _quality(w, "eeg", "bad_fraction")) is not None]
        nirs = [v for w in ws if (v := _quality(w, "nirs", "good_fraction")) is not None]
        series["eeg"].append((x, axes.y(1 - sum(eeg) / len(eeg))) if eeg else None)
        series["nirs"].append((x, axes.y(sum(nirs) / len(nirs))) if nirs else None)
    colours = {"usable": "#222", "eeg": "#1f77b4", "nirs": "#2ca02c"}
    for name, points in series.items():
        parts.append(_polyline(points, colours[name], 2))
        parts.extend(
            f'<circle cx="{p[0]:.1f}" cy="{p[1]:.1f}" r="2.5" fill="{colours[name]}"/>'
            for p in points
            if p is not None
        )
    legend = (
        ("usable windows", "usable"),
        ("EEG channels good", "eeg"),
        ("fNIRS pairs good", "nirs"),
    )
    for i, (label, name) in enumerate(legend):
        x = _PAD + 10 + 170 * i
        parts.append(
            f'<line x1="{x}" x2="{x + 20}" y1="{_PAD - 12}" y2="{_PAD - 12}" '
            f'stroke="{colours[name]}" stroke-width="2"/>'
        )
        parts.append(f'<text x="{x + 26}" y="{_PAD - 8}">{label}</text>')
    return _svg(parts, f"quality of {record.key}")


def _phases_table(record: SessionRecord) -> str:
    windows, t0 = record.windows, record.windows[0]["window"]["end"]
    rows = []
    trains = 0
    for (phase, cue), first, last in _runs(windows, lambda w: (w.get("phase"), w.get("cue"))):
        if phase == "rtms_train":
            trains += 1
            continue
        if cue:
            phase = f"{phase} · {cue} cue"
        span = windows[first : last + 1]
        usable = sum(bool(w.get("usable")) for w in span)
        rows.append(
            f"<tr><td>{_esc(phase)}</td><td>{(windows[first]['window']['end'] - t0) / 60:.1f}"
            f"</td><td>{(windows[last]['window']['end'] - t0) / 60:.1f}</td>"
            f"<td>{len(span)}</td><td>{usable}</td></tr>"
        )
    return (
        f"<p>{trains} rTMS train(s) (shaded in the trajectory; their windows are mostly "
        "unusable).</p><table><tr><th>phase</th><th>from (min)</th><th>to (min)</th>"
        f"<th>windows</th><th>usable</th></tr>{''.join(rows)}</table>"
    )


def _parts_table(record: SessionRecord) -> str:
    parts = record.part_estimates()
    if not parts:
        return (
            "<p>No part of the session has an estimate (no usable window, or a log from "
            "before estimates were logged).</p>"
        )
    rows = "".join(
        f"<tr><td>{PART_NAMES[p]}</td><td>{_interval(e)}</td><td>{e['windows']}</td>"
        f"<td>{_esc(e.get('band') or '–')}</td></tr>"
        for p, e in parts.items()
    )
    return (
        "<table><tr><th>part</th><th>estimate (95 % interval)</th><th>usable windows</th>"
        f"<th>against healthy controls</th></tr>{rows}</table>"
    )


def _pre_post(records: list[SessionRecord]) -> str:
    """Pre against post for every patient whose two sessions are in the report."""
    staged: dict[str, dict[str, SessionRecord]] = {}
    for r in records:
        stage = treatment_stage(r.session)
        if stage is not None:
            staged.setdefault(stage[0], {})[stage[1]] = r
    rows = []
    for stem, pair in sorted(staged.items()):
        if "pre" not in pair or "post" not in pair:
            continue
        pre, post = pair["pre"].final_estimate(), pair["post"].final_estimate()
        base_pre = pair["pre"].part_estimates().get("baseline")
        base_post = pair["post"].part_estimates().get("baseline")
        change = f"{post['probability'] - pre['probability']:+.2f}" if pre and post else "–"
        rows.append(
            f"<tr><td>{_esc(stem)}</td><td>{_interval(pre)}</td><td>{_interval(post)}</td>"
            f"<td>{change}</td><td>{_interval(base_pre)}</td><td>{_interval(base_post)}</td></tr>"
        )
    if not rows:
        return ""
    return (
        "<h2>Pre against post treatment</h2><p>Sessions paired by their ids (a stem ending in "
        "<code>pre</code> and <code>post</code>). Intervals that overlap do not show a change."
        "</p><table><tr><th>patient</th><th>pre: session</th><th>post: session</th>"
        "<th>change</th><th>pre: baseline</th><th>post: baseline</th></tr>"
        f"{''.join(rows)}</table>"
    )


def _session_section(record: SessionRecord, hc_range: tuple[float, float] | None) -> str:
    windows = record.windows
    estimate = record.final_estimate()
    start = windows[0].get("emitted_unix")
    when = datetime.fromtimestamp(start).strftime("%Y-%m-%d %H:%M") if start else "–"
    minutes = (windows[-1]["window"]["end"] - windows[0]["window"]["end"]) / 60
    band = (estimate or {}).get("band")
    headline = (
        f"<p class='big'>{_interval(estimate)}</p><p>session estimate, P(MA-like) with its 95 % "
        f"interval, from {estimate['windows']} usable windows"
        + (f"; <b>{_esc(band)}</b> the healthy-control range" if band else "")
        + "</p>"
        if estimate
        else "<p class='big'>no estimate</p><p>No usable window (or a log written before "
        "the session estimate was logged).</p>"
    )
    models = ", ".join(f"{_esc(n)} <code>{s[:12]}</code>" for n, s in record.models())
    return (
        f"<section><h2>Session {_esc(record.key)}</h2>"
        f"<p>first window {when} · {minutes:.1f} min · {len(windows)} windows, "
        f"{len(record.usable)} usable · model {models} · "
        f"log(s): {', '.join(_esc(p.name) for p in record.sources)}</p>"
        f"{headline}<h3>Trajectory</h3>{trajectory_svg(record, hc_range)}"
        "<p class='legend'>dots: window scores · dark line: running session estimate · light "
        "band: its 95 % interval · orange: rTMS trains · grey ticks: unusable windows (the "
        "line breaks there) · green: healthy-control range, when known</p>"
        f"<h3>Parts of the session</h3>{_parts_table(record)}"
        f"<h3>Phases</h3>{_phases_table(record)}"
        f"<h3>Quality over time</h3>{quality_svg(record)}</section>"
    )


def build_report(paths: Iterable[Path], hc_range: tuple[float, float] | None = None) -> str:
    """The report page for the sessions in ``paths``; ``hc_range`` is the model's
    healthy-control range of session estimates, when known."""
    records = read_logs(paths)
    body = "".join(_session_section(r, hc_range) for r in records)
    title = "NeuroCLIP session report: " + ", ".join(r.key for r in records)
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{_esc(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{_esc(title)}</h1><p class='note'>{NOT_A_DEVICE}</p>"
        f"{_pre_post(records)}{body}"
        f"<p class='note'>Built {datetime.now().strftime('%Y-%m-%d %H:%M')} from the "
        "monitor's session logs by <code>neuroclip report</code>. "
        f"{NOT_A_DEVICE}</p></body></html>"
    )


_CSS = (
    "body{font-family:system-ui,sans-serif;max-width:980px;margin:16px auto;color:#222}"
    "section{border-top:2px solid #dde1e6;margin-top:18px}"
    "table{border-collapse:collapse;margin:6px 0}td,th{border-bottom:1px solid #eee;"
    "padding:2px 10px;text-align:left}.big{font-size:2em;font-weight:700;margin:4px 0}"
    ".note{background:#fff6e0;padding:6px 10px;border-radius:4px}.legend{color:#555;"
    "font-size:.9em}svg{width:100%;height:auto}"
)


class SessionReports:
    """Finished sessions' reports served by the dashboard, from the monitors' session-log
    folder on this machine (``sessions_dir``; none: no report links)."""

    def __init__(self, sessions_dir: Path | None):
        self.sessions_dir = sessions_dir

    def logs(self, site: str, session: str) -> list[Path]:
        """Every log of one session (one per monitor run), oldest first."""
        if self.sessions_dir is None or not (valid_id(site) and valid_id(session)):
            return []
        return sorted((self.sessions_dir / site).glob(f"{session}_*.scores.jsonl"))

    def available(self, site: str, session: str) -> bool:
        """Whether a report can be built for this session here."""
        return bool(self.logs(site, session))

    @staticmethod
    def link(site: str, session: str) -> str:
        """The report's address on the dashboard."""
        return f"/report/{site}/{session}"
