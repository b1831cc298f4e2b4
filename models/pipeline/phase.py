"""Where the session stands, from the marker stream: treatment phase and cue.

Phases follow the rTMS timeline: ``baseline`` (before the first train), ``rtms_train`` (from
``rtms/train_start`` to ``rtms/train_end`` plus a guard), ``inter_train`` (between trains),
``post`` (after the block: a cue has started since the last train, or no train came for
``block_gap_s``). ``unknown`` when no marker stream is connected. The cue (``drug``,
``neutral`` or none) runs from its ``cue/...`` marker to the next ``rest``, cue or train, for
at most ``cue_s`` (the bundle's): the rule of :class:`models.context.CueLog`, shared with
training.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from contract.messages import CUES, PHASES
from models.context import MAX_CUE_S, CueLog

__all__ = ["CUES", "PHASES", "PhaseInfo", "PhaseTracker"]


@dataclass(frozen=True)
class PhaseInfo:
    """Phase at a window's end, and what the window overlaps."""

    phase: str
    cue: str | None
    in_train: bool


_SAME_S = 1e-3
"""Times closer than this are the same instant (clock corrections differ per stream)."""


class PhaseTracker:
    """Consume markers in arrival order; answer questions about time spans."""

    def __init__(
        self,
        guard_s: float = 0.5,
        block_gap_s: float = 60.0,
        keep: int = 2000,
        cue_s: float = MAX_CUE_S,
    ):
        self.guard_s = guard_s
        self.block_gap_s = block_gap_s
        self.connected = False
        self._trains: deque[list[float]] = deque(maxlen=keep)
        self.cues = CueLog(cue_s, keep=keep)
        self.markers_seen = 0

    def add(self, label: str, t: float) -> None:
        """One marker at LSL time ``t``."""
        self.markers_seen += 1
        self.cues.add(label, t)
        if label == "rtms/train_start":
            self._trains.append([t, float("inf")])
        elif label == "rtms/train_end":
            if self._trains and self._trains[-1][1] == float("inf"):
                self._trains[-1][1] = t
            else:
                self._trains.append([t - 4.0, t])

    def info(self, t_begin: float, t_end: float) -> PhaseInfo:
        """The phase at ``t_end`` and whether ``[t_begin, t_end)`` overlaps a train or a cue."""
        # a marker within _SAME_S of a window edge counts as exactly on it, and one on an
        # edge belongs to the later window: the streams' clock corrections differ by
        # microseconds, and the answer must not flip with them
        t_begin, t_end = t_begin + _SAME_S, t_end - _SAME_S
        in_train = any(s < t_end and e + self.guard_s > t_begin for s, e in self._trains)
        cue = self.cues.kind_at(t_begin, t_end)
        return PhaseInfo(self._phase_at(t_end), cue, in_train)

    def _phase_at(self, t: float) -> str:
        if not self.connected and self.markers_seen == 0:
            return "unknown"
        # ``t`` is a window end moved back by _SAME_S: a marker stamped at the end itself
        # belongs to the next window, whether it arrived before this one was cut or not
        started = [(s, e) for s, e in self._trains if s < t]
        if not started:
            return "baseline"
        end = started[-1][1]
        if t < end + self.guard_s:
            return "rtms_train"
        cue_after = any(end <= start < t for start, _, _ in self.cues.spans())
        if cue_after or t - end > self.block_gap_s:
            return "post"
        return "inter_train"
