"""The window grid: where windows end, decided once, in LSL time.

Every edge rule of the project lives here and in the buffer's searches it names:

1. **Grid points** lie at whole multiples of the hop in LSL time, ``g_k = k * hop_s +
   phase_s``: not where a run happened to start, so a monitor, a recorder started beside it
   and an offline scoring of that recording (with the same phase) put their windows on the
   same instants. The phase is 0 unless set; the rooms of one process get phases spread
   over the hop, so that their windows do not all fall due at the same instant.
2. **The window ends with a fNIRS sample.** A sample stamped ``t`` covers ``[t, t + 1/rate)``.
   Window ``k``'s last fNIRS sample is the first one whose period reaches ``g_k`` (stamped
   at or after ``g_k - 1/rate``), and the window ends where that sample's period ends:
   ``t_end = t_last + 1/rate``, in ``[g_k, g_k + 1/rate)``; ``t_end = g_k`` exactly for a
   stream whose samples fall on the grid. Whether a sample ends a window is decided from its
   own timestamp, so a window is complete the moment its last fNIRS sample arrives (with the
   EEG up to it), never waiting for the next one; the window is ``[t_end - window_s, t_end)``.
3. **EEG up to the same instant.** The window's last EEG sample is the last one stamped at or
   before ``t_end - 0.5 / eeg_rate`` (the EEG samples whose periods end by ``t_end``, up to
   half a period). It is known to be complete once the next EEG sample, one period after the
   newest, would fall after that.
4. **Lengths in samples.** Each stream contributes ``round(window_s * rate)`` raw samples
   ending at its last sample, and the model-rate samples the causal resampler computed from
   exactly those inputs; nothing is cut by time after the end is found.
5. **Float noise is not an edge.** A timestamp within :data:`EDGE_TOLERANCE_S` (1 µs) of an
   edge is on it: a replay shifts stamps by an offset, a file stores them as doubles, and a
   decision must not flip on the last bits.
6. **Markers** within a millisecond of a window edge count as on it, and one on the end
   belongs to the next window (:class:`~models.pipeline.phase.PhaseTracker`).

The first window is the first grid point at least ``warmup_s + window_s`` after the later
stream's first sample. A replay keeps the grid when it shifts timestamps by a whole multiple
of the hop (:func:`replay_shift`, by default a multiple of :data:`REPLAY_ALIGN_S`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from contract.errors import ConfigError
from models.pipeline.buffer import EDGE_TOLERANCE_S

GRID_VERSION = 2
"""Bumped when a rule here changes which samples a window holds (cached windows go stale)."""
REPLAY_ALIGN_S = 2.0
"""Replays shift timestamps by whole multiples of this (the default hop), so a monitor whose
hop divides it puts windows where the recording had them."""

__all__ = ["EDGE_TOLERANCE_S", "REPLAY_ALIGN_S", "WindowGrid"]


@dataclass(frozen=True)
class WindowGrid:
    """Grid points ``k * hop_s + phase_s`` and the first one a session can use."""

    window_s: float
    hop_s: float
    warmup_s: float
    phase_s: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.phase_s < self.hop_s:
            raise ConfigError(
                f"The window grid's phase must lie in [0, hop) = [0, {self.hop_s:g}) s, "
                f"found {self.phase_s:g} s.",
                key="windows.phase_s",
                fix="set windows.phase_s (monitor) or --phase (score) below the hop.",
            )

    def point(self, k: int) -> float:
        """LSL time of grid point ``k``."""
        return k * self.hop_s + self.phase_s

    def first_index(self, streams_start: float) -> int:
        """The first grid point whose window lies after the warm-up of streams that both
        started by ``streams_start``."""
        earliest = streams_start + self.warmup_s + self.window_s
        return math.ceil((earliest - self.phase_s - EDGE_TOLERANCE_S) / self.hop_s)

    @staticmethod
    def last_stamp_from(grid_end: float, nirs_rate: float) -> float:
        """The earliest timestamp of a fNIRS sample whose period reaches ``grid_end``."""
        return grid_end - 1.0 / nirs_rate

    @staticmethod
    def last_stamp_before(t_end: float, eeg_rate: float) -> float:
        """The latest EEG timestamp a window ending at ``t_end`` takes."""
        return t_end - 0.5 / eeg_rate


def replay_shift(first_stamp: float, start_at: float, align_s: float = REPLAY_ALIGN_S) -> float:
    """The offset a replay adds to recorded timestamps so the recording starts at or just
    after ``start_at``: a whole multiple of ``align_s``, which keeps the recording's windows
    for every hop dividing ``align_s`` (``0``: no alignment)."""
    if align_s <= 0:
        return start_at - first_stamp
    return math.ceil((start_at - first_stamp) / align_s) * align_s
