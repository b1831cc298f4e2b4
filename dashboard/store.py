"""The dashboard's snapshot store: every message from the broker, folded per session.

One MQTT client feeds :meth:`SnapshotStore.ingest` with ``(topic, payload)`` from
``neuroclip/v1/#``; Dash callbacks read copies with :meth:`SnapshotStore.sessions` and
:meth:`SnapshotStore.session`. Topics and formats come from :mod:`contract.messages`, the
one module the dashboard shares with the monitor. A lock makes it safe to
write from the MQTT thread while callbacks read. Payloads that are not JSON, or whose topic
or format is unknown, are counted and ignored: one bad publisher must not stop the page.
"""

from __future__ import annotations

import json
import math
import threading
from dataclasses import dataclass, field

from contract.messages import READABLE_FORMATS, TOPIC_ROOT, parse_topic
from dashboard.history import ScoreHistory, ScorePoint
from dashboard.summary import PART_NAMES


@dataclass
class SessionView:
    """What the dashboard knows of one session."""

    site: str
    session: str
    status: dict | None = None
    summary: dict | None = None
    quality: dict | None = None
    history: ScoreHistory = field(default_factory=ScoreHistory)
    trains: list[list[float]] = field(default_factory=list)
    """``[start, end]`` of rTMS trains on the monitor's LSL clock (end NaN while open)."""
    cues: list[tuple[float, str]] = field(default_factory=list)
    last_score: dict | None = None
    """The newest score message (its per-modality quality feeds the quality panel)."""
    clock_offset: float | None = None
    """Wall clock minus the monitor's LSL clock, from the first message with both."""
    trains_planned: int | None = None
    """Trains in the rTMS block, when a ``rtms/block_start trains=N`` marker said so."""
    first_emitted_unix: float | None = None
    """When the monitor sent the session's first score (the elapsed clock starts with the
    monitor's status, this is the fallback)."""

    @property
    def key(self) -> str:
        """``site/session``."""
        return f"{self.site}/{self.session}"

    @property
    def online(self) -> bool:
        """Whether the monitor's retained status says it is running."""
        return bool(self.status) and self.status.get("state") not in (None, "offline")

    @property
    def hop_s(self) -> float:
        """The monitor's hop between windows (1 s until its status says)."""
        hop = ((self.status or {}).get("windows") or {}).get("hop_s")
        return float(hop) if isinstance(hop, (int, float)) and hop > 0 else 1.0

    @property
    def finished(self) -> bool:
        """Whether the monitor said it stopped (an ``offline`` status)."""
        return bool(self.status) and self.status.get("state") == "offline"

    @property
    def windows(self) -> int:
        """Windows the monitor scored: the one count the page shows (the history counts
        every score message; a finished monitor's final status has the same count)."""
        emitted = ((self.status or {}).get("windows") or {}).get("emitted")
        return max(self.history.count, emitted if isinstance(emitted, int) else 0)

    @property
    def estimate(self) -> dict | None:
        """The newest session estimate: the last score message's, or the final summary's."""
        score_estimate = (self.last_score or {}).get("estimate")
        if score_estimate is not None:
            return score_estimate
        summary = (self.summary or {}).get("estimate") or {}
        if summary.get("session") is None:
            return None
        return {**summary, "part": None, "part_estimate": None}

    def part_estimates(self) -> dict[str, dict]:
        """Each part's estimate: the retained summary's (sent every few windows), with the
        newest score's own part brought up to date."""
        parts = dict(((self.summary or {}).get("estimate") or {}).get("parts") or {})
        estimate = (self.last_score or {}).get("estimate") or {}
        if estimate.get("part") and estimate.get("part_estimate"):
            parts[estimate["part"]] = estimate["part_estimate"]
        return {p: parts[p] for p in PART_NAMES if parts.get(p)}

    @property
    def hc_session_range(self) -> tuple[float, float] | None:
        """The healthy-control range of session estimates (from the summary, score/2 era)."""
        return _band(((self.summary or {}).get("estimate") or {}).get("hc_range"))

    @property
    def hc_band(self) -> tuple[float, float] | None:
        """The healthy-control score band of the monitor's model, from its status."""
        return _band(((self.status or {}).get("reference") or {}).get("hc_band"))

    def closed_trains(self) -> list[tuple[float, float]]:
        """rTMS trains whose end marker has arrived, in order."""
        return [(s, e) for s, e in self.trains if not math.isnan(e)]


@dataclass(frozen=True)
class SessionDelta:
    """What is new in a session since a page last looked (see :meth:`SnapshotStore.delta`)."""

    points: list[ScorePoint]
    """Full-resolution points after the page's last sequence number."""
    first_recent_seq: int | None
    """Oldest sequence number still held at full resolution (None: no points yet)."""
    closed_trains: list[tuple[float, float]]
    cues: list[tuple[float, str]]
    hc_band: tuple[float, float] | None
    clock_offset: float | None
    hop_s: float = 1.0


