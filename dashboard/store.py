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

from contract.messages import FORMATS, TOPIC_ROOT, parse_topic
from dashboard.history import ScoreHistory, ScorePoint


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

    @property
    def key(self) -> str:
        """``site/session``."""
        return f"{self.site}/{self.session}"

    @property
    def online(self) -> bool:
        """Whether the monitor's retained status says it is running."""
        return bool(self.status) and self.status.get("state") not in (None, "offline")

    @property
    def hc_band(self) -> tuple[float, float] | None:
        """The healthy-control score band of the monitor's model, from its status."""
        band = ((self.status or {}).get("reference") or {}).get("hc_band") or []
        if len(band) == 2 and all(isinstance(v, (int, float)) for v in band):
            return float(band[0]), float(band[1])
        return None

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
        if not isinstance(message, dict) or message.get("schema") != FORMATS[kind]:
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
            view.last_score = message
            if view.clock_offset is None:
                view.clock_offset = _offset(message.get("emitted_unix"), message["window"]["end"])
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
                )
            )
        return True

    @staticmethod
    def _event(view: SessionView, message: dict) -> None:
        label, t = message.get("label"), float(message.get("time", 0.0))
        if view.clock_offset is None:
            view.clock_offset = _offset(message.get("emitted_unix"), t)
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
                        "windows": ((view.status or {}).get("windows") or {}).get(
                            "emitted", view.history.count
                        ),
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
            )


def _offset(wall: object, lsl_time: float) -> float | None:
    return float(wall) - float(lsl_time) if isinstance(wall, (int, float)) else None
