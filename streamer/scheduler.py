"""The window scheduler: every hop, the same ``[t - W, t)`` from EEG and fNIRS, gated.

Window ends lie on one grid, ``t_k = t_first + k * hop``, with ``t_first`` as offline: the
later stream start plus the warm-up plus one window. A window is cut as soon as the last
sample of both streams has arrived and the chains have produced it; one whose data cannot
come (a stream lost, a restart inside it) or is still missing ``max_wait_s`` after its end
is emitted as unusable with the reason, so sequence numbers never skip and never repeat.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from models.context import window_context
from models.windows import SignalParams, Window, WindowSignals, assemble_window
from streamer.phase import PhaseInfo, PhaseTracker
from streamer.ring import SpanUnavailableError
from streamer.stream_buffer import Cut, ModalityBuffer


@dataclass(frozen=True)
class LiveWindow:
    """One scheduled window, gated; ``window`` is ``None`` when its data could not be cut."""

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


class WindowScheduler:
    """Decide which windows are due and cut them from the two buffers."""

    def __init__(
        self,
        params: SignalParams,
        eeg: ModalityBuffer,
        nirs: ModalityBuffer,
        phases: PhaseTracker,
        *,
        hop_s: float | None = None,
        warmup_s: float | None = None,
        max_wait_s: float = 3.0,
    ):
        wp = params.windows
        self.params = params
        self.window_s = wp.window_s
        self.hop_s = wp.hop_s if hop_s is None else hop_s
        self.warmup_s = wp.warmup_s if warmup_s is None else warmup_s
        self.max_wait_s = max_wait_s
        self.eeg, self.nirs, self.phases = eeg, nirs, phases
        self.t_first: float | None = None
        self.seq = 0

    def next_end(self) -> float | None:
        """End time of the next window, once both streams have started."""
        if self.t_first is None:
            t0s = [b.segment.t0 for b in (self.eeg, self.nirs) if b.segment is not None]
            if len(t0s) < 2 or any(math.isnan(t) for t in t0s):
                return None
            self.t_first = max(t0s) + self.warmup_s + self.window_s
        return self.t_first + self.seq * self.hop_s

    def stream_time(self, now: float) -> float:
        """Local LSL time ``now`` on the streams' clock.

        The newest sample of the stream that is furthest behind, plus the time since it was
        pulled. Live, this is ``now`` less the transport delay; for a replay or a simulation
        faster than real time, whose samples are stamped on a virtual clock, it is that
        clock, so lateness and the release of flagged windows follow the data, not the wall.
        """
        leads = [
            b.last_stamp - b.last_received
            for b in (self.eeg, self.nirs)
            if b.last_stamp is not None and b.last_received is not None
        ]
        return now + min(leads) if len(leads) == 2 else now

    def poll(self, now: float) -> list[LiveWindow]:
        """Every window that is complete, or overdue at local LSL time ``now``, in order."""
        now = self.stream_time(now)
        out: list[LiveWindow] = []
        while (t_end := self.next_end()) is not None:
            window = self._try(t_end - self.window_s, t_end, now)
            if window is None:
                break
            out.append(window)
            self.seq += 1
        return out

    def _try(self, t_begin: float, t_end: float, now: float) -> LiveWindow | None:
        if now < t_end + self.max_wait_s and not all(
            b.has(t_end) or b.started_after(t_begin) for b in (self.eeg, self.nirs)
        ):
            return None  # the common case between windows: data still on its way
        reasons: list[str] = []
        cuts: dict[str, Cut] = {}
        waiting = False
        for buffer in (self.eeg, self.nirs):
            role = buffer.role
            if buffer.started_after(t_begin):
                reasons.append(f"{role}_restart")
                continue
            if buffer.segment.t0 + self.warmup_s > t_begin:
                reasons.append("warmup")
            try:
                cut = buffer.cut(t_begin, self.window_s, self._n_out(role))
            except SpanUnavailableError:
                reasons.append(f"{role}_incomplete")
                continue
            if cut is None:
                if now < t_end + self.max_wait_s:
                    waiting = True
                else:
                    reasons.append(f"{role}_lost" if buffer.lost else f"{role}_late")
                continue
            cuts[role] = cut
        if waiting or (reasons and now < t_end):
            return None
        phase = self.phases.info(t_begin, t_end)
        if len(cuts) < 2:
            return LiveWindow(self.seq, t_begin, t_end, None, tuple(dict.fromkeys(reasons)), phase)
        eeg, nirs = cuts["eeg"], cuts["nirs"]
        context, occupancy = window_context(
            self.phases.cues.spans(),
            t_begin,
            self.window_s,
            self.params.nirs.target_sfreq,
            self._n_out("nirs"),
        )
        window = assemble_window(
            WindowSignals(
                eeg=eeg.out,
                hb=nirs.out,
                raw_eeg=eeg.raw,
                cardiac=nirs.raw if self.nirs.description.layout.nirs.signal != "hb" else None,
                nonfinite=eeg.nonfinite or nirs.nonfinite,
                tms_blanked=eeg.blanked,
                in_rtms_train=phase.in_train,
                context=context,
                occupancy=occupancy,
            ),
            self.nirs.description.layout.nirs,
            self.params,
        )
        for role, cut in cuts.items():
            if cut.gap:
                reasons.append(f"{role}_gap")
            if cut.misaligned:
                reasons.append(f"{role}_misaligned")
        all_reasons = tuple(dict.fromkeys([*window.reasons, *reasons]))
        return LiveWindow(self.seq, t_begin, t_end, window, all_reasons, phase)

    def _n_out(self, role: str) -> int:
        return self.params.eeg_samples() if role == "eeg" else self.params.nirs_samples()