class SnapshotStore:
    """Fold broker messages into per-session views; thread-safe."""

    def __init__(self, topic_root: str = TOPIC_ROOT):
        self.topic_root = topic_root
        self._lock = threading.Lock()
        self._sessions: dict[str, SessionView] = {}
        self.ignored = 0
        self.received = 0

    def ingest(self, topic: str, payload: bytes | str) -> bool:
        """Take one message; returns whether it changed anything."""
        parsed = parse_topic(self.topic_root, topic)
        if parsed is None:
            return self._ignore()
        site, session, kind = parsed
        try:
            message = json.loads(payload)
        except (ValueError, UnicodeDecodeError):
            return self._ignore()
        if not isinstance(message, dict) or message.get("schema") not in READABLE_FORMATS[kind]:
            return self._ignore()
        with self._lock:
            self.received += 1
            view = self._sessions.get(f"{site}/{session}")
            if view is None:
                view = self._sessions[f"{site}/{session}"] = SessionView(site, session)
            return self._apply(view, kind, message)

    def _ignore(self) -> bool:
        with self._lock:
            self.ignored += 1
        return False

    def _apply(self, view: SessionView, kind: str, message: dict) -> bool:
        if kind == "status":
            view.status = message
        elif kind == "summary":
            view.summary = message
        elif kind == "quality":
            view.quality = message
        elif kind == "event":
            self._event(view, message)
        else:
            interval = message.get("interval") or [None, None]
            session_estimate = (message.get("estimate") or {}).get("session") or {}
            if view.last_score is None or int(message["seq"]) > int(view.last_score["seq"]):
                view.last_score = message
            if view.clock_offset is None:
                view.clock_offset = _offset(message.get("emitted_unix"), message["window"]["end"])
            if view.first_emitted_unix is None:
                view.first_emitted_unix = _number(message.get("emitted_unix"))
            return view.history.add(
                ScorePoint(
                    t_end=float(message["window"]["end"]),
                    seq=int(message["seq"]),
                    score=message.get("score"),
                    low=interval[0],
                    high=interval[1],
                    smoothed=message.get("smoothed"),
                    usable=bool(message.get("usable")),
                    phase=str(message.get("phase")),
                    cue=message.get("cue"),
                    estimate=session_estimate.get("probability"),
                    estimate_low=session_estimate.get("low"),
                    estimate_high=session_estimate.get("high"),
                )
            )
        return True

    @staticmethod
    def _event(view: SessionView, message: dict) -> None:
        label, t = message.get("label"), float(message.get("time", 0.0))
        if view.clock_offset is None:
            view.clock_offset = _offset(message.get("emitted_unix"), t)
        if isinstance(label, str) and label.startswith("rtms/block_start"):
            view.trains_planned = _planned_trains(label)
        if label == "rtms/train_start":
            view.trains.append([t, float("nan")])
        elif label == "rtms/train_end" and view.trains and view.trains[-1][1] != view.trains[-1][1]:
            view.trains[-1][1] = t
        elif isinstance(label, str) and label.startswith("cue/"):
            view.cues.append((t, label[4:]))

    def sessions(self) -> list[dict]:
        """One row per session seen, sorted by key: key, site, session, online, state,
        windows, the newest score, smoothed score and phase, and the retained summary."""
        with self._lock:
            rows = []
            for key, view in sorted(self._sessions.items()):
                last = view.last_score or {}
                rows.append(
                    {
                        "key": key,
                        "site": view.site,
                        "session": view.session,
                        "online": view.online,
                        "state": (view.status or {}).get("state", "unknown"),
                        "windows": view.windows,
                        "estimate": (view.estimate or {}).get("session"),
                        "last_score": last.get("score"),
                        "smoothed": last.get("smoothed"),
                        "phase": last.get("phase"),
                        "summary": view.summary,
                        "hc_median": ((view.status or {}).get("reference") or {}).get("hc_median"),
                    }
                )
            return rows

    def session(self, key: str) -> SessionView | None:
        """A copy of one session's view (safe to read while messages keep arriving)."""
        with self._lock:
            view = self._sessions.get(key)
            if view is None:
                return None
            return SessionView(
                view.site,
                view.session,
                status=view.status,
                summary=view.summary,
                quality=view.quality,
                history=view.history.copy(),
                trains=[list(t) for t in view.trains],
                cues=list(view.cues),
                last_score=view.last_score,
                clock_offset=view.clock_offset,
                trains_planned=view.trains_planned,
                first_emitted_unix=view.first_emitted_unix,
            )

    def delta(self, key: str, seq: int) -> SessionDelta | None:
        """What a page that has drawn up to ``seq`` needs to extend its figure (cheap: no
        copy of the whole history)."""
        with self._lock:
            view = self._sessions.get(key)
            if view is None:
                return None
            return SessionDelta(
                points=view.history.since(seq),
                first_recent_seq=view.history.first_recent_seq(),
                closed_trains=view.closed_trains(),
                cues=list(view.cues),
                hc_band=view.hc_band,
                clock_offset=view.clock_offset,
                hop_s=view.hop_s,
            )


def _band(values: object) -> tuple[float, float] | None:
    """``(low, high)`` from a message's two-number list, or None for anything else."""
    numbers = isinstance(values, list) and all(isinstance(v, (int, float)) for v in values)
    return (float(values[0]), float(values[1])) if numbers and len(values) == 2 else None


def _planned_trains(label: str) -> int | None:
    """N of a ``rtms/block_start trains=N`` marker (None when it does not say)."""
    for word in label.split()[1:]:
        key, _, value = word.partition("=")
        if key == "trains" and value.isdigit():
            return int(value)
    return None


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) else None


def _offset(wall: object, lsl_time: float) -> float | None:
    return float(wall) - float(lsl_time) if isinstance(wall, (int, float)) else None
