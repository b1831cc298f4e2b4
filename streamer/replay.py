"""Replay a recorded session as LSL outlets, with the original timing across streams.

The recording (an XDF file, a BIDS session or a single file, see
:func:`models.io.sessions.read_session`) becomes three outlets, as an acquisition system
would offer them: EEG (µV) and NIRS (raw intensity) with their channel descriptions and a
``counter`` channel, and the markers as a string stream. Every sample is stamped ``t0 + (t -
t_first)``: one shift for all streams, so their relative timing is the recording's exactly;
the shift is a whole multiple of ``align_s`` (2 s), so the monitor's window grid
(:mod:`models.pipeline.grid`) falls on the recording's samples as offline scoring puts it,
and a replay starts up to ``align_s`` later than asked. A virtual clock decides when a
sample is due: it runs ``speed`` times faster than LSL's clock, so at ``--speed 10`` ten
seconds of recording go out every second, with timestamps ten seconds apart, consistent with
the sampling rates. ``loop`` starts over after the end, continuing the timestamps and
counters (the join is a discontinuity in the signal, which the monitor's filters see as
such).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from contract.errors import InputDataError
from models.io.sessions import contents
from models.io.stream_desc import channel_entries
from models.pipeline.grid import REPLAY_ALIGN_S, replay_shift
from models.signals import Recording, SignalBlock
from streamer.lsl.outlets import marker_outlet, signal_outlet, wait_for_consumers

logger = logging.getLogger(__name__)

_PERIOD_S = 0.01


@dataclass(frozen=True)
class ReplayNames:
    """Names of the three outlets (``<prefix>-EEG``, ``<prefix>-NIRS``, ``<prefix>-Markers``)."""

    prefix: str = "NeuroCLIP-Replay"

    def of(self, role: str) -> str:
        """The outlet name of ``eeg``, ``nirs`` or ``markers``."""
        return f"{self.prefix}-{ {'eeg': 'EEG', 'nirs': 'NIRS', 'markers': 'Markers'}[role] }"


@dataclass
class ReplayTotals:
    """What went out."""

    eeg_samples: int = 0
    nirs_samples: int = 0
    markers: int = 0
    loops: int = 0


def require_signals(recording: Recording) -> tuple[SignalBlock, SignalBlock]:
    """The EEG and NIRS blocks of ``recording``; a clear error naming what it holds instead."""
    eeg, nirs = recording.eeg, recording.nirs
    if eeg is None or nirs is None:
        missing = " and ".join(r for r, b in (("EEG", eeg), ("NIRS", nirs)) if b is None)
        raise InputDataError(
            f"{recording.source}: no {missing} stream to replay ({contents(recording)}); the "
            "monitor needs both.",
            fix="replay a session recorded with EEG and fNIRS together.",
            path=recording.source,
        )
    return eeg, nirs


class _StreamCursor:
    """One signal stream's samples, pushed as their (virtual) time comes."""

    def __init__(self, pylsl, block: SignalBlock, name: str, source_id: str):
        self.block = block
        self.outlet = signal_outlet(
            pylsl, name, block.kind.upper(), block.sfreq, source_id, channel_entries(block)
        )
        self.pos = 0
        self.counter = (
            block.counter.astype(np.float64)
            if block.counter is not None
            else np.arange(block.n_samples, dtype=np.float64)
        )
        self.counter_step = float(self.counter[-1] - self.counter[0] + 1) if block.n_samples else 0

    def push_until(self, rel_t: float, t_first: float, t0: float, loop: int, span: float) -> int:
        """Push every sample whose relative time is <= ``rel_t``; returns how many."""
        times = self.block.times
        stop = int(np.searchsorted(times - t_first, rel_t, side="right"))
        if stop <= self.pos:
            return 0
        sl = slice(self.pos, stop)
        stamps = t0 + loop * span + (times[sl] - t_first)
        counter = self.counter[sl] + loop * self.counter_step
        data = np.hstack([self.block.data[sl], counter[:, None]]).astype(np.float32)
        self.outlet.push_chunk(data, stamps.tolist())
        n = stop - self.pos
        self.pos = stop
        return n


