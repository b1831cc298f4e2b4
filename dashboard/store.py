"""The dashboard's snapshot store: every message from the broker, folded per session.

One MQTT client feeds :meth:`SnapshotStore.ingest` with ``(topic, payload)`` from
``neuroclip/v1/#``; Dash callbacks read copies with :meth:`SnapshotStore.sessions` and
:meth:`SnapshotStore.session`. The store knows the message formats of ``streamer/schema.py``
by name only (``neuroclip.score/1``...), never the monitor's code. A lock makes it safe to
write from the MQTT thread while callbacks read. Payloads that are not JSON, or whose topic
or format is unknown, are counted and ignored: one bad publisher must not stop the page.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field

from dashboard.history import ScoreHistory, ScorePoint

TOPIC_ROOT = "neuroclip/v1"
KINDS = ("score", "status", "quality", "event", "summary")
FORMATS = {
    "score": "neuroclip.score/1",
    "status": "neuroclip.status/1",
    "quality": "neuroclip.quality/1",
    "event": "neuroclip.event/1",
    "summary": "neuroclip.summary/1",
}


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

    @property
    def key(self) -> str:
        """``site/session``."""
        return f"{self.site}/{self.session}"

    @property
    def online(self) -> bool:
        """Whether the monitor's retained status says it is running."""
        return bool(self.status) and self.status.get("state") not in (None, "offline")


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
        parts = topic.split("/")
        root = self.topic_root.split("/")
        if len(parts) != len(root) + 3 or parts[: len(root)] != root:
            return self._ignore()
        site, session, kind = parts[len(root) :]
        if kind not in KINDS:
            return self._ignore()
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
        if label == "rtms/train_start":
            view.trains.append([t, float("nan")])
        elif label == "rtms/train_end" and view.trains and view.trains[-1][1] != view.trains[-1][1]:
            view.trains[-1][1] = t
        elif isinstance(label, str) and label.startswith("cue/"):
            view.cues.append((t, label[4:]))

    def sessions(self) -> list[dict]:
        """One row per session seen: key, site, session, online, state, windows, last score."""
        with self._lock:
            rows = []
            for key, view in sorted(self._sessions.items()):
                points = view.history.points()
                rows.append(
                    {
                        "key": key,
                        "site": view.site,
                        "session": view.session,
                        "online": view.online,
                        "state": (view.status or {}).get("state", "unknown"),
                        "windows": view.history.count,
                        "last_score": points[-1].score if points else None,
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
            )
