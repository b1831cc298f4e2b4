"""The window pipeline: samples in, gated windows out, the same for every caller.

:class:`WindowPipeline` owns the two stream buffers (each with the bundle's preprocessing
chain), the window grid (:mod:`models.pipeline.grid`), the phase and cue tracker and the
quality gate. Callers feed it what they have, in any chunking, and ask for the windows that
are ready; the live monitor, ``neuroclip score``, the replay's model check and training's
window cutting all go through it, so a window is the same object whichever path made it.

A window is *ready* when its data is complete (its last fNIRS sample and the EEG up to it
have arrived, and, with a marker stream connected, the markers up to its end); or when the
stream clock has passed its end by ``max_wait_s`` without the data, when it is released
unusable with the reason (``eeg_late``, ``nirs_lost``...). Sequence numbers never skip and
never repeat. Offline, where no clock runs, only data releases windows, and
:meth:`WindowPipeline.finish` releases the ones whose data arrived before the end.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from models.context import MAX_CUE_S, window_context
from models.pipeline.buffer import ClockJump, Cut, ModalityBuffer, NirsModel
from models.pipeline.grid import WindowGrid
from models.pipeline.phase import PhaseInfo, PhaseTracker
from models.pipeline.ring import SpanUnavailableError
from models.pipeline.streams import Chunk, StreamDescription
from models.windows import SignalParams, Window, WindowSignals, assemble_window

SIGNAL_ROLES = ("eeg", "nirs")
MARKER_MARGIN_S = 0.01
"""A window whose data is in waits for a marker read that came back this long after its data
did: a marker source pushes a marker no later than the data of the same instant, so that read
has seen every marker stamped inside the window."""


@dataclass(frozen=True)
class GatedWindow:
    """One window of the grid after the gate; ``window`` is ``None`` when no data was cut."""

    seq: int
    t_begin: float
    t_end: float
    window: Window | None
    reasons: tuple[str, ...]
    phase: PhaseInfo

    @property
    def usable(self) -> bool:
        """Whether the window is scored."""
        return not self.reasons


class WindowPipeline:
    """Buffers, grid, phase tracker and gate for one session; see the module docstring.

    Parameters
    ----------
    params
        The bundle's signal parameters.
    eeg_channels
        The model's EEG channels, picked by name from the stream.
    hop_s, warmup_s
        Overrides of the bundle's window settings (``None``: the bundle's).
    phase_s
        Offset of the window grid from whole hops (:mod:`models.pipeline.grid`), in
        ``[0, hop)``.
    max_wait_s
        How long after its end a window whose data has not come is released unusable.
    on_jump
        Called with the role and each clock jump a buffer handles.
    nirs_pairs
        The model's fNIRS pairs and their midpoints: each stream's pairs are found by name
        or position and put in this order (:func:`models.montage.fit_nirs`). ``None``
        (training): the stream's long pairs as they come.
    """

    def __init__(
        self,
        params: SignalParams,
        eeg_channels: tuple[str, ...],
        *,
        hop_s: float | None = None,
        warmup_s: float | None = None,
        max_wait_s: float = 3.0,
        on_jump: Callable[[str, ClockJump], None] | None = None,
        nirs_pairs: NirsModel | None = None,
        phase_s: float = 0.0,
    ):
        wp = params.windows
        self.params = params
        self.grid = WindowGrid(
            wp.window_s,
            wp.hop_s if hop_s is None else hop_s,
            wp.warmup_s if warmup_s is None else warmup_s,
            phase_s,
        )
        self.max_wait_s = max_wait_s
        keep = wp.window_s + max_wait_s + 20.0
        self.buffers = {
            "eeg": ModalityBuffer("eeg", params, eeg_channels, keep, on_jump),
            "nirs": ModalityBuffer("nirs", params, (), keep, on_jump, nirs_pairs=nirs_pairs),
        }
        self.phases = PhaseTracker(wp.rtms_guard_s, cue_s=wp.cue_s or MAX_CUE_S)
        self.markers_read_at = math.inf
        """Local LSL time of the latest marker read (``inf``: no marker stream to wait for,
        or every marker known, as for a recording)."""
        self.seq = 0
        self._k: int | None = None
        self._data_in_at: float | None = None
        """Local LSL time the next window's data was found complete (live)."""
        self.markers_needed_after: float | None = None
        """Live: the next window's data is in and it waits for a marker read that comes back
        after this local LSL time (a reader may pull on demand instead of reporting every
        empty read); ``None`` while no window waits for one."""

    # ------------------------------------------------------------------ input

    @property
    def window_s(self) -> float:
        """Window length in seconds."""
        return self.grid.window_s

    @property
    def hop_s(self) -> float:
        """Seconds between grid points."""
        return self.grid.hop_s

    def start(self, role: str, segment: int, description: StreamDescription | None) -> None:
        """A stream (re)connected: a new segment for a signal, a live marker stream."""
        if role == "markers":
            self.phases.connected = True
            self.markers_read_at = -math.inf
            return
        self.buffers[role].start_segment(segment, description)

    def lost(self, role: str) -> None:
        """A stream ended or went away: windows needing more of it will not get it."""
        if role == "markers":
            self.phases.connected = False
            self.markers_read_at = math.inf
            return
        self.buffers[role].mark_lost()

    def feed(self, chunk: Chunk) -> None:
        """Samples of one stream (markers: labels), in arrival order."""
        if chunk.role == "markers":
            for label, t in zip(chunk.data, chunk.stamps, strict=True):
                self.phases.add(label, float(t))
            return
        self.buffers[chunk.role].add(chunk)

    def markers_seen(self, received: float) -> None:
        """The marker stream was read at local LSL time ``received`` (a pull came back;
        ``inf``: every marker is known, as for a recording)."""
        self.markers_read_at = max(self.markers_read_at, received)

    # ------------------------------------------------------------------ output

    def stream_time(self, now: float) -> float:
        """Local LSL time ``now`` on the streams' clock.

        The newest sample of the stream that is furthest behind, plus the time since it was
        pulled. Live, this is ``now`` less the transport delay; for a replay or a simulation
        faster than real time, whose samples are stamped on a virtual clock, it is that
        clock, so lateness follows the data, not the wall.
        """
        leads = [
            b.last_stamp - b.last_received
            for b in self.buffers.values()
            if b.last_stamp is not None and b.last_received is not None
        ]
        return now + min(leads) if len(leads) == 2 else now

    def first_window_end(self) -> float | None:
        """Stream time at which the first window ends, once both streams have started and
        before any window came out (the warm-up countdown); ``None`` otherwise. Only reads:
        asking it never changes which window comes next."""
        return None if self.seq > 0 else self.next_window_end()

    def next_window_end(self) -> float | None:
        """Grid end of the next window to come out, once both streams have started;
        ``None`` before. Only reads (a live feeder asks it to know when data matters)."""
        k = self._k if self._k is not None else self._first_index()
        return None if k is None else self.grid.point(k)

    def ready(self, now: float | None = None) -> list[GatedWindow]:
        """Every window that is complete, or overdue at local LSL time ``now``, in order.

        ``now=None`` (offline): only data releases windows.
        """
        clock = None if now is None else self.stream_time(now)
        out: list[GatedWindow] = []
        while (k := self._next_index()) is not None:
            window = self._try(k, clock, now)
            if window is None:
                break
            out.append(window)
            self.seq += 1
            self._k = k + 1
            self._data_in_at = None
            self.markers_needed_after = None
        return out

    def finish(self) -> list[GatedWindow]:
        """The end of a recording: every remaining window whose data arrived."""
        for role in SIGNAL_ROLES:
            self.buffers[role].mark_lost()
        self.markers_read_at = math.inf
        # no clock: a window is released only if its data is in, so this stops at the end
        return self.ready()

    def _next_index(self) -> int | None:
        if self._k is None:
            self._k = self._first_index()
        return self._k

    def _first_index(self) -> int | None:
        """The first window's grid index once both streams have started, else ``None``."""
        t0s = [b.segment.t0 for b in self.buffers.values() if b.segment is not None]
        if len(t0s) < 2 or any(math.isnan(t) for t in t0s):
            return None
        return self.grid.first_index(max(t0s))

    def _try(self, k: int, clock: float | None, now: float | None) -> GatedWindow | None:
        """Window ``k`` if it can be decided now, else ``None`` (wait for more data).

        ``clock`` is the streams' clock, ``now`` the local LSL time (``None`` offline)."""
        grid_end = self.grid.point(k)
        late = clock is not None and clock >= grid_end + self.max_wait_s
        eeg, nirs = self.buffers["eeg"], self.buffers["nirs"]
        reasons: list[str] = []
        last = {}
        t_end = grid_end
        if nirs.started_after(grid_end - self.window_s):
            reasons.append("nirs_restart")
        elif (
            j := nirs.first_at_or_after(self.grid.last_stamp_from(grid_end, nirs.sfreq))
        ) is not None:
            last["nirs"], t_end = j, nirs.stamp(j) + 1.0 / nirs.sfreq
        elif late:
            reasons.append("nirs_lost" if nirs.lost else "nirs_late")
        else:
            return None
        t_begin = t_end - self.window_s
        eeg_end = self.grid.last_stamp_before(t_end, eeg.sfreq) if eeg.description else t_end
        if eeg.started_after(t_begin):
            reasons.append("eeg_restart")
        elif eeg.complete_through(eeg_end) and (i := eeg.last_at_or_before(eeg_end)) is not None:
            last["eeg"] = i
        elif late:
            reasons.append("eeg_lost" if eeg.lost else "eeg_late")
        else:
            return None
        if not late and not self._markers_caught_up(now):
            return None  # a marker stamped inside the window may still be on its way
        phase = self.phases.info(t_begin, t_end)
        cuts: dict[str, Cut] = {}
        for role, index in last.items():
            buffer = self.buffers[role]
            if buffer.segment.t0 + self.grid.warmup_s > t_begin + 0.5 / buffer.sfreq:
                reasons.append("warmup")
            try:
                cuts[role] = buffer.cut_ending(index, self.window_s, self._n_out(role))
            except SpanUnavailableError:
                reasons.append(f"{role}_incomplete")
        if len(cuts) < 2:
            return GatedWindow(self.seq, t_begin, t_end, None, tuple(dict.fromkeys(reasons)), phase)
        window = self._assemble(cuts, t_begin, phase)
        for role, cut in cuts.items():
            if cut.gap:
                reasons.append(f"{role}_gap")
            if self._misaligned(role, cut, t_end):
                reasons.append(f"{role}_misaligned")
        all_reasons = tuple(dict.fromkeys([*window.reasons, *reasons]))
        return GatedWindow(self.seq, t_begin, t_end, window, all_reasons, phase)

    def _markers_caught_up(self, now: float | None) -> bool:
        """Whether the marker stream was read :data:`MARKER_MARGIN_S` after this window's data
        was found complete (always, with no marker stream or every marker known)."""
        if self.markers_read_at == math.inf:
            return True
        if self._data_in_at is None:
            self._data_in_at = -math.inf if now is None else now
        needed = self._data_in_at + MARKER_MARGIN_S
        if self.markers_read_at >= needed:
            return True
        self.markers_needed_after = needed
        return False

    def _misaligned(self, role: str, cut: Cut, t_end: float) -> bool:
        """Whether a stream's samples do not span the window (a drifting or jumping clock)."""
        rate = self.buffers[role].sfreq
        period = 1.0 / rate
        tolerance = max(2.0 * period, 0.02)
        span = (round(self.window_s * rate) - 1) * period
        return (
            abs(cut.last_stamp + period - t_end) > tolerance
            or abs(cut.last_stamp - cut.first_stamp - span) > tolerance
        )

    def _assemble(self, cuts: dict[str, Cut], t_begin: float, phase: PhaseInfo) -> Window:
        eeg, nirs = cuts["eeg"], cuts["nirs"]
        n_nirs = self._n_out("nirs")
        context, occupancy = window_context(
            self.phases.cues.spans(),
            t_begin,
            self.window_s,
            self.params.nirs.target_sfreq,
            n_nirs,
        )
        layout = self.buffers["nirs"].fit.layout
        return assemble_window(
            WindowSignals(
                eeg=eeg.out,
                hb=nirs.out,
                raw_eeg=eeg.raw,
                cardiac=nirs.raw,
                nonfinite=eeg.nonfinite,
                tms_blanked=eeg.blanked,
                in_rtms_train=phase.in_train,
                context=context,
                occupancy=occupancy,
                nirs_lost=nirs.lost,
                nirs_rate=self.buffers["nirs"].sfreq,
                nirs_nonfinite=nirs.nonfinite,
            ),
            layout,
            self.params,
        )

    def _n_out(self, role: str) -> int:
        return self.params.eeg_samples() if role == "eeg" else self.params.nirs_samples()
