"""A score history that stays small: full resolution for recent windows, decimated before.

A four-hour session at a 1 s hop is 14,400 scores; a browser should not redraw that many
points every tick. :class:`ScoreHistory` keeps every point of the last ``recent`` windows
and, before that, merges neighbouring points pairwise (mean score, widest interval, usable
if any was) whenever the older part grows past ``max_older`` points, so the whole history
is bounded by ``recent + max_older`` points however long the session runs. Points carry a
monotonically increasing ``version`` so a caller can ask for what is new since its last
look (the ``extendData`` of the dashboard).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class ScorePoint:
    """One window (or a merged run of windows) as the dashboard draws it."""

    t_end: float
    seq: int
    score: float | None
    low: float | None
    high: float | None
    smoothed: float | None
    usable: bool
    phase: str
    cue: str | None
    weight: int = 1
    """How many windows this point stands for."""
    estimate: float | None = None
    estimate_low: float | None = None
    estimate_high: float | None = None
    """The session estimate and its 95 % interval after this window (score/2; ``None``
    before the first usable window and for version 1 messages)."""


def _mean(a: float | None, wa: int, b: float | None, wb: int) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return (a * wa + b * wb) / (wa + wb)


def merge(first: ScorePoint, second: ScorePoint) -> ScorePoint:
    """Two neighbouring points as one: weighted means, the widest interval, the later end."""
    w1, w2 = first.weight, second.weight
    lows = [v for v in (first.low, second.low) if v is not None]
    highs = [v for v in (first.high, second.high) if v is not None]
    # the estimate is cumulative: the later point's already stands for both
    return replace(
        second,
        score=_mean(first.score, w1, second.score, w2),
        smoothed=_mean(first.smoothed, w1, second.smoothed, w2),
        low=min(lows) if lows else None,
        high=max(highs) if highs else None,
        usable=first.usable or second.usable,
        weight=w1 + w2,
    )


class ScoreHistory:
    """Bounded history of one session's scores; see the module docstring."""

    def __init__(self, recent: int = 1800, max_older: int = 1200):
        if recent < 1 or max_older < 2:
            raise ValueError("recent must be >= 1 and max_older >= 2")
        self.recent = recent
        self.max_older = max_older
        self._recent: deque[ScorePoint] = deque()
        self._older: list[ScorePoint] = []
        self.last_seq = -1
        self.count = 0
        """Windows added, merged or not."""

    def add(self, point: ScorePoint) -> bool:
        """Append a window; a repeated or older ``seq`` (a QoS 1 duplicate) is ignored."""
        if point.seq <= self.last_seq:
            return False
        self.last_seq = point.seq
        self.count += 1
        self._recent.append(point)
        if len(self._recent) > self.recent:
            self._older.append(self._recent.popleft())
            if len(self._older) > self.max_older:
                self._older = [
                    merge(self._older[i], self._older[i + 1])
                    if i + 1 < len(self._older)
                    else self._older[i]
                    for i in range(0, len(self._older), 2)
                ]
        return True

    def points(self) -> list[ScorePoint]:
        """Every point held, oldest first."""
        return [*self._older, *self._recent]

    def since(self, seq: int) -> list[ScorePoint]:
        """Points for windows after ``seq`` that are still held at full resolution."""
        return [p for p in self._recent if p.seq > seq]

    def first_recent_seq(self) -> int | None:
        """The oldest sequence number still held at full resolution."""
        return self._recent[0].seq if self._recent else None

    def copy(self) -> ScoreHistory:
        """An independent copy (points are immutable and shared)."""
        other = ScoreHistory(self.recent, self.max_older)
        other._recent.extend(self._recent)
        other._older = list(self._older)
        other.last_seq, other.count = self.last_seq, self.count
        return other

    def __len__(self) -> int:
        return len(self._older) + len(self._recent)
