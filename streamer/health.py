"""Health figures of the live path: per-stream counters and latency percentiles.

Reader threads write :class:`StreamHealth`; the status reporter on the event loop reads it.
Each field is a plain Python value replaced whole, so a reader sees each one consistently.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np


@dataclass
class StreamHealth:
    """What one input stream has done since the monitor started."""

    role: str
    name: str = ""
    connected: bool = False
    nominal_rate: float = 0.0
    samples: int = 0
    gaps: int = 0
    """Times samples were missing (from the counter)."""
    missing_samples: int = 0
    duplicates: int = 0
    reconnects: int = 0
    losses: int = 0
    last_stamp: float | None = None
    last_received: float | None = None
    clock_offset_s: float | None = None
    last_loss_reason: str = ""
    _arrivals: deque = field(default_factory=lambda: deque(maxlen=256), repr=False)

    def on_connect(self, name: str, nominal_rate: float, is_reconnect: bool) -> None:
        """The reader opened an inlet."""
        self.name, self.nominal_rate, self.connected = name, nominal_rate, True
        if is_reconnect:
            self.reconnects += 1
        self._arrivals.clear()

    def on_lost(self, reason: str) -> None:
        """The outlet went away."""
        self.connected = False
        self.losses += 1
        self.last_loss_reason = reason

    def on_samples(
        self, n: int, last_stamp: float | None, received: float, missing: int, duplicates: int
    ) -> None:
        """A chunk arrived."""
        self.samples += n
        if missing:
            self.gaps += 1
            self.missing_samples += missing
        self.duplicates += duplicates
        if last_stamp is not None:
            self.last_stamp = last_stamp
        self.last_received = received
        self._arrivals.append((received, self.samples))

    def on_clock_offset(self, offset_s: float) -> None:
        """``time_correction`` was measured."""
        self.clock_offset_s = offset_s

    def effective_rate(self) -> float | None:
        """Samples per second over the recent arrivals (None until two chunks came)."""
        arrivals = list(self._arrivals)
        if len(arrivals) < 2 or arrivals[-1][0] <= arrivals[0][0]:
            return None
        (t0, n0), (t1, n1) = arrivals[0], arrivals[-1]
        return (n1 - n0) / (t1 - t0)

    def snapshot(self, now: float, stale_after_s: float | None = None) -> dict[str, object]:
        """Plain values for the status message; ``stale`` when silent for ``stale_after_s``."""
        rate = self.effective_rate()
        age = None if self.last_received is None else now - self.last_received
        return {
            "name": self.name,
            "connected": self.connected,
            "stale": bool(stale_after_s is not None and (age is None or age > stale_after_s)),
            "age_s": None if age is None else round(age, 3),
            "rate_nominal": self.nominal_rate,
            "rate_effective": None if rate is None else round(rate, 2),
            "samples": self.samples,
            "gaps": self.gaps,
            "missing_samples": self.missing_samples,
            "duplicates": self.duplicates,
            "reconnects": self.reconnects,
            "losses": self.losses,
            "last_loss_reason": self.last_loss_reason or None,
            "clock_offset_ms": None
            if self.clock_offset_s is None
            else round(1000 * self.clock_offset_s, 3),
        }


class LatencyStats:
    """Recent latencies per stage in ms, summarised as median and 99th percentile."""

    def __init__(self, keep: int = 512):
        self._values: dict[str, deque[float]] = {}
        self._keep = keep

    def add(self, stages: dict[str, float | None]) -> None:
        """Record one message's stage latencies (``None`` stages are skipped)."""
        for stage, value in stages.items():
            if value is not None:
                self._values.setdefault(stage, deque(maxlen=self._keep)).append(value)

    def summary(self) -> dict[str, dict[str, float]]:
        """``{stage: {"p50": ms, "p99": ms}}`` over the recent messages."""
        return {
            stage: {
                "p50": round(float(np.percentile(list(v), 50)), 3),
                "p99": round(float(np.percentile(list(v), 99)), 3),
            }
            for stage, v in self._values.items()
            if v
        }
