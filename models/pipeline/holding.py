"""Live chunks fed to the window pipeline in fewer, larger pieces, with the same windows.

An LSL inlet hands over whatever arrived since the last pull: at a 10 ms push period that is
a hundred EEG chunks a second, and running the preprocessing chains on each costs far more
in per-call overhead than in arithmetic. :class:`HeldFeed` keeps regular chunks (contiguous
in time, no counter gap, no duplicate) back and feeds them as one chunk once the data could
matter: when it reaches near the end of the next window, when it spans
:data:`MAX_HOLD_S`, before any other event of the stream, or when it has waited that long.
Anything irregular (the first samples of a segment, a gap, a step in the timestamps) flushes
what is held and goes in as it came, so every clock-jump and gap rule sees exactly the
samples and arrival times it would have seen chunk by chunk. The chains are causal and
chunk-independent, so the windows are those of feeding every chunk at once (tested).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from models.pipeline.pipeline import SIGNAL_ROLES, WindowPipeline
from models.pipeline.streams import Chunk

MAX_HOLD_S = 0.5
"""The most stream time held back, and the longest a held chunk waits (s)."""

NEAR_END_S = 0.05
"""Held data this close to the next window's end (beyond two sample periods) is fed at once,
so the chunk that completes a window only carries its own few samples."""

_REGULAR = (0.5, 1.5)
"""Steps between held samples, in sample periods, that count as contiguous."""


@dataclass
class _Held:
    chunks: list[Chunk] = field(default_factory=list)
    first_received: float = 0.0

    @property
    def last_stamp(self) -> float:
        return float(self.chunks[-1].stamps[-1])

    @property
    def span_s(self) -> float:
        return float(self.chunks[-1].stamps[-1] - self.chunks[0].stamps[0])

    def merged(self) -> Chunk:
        first, last = self.chunks[0], self.chunks[-1]
        if len(self.chunks) == 1:
            return first
        return Chunk(
            first.role,
            first.segment,
            np.concatenate([c.data for c in self.chunks]),
            np.concatenate([c.stamps for c in self.chunks]),
            last.received,
        )


class HeldFeed:
    """Feed ``pipeline`` live chunks of its signal streams; see the module docstring.

    Each method returns whether the pipeline was fed (so the caller knows to ask it for
    windows).
    """

    def __init__(self, pipeline: WindowPipeline, max_hold_s: float = MAX_HOLD_S):
        self.pipeline = pipeline
        self.max_hold_s = max_hold_s
        self._held: dict[str, _Held] = {role: _Held() for role in SIGNAL_ROLES}
        self.fed_calls = 0
        """Chunks the pipeline was fed (for profiles and tests)."""

    def add(self, chunk: Chunk) -> bool:
        """Hold or feed one chunk of ``eeg`` or ``nirs``."""
        held = self._held[chunk.role]
        if not self._regular(chunk, held):
            self.flush(chunk.role)
            self._feed(chunk)
            return True
        if not held.chunks:
            held.first_received = chunk.received
        held.chunks.append(chunk)
        if held.span_s >= self.max_hold_s or self._near_window_end(chunk.role, held):
            return self.flush(chunk.role)
        return False

    def flush(self, role: str | None = None) -> bool:
        """Feed what is held of ``role`` (every role: ``None``)."""
        fed = False
        for r in SIGNAL_ROLES if role is None else (role,):
            held = self._held[r]
            if held.chunks:
                chunk = held.merged()
                held.chunks.clear()
                self._feed(chunk)
                fed = True
        return fed

    def flush_waiting(self, now: float) -> bool:
        """Feed what has been held since before ``now - max_hold_s`` (local LSL time)."""
        fed = False
        for role, held in self._held.items():
            if held.chunks and now - held.first_received >= self.max_hold_s:
                fed = self.flush(role) or fed
        return fed

    def _feed(self, chunk: Chunk) -> None:
        self.fed_calls += 1
        self.pipeline.feed(chunk)

    def _regular(self, chunk: Chunk, held: _Held) -> bool:
        """Whether ``chunk`` continues what is held (or the buffer) sample by sample."""
        buffer = self.pipeline.buffers[chunk.role]
        segment = buffer.segment
        if (
            chunk.gap_before
            or chunk.duplicates
            or segment is None
            or segment.number != chunk.segment
            or buffer.last_stamp is None
            or np.isnan(segment.t0)
            or len(chunk.stamps) == 0
        ):
            return False
        # the buffer keeps stamps with its clock-jump correction added; chunks come raw
        previous = held.last_stamp if held.chunks else buffer.last_stamp - buffer.clock_correction_s
        steps = np.diff(np.concatenate([[previous], chunk.stamps])) * buffer.sfreq
        return bool(np.all((steps > _REGULAR[0]) & (steps < _REGULAR[1])))

    def _near_window_end(self, role: str, held: _Held) -> bool:
        end = self.pipeline.next_window_end()
        if end is None:
            return True
        buffer = self.pipeline.buffers[role]
        period = 1.0 / buffer.sfreq
        return held.last_stamp + buffer.clock_correction_s >= end - 2.0 * period - NEAR_END_S