def replay(
    recording: Recording,
    *,
    names: ReplayNames = ReplayNames(),
    speed: float = 1.0,
    loop: bool = False,
    wait_for_consumers_s: float = 0.0,
    on_start: Callable[[str], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    clock: Callable[[], float] | None = None,
    align_s: float = REPLAY_ALIGN_S,
) -> ReplayTotals:
    """Publish ``recording`` on three LSL outlets until it ends (or forever with ``loop``)."""
    import pylsl

    if speed <= 0:
        raise InputDataError(
            f"--speed {speed:g} is not a speed.", fix="give a positive factor, e.g. 1 or 10."
        )
    eeg, nirs = require_signals(recording)
    clock = clock or pylsl.local_clock
    source = names.prefix.lower()
    cursors = [
        _StreamCursor(pylsl, eeg, names.of("eeg"), f"{source}-eeg"),
        _StreamCursor(pylsl, nirs, names.of("nirs"), f"{source}-nirs"),
    ]
    markers_out = marker_outlet(pylsl, names.of("markers"), f"{source}-markers")
    t_first = min(float(eeg.times[0]), float(nirs.times[0]))
    t_last = max(float(eeg.times[-1]), float(nirs.times[-1]))
    span = t_last - t_first + 1.0 / eeg.sfreq
    marks = recording.markers
    totals = ReplayTotals()
    if on_start is not None:
        on_start(
            f"replaying {recording.source} ({span / 60:.1f} min) as {names.of('eeg')}, "
            f"{names.of('nirs')} and {names.of('markers')} at {speed:g}x"
            + (", looping" if loop else "")
        )
    wait_for_consumers([*(c.outlet for c in cursors), markers_out], wait_for_consumers_s)
    # the shift is a whole multiple of align_s: windows land where the recording had them
    t0 = t_first + replay_shift(t_first, clock() + 0.05, align_s)
    mark_pos = 0
    try:
        while True:
            if should_stop is not None and should_stop():
                break
            virtual = (clock() - t0) * speed
            loop_index, rel = divmod(virtual, span) if loop else (0, virtual)
            loop_index = int(loop_index)
            if loop_index > totals.loops:  # finish the previous pass, then start over
                _flush(cursors, marks, markers_out, t_first, t0, totals, span, mark_pos)
                for c in cursors:
                    c.pos = 0
                mark_pos = 0
                totals.loops = loop_index
            # markers first: a reader should know of an event before the data that follows it
            while mark_pos < len(marks) and marks.times[mark_pos] - t_first <= rel:
                stamp = t0 + loop_index * span + (marks.times[mark_pos] - t_first)
                markers_out.push_sample([marks.labels[mark_pos]], float(stamp))
                mark_pos += 1
                totals.markers += 1
            pushed = [c.push_until(rel, t_first, t0, loop_index, span) for c in cursors]
            totals.eeg_samples += pushed[0]
            totals.nirs_samples += pushed[1]
            if not loop and rel > span and all(c.pos >= c.block.n_samples for c in cursors):
                break
            time.sleep(_PERIOD_S)
    finally:
        time.sleep(0.5)  # let readers drain before the outlets disappear
        del cursors, markers_out
    return totals


def _flush(cursors, marks, markers_out, t_first, t0, totals, span, mark_pos) -> None:
    """Push what remains of the previous pass (a loop boundary fell inside a tick)."""
    for i, c in enumerate(cursors):
        n = c.push_until(span, t_first, t0, totals.loops, span)
        if i == 0:
            totals.eeg_samples += n
        else:
            totals.nirs_samples += n
    while mark_pos < len(marks):
        stamp = t0 + totals.loops * span + (marks.times[mark_pos] - t_first)
        markers_out.push_sample([marks.labels[mark_pos]], float(stamp))
        mark_pos += 1
        totals.markers += 1
