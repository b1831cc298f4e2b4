"""One input stream after causal preprocessing, held in ring buffers, cut by sample index.

A :class:`ModalityBuffer` owns the preprocessing chain of its stream (``EegChain`` or
``NirsChain`` from :mod:`models.preprocessing`, the objects training uses) and five rings in
the stream's sample index: timestamps, the raw values the quality gate needs (EEG) or the
cardiac band (fNIRS), and per-sample flags (non-finite, gap, TMS-blanked); plus one ring at
the model rate with the chain's output. A reconnection starts a new *segment*: a fresh
chain and a new index origin. The window pipeline finds a window's last sample by its
timestamp (the rules are in :mod:`models.pipeline.grid`) and cuts a fixed number of samples
ending there, and the model-rate samples computed from exactly those inputs.
Samples the counter says are missing are filled with NaN (the chain holds the last value and
the window is flagged ``gap``), which keeps index and time in step.

Timestamps that step back, or forward by more than the samples in between explain, are told
apart by when the samples arrived (:class:`ClockJump`): if samples kept coming, the device's
clock jumped and the step is taken out of every later timestamp of the connection, so the
stream stays aligned with the other one as it was before the jump; if the stream was silent
for at least half the step, time really passed with samples lost that no counter saw, and
a new segment starts, so windows across it are flagged and later ones are cut on the
timestamps as they come.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from models.montage import NirsFit, fit_nirs, pick_eeg
from models.pipeline.ring import RingBuffer, SpanUnavailableError
from models.pipeline.streams import Chunk, StreamDescription
from models.preprocessing import EegChain, NirsChain
from models.preprocessing.resample import outputs_through, rational_ratio
from models.windows import SignalParams

logger = logging.getLogger(__name__)

_TIMESTAMP_GAP_SAMPLES = 5
"""Without a counter, a timestamp step of more than this many periods counts as a gap."""
_JUMP_FORWARD_S = 1.0
"""A timestamp step this much longer than the samples in between is a clock jump."""
_JUMP_BACK_S = 0.05
"""A timestamp step back by more than this is a clock jump (LSL time never runs back)."""
_SPEED_SPAN_S = 1.0
"""Seconds of arrivals needed before the stream's clock speed is estimated (1 until then)."""
_SEARCH_HALF_WIDTH = 32
"""Timestamps read on each side of where a searched time is expected."""
NirsModel = tuple[tuple[str, ...], "np.ndarray | None"]
"""A model's fNIRS pair names and their midpoints (``None``: unknown)."""
EDGE_TOLERANCE_S = 1e-6
"""A timestamp this close to a window edge is on it: replays and files carry float rounding
of this order, and the answer must not flip with it."""


@dataclass(frozen=True)
class Segment:
    """Where one continuous run of a stream starts."""

    number: int
    t0: float
    """LSL time of the segment's first sample."""
    raw_first: int
    out_first: int


@dataclass(frozen=True)
class ClockJump:
    """A timestamp step the samples in between do not explain."""

    step_s: float
    """How far the timestamps stepped beyond the expected sample spacing (+ ahead, - back)."""
    silent_s: float
    """How long the stream was silent across the step, on the stream's clock."""
    corrected: bool
    """``True``: samples kept coming, so the device's clock jumped and the step was taken out
    of later timestamps. ``False``: time passed; a new segment started."""


@dataclass(frozen=True)
class Cut:
    """What a window takes from one stream."""

    out: np.ndarray
    """``(n_model_samples, n_channels)`` chain output at the model rate."""
    raw: np.ndarray
    """``(n_source_samples, n_channels)`` raw EEG (uV) or cardiac-band OD (fNIRS)."""
    nonfinite: bool
    gap: bool
    blanked: bool
    first_stamp: float
    last_stamp: float
    lost: np.ndarray | None = None
    """fNIRS: ``(n_channels,)`` True for a channel saturated or lost in the window."""


class ModalityBuffer:
    """Preprocess one stream chunk by chunk and cut ``[t_begin, t_end)`` on request.

    Parameters
    ----------
    role
        ``eeg`` or ``nirs``.
    params
        The bundle's preprocessing and window parameters.
    channels
        EEG: the model's channels, picked by name from the stream. fNIRS: ignored (the
        stream's layout is used whole; the bundle check makes sure it fits).
    keep_s
        Seconds of history held.
    on_jump
        Called with the role and each :class:`ClockJump` as it is handled (the monitor
        publishes it as an event).
    nirs_pairs
        fNIRS: the model's pairs and midpoints; the stream's columns are picked and ordered
        to match them (:func:`models.montage.fit_nirs`). ``None``: the layout as it comes.
    """

    def __init__(
        self,
        role: str,
        params: SignalParams,
        channels: tuple[str, ...],
        keep_s: float = 40.0,
        on_jump: Callable[[str, ClockJump], None] | None = None,
        *,
        nirs_pairs: NirsModel | None = None,
    ):
        if role not in ("eeg", "nirs"):
            raise ValueError(f"role must be eeg or nirs, got {role!r}")
        self.role = role
        self.params = params
        self.channels = channels
        self.keep_s = keep_s
        self.segment: Segment | None = None
        self.description: StreamDescription | None = None
        self.lost = False
        self.on_jump = on_jump
        self.nirs_pairs = nirs_pairs
        self.fit: NirsFit | None = None
        """How the current fNIRS stream's columns map onto the model's pairs."""
        self.clock_correction_s = 0.0
        """Seconds added to this connection's timestamps, undoing its clock jumps."""
        self._origin: tuple[float, float] | None = None
        self._chain: EegChain | NirsChain | None = None
        self._picks: list[int] = []
        self._up = self._down = 1
        self._stamps = self._raw = self._out = None
        self._bad = self._gap = self._blanked = self._lost = None
        self.last_stamp: float | None = None
        self.last_received: float | None = None
        """Local LSL clock when the newest sample was pulled."""

    @property
    def sfreq(self) -> float:
        """Source sampling rate of the current stream."""
        assert self.description is not None
        return self.description.nominal_rate

    @property
    def target_sfreq(self) -> float:
        """Model rate."""
        p = self.params.eeg if self.role == "eeg" else self.params.nirs
        return p.target_sfreq

    def start_segment(self, number: int, description: StreamDescription) -> None:
        """Begin a new segment (first connection or reconnection): fresh chain, same rings."""
        layout = description.layout
        assert layout is not None
        if self.description is None or self._widths(description) != self._widths(self.description):
            self._allocate(description)
            self._up, self._down = rational_ratio(description.nominal_rate, self.target_sfreq)
        self.description = description
        if self.role == "eeg":
            self._picks = pick_eeg(self.channels, layout.labels, f"EEG stream {description.name!r}")
        else:
            self.fit = self._fit_nirs(description)
            self._picks = self.fit.columns
        self._chain = self._new_chain()
        self.segment = Segment(number, np.nan, self._stamps.end, self._out.end)
        self.lost = False
        self.clock_correction_s = 0.0

    def _widths(self, description: StreamDescription) -> tuple[float, int, int]:
        """What the rings are sized by: rate, raw and model-rate widths (a reconnection
        that changes any of them, e.g. distances that make a pair short, reallocates)."""
        if self.role == "eeg":
            return description.nominal_rate, len(self.channels), len(self.channels)
        fitted = self._fit_nirs(description).layout
        return description.nominal_rate, len(fitted.channels), 2 * len(fitted.long_pairs())

    def _fit_nirs(self, description: StreamDescription) -> NirsFit:
        layout = description.layout.nirs
        if self.nirs_pairs is None:
            columns = list(range(len(layout.channels)))
            names = [name for name, _ in layout.long_pairs()]
            return NirsFit(columns, layout, names, "name")
        names, midpoints = self.nirs_pairs
        return fit_nirs(names, midpoints, layout, f"NIRS stream {description.name!r}")

    def _new_chain(self) -> EegChain | NirsChain:
        rate = self.description.nominal_rate
        if self.role == "eeg":
            return EegChain(self.params.eeg, rate, len(self._picks))
        return NirsChain(self.params.nirs, rate, self.fit.layout)

    def _allocate(self, description: StreamDescription) -> None:
        layout = description.layout
        assert layout is not None
        n_raw = max(1, round(self.keep_s * description.nominal_rate))
        n_out = max(1, round(self.keep_s * self.target_sfreq))
        _, width_raw, width_out = self._widths(description)
        self._stamps = RingBuffer(n_raw)
        self._raw = RingBuffer(n_raw, width_raw)
        self._bad = RingBuffer(n_raw, dtype=bool)
        self._gap = RingBuffer(n_raw, dtype=bool)
        self._blanked = RingBuffer(n_raw, dtype=bool)
        self._lost = RingBuffer(n_raw, width_raw, dtype=bool) if self.role == "nirs" else None
        self._out = RingBuffer(n_out, width_out)

    def mark_lost(self) -> None:
        """The outlet went away: windows that need more of this segment cannot be completed."""
        self.lost = True

    def add(self, chunk: Chunk) -> None:
        """Preprocess and store one chunk, handling any clock jump inside it."""
        assert self._chain is not None and self.segment is not None
        if self.clock_correction_s:
            chunk = replace(chunk, stamps=chunk.stamps + self.clock_correction_s)
        while (found := self._first_jump(chunk)) is not None:
            index, step = found
            if index > 0:
                self._add_continuous(
                    replace(chunk, data=chunk.data[:index], stamps=chunk.stamps[:index])
                )
                chunk = replace(
                    chunk, data=chunk.data[index:], stamps=chunk.stamps[index:], gap_before=0
                )
            chunk = self._on_jump(chunk, step)
        self._add_continuous(chunk)

    def _first_jump(self, chunk: Chunk) -> tuple[int, float] | None:
        """Index of the first sample after a clock jump in ``chunk`` and the step, if any."""
        stamps = np.asarray(chunk.stamps, float)
        continuing = self.segment.raw_first != self._stamps.end
        previous = [self.last_stamp] if continuing and self.last_stamp is not None else []
        steps = np.diff(np.concatenate([previous, stamps]))
        if len(steps) == 0:
            return None
        expected = np.full(len(steps), 1.0 / self.sfreq)
        if previous:
            expected[0] += chunk.gap_before / self.sfreq
        excess = steps - expected
        bad = np.flatnonzero((excess > _JUMP_FORWARD_S) | (steps < -_JUMP_BACK_S))
        if len(bad) == 0:
            return None
        return int(bad[0]) + (0 if previous else 1), float(excess[bad[0]])

    def _on_jump(self, chunk: Chunk, step: float) -> Chunk:
        """Correct a clock jump at ``chunk``'s first sample, or start a new segment there."""
        arrival = max(0.0, float(chunk.received) - self.last_received)
        silent = arrival * self._stamp_speed()
        corrected = step < 0 or silent < 0.5 * step
        if self.on_jump is not None:
            self.on_jump(self.role, ClockJump(step, silent, corrected))
        if corrected:
            logger.warning(
                "%s: clock jump of %+.3f s between samples while samples kept coming; "
                "corrected, so windows stay aligned",
                self.role,
                step,
            )
            self.clock_correction_s -= step
            return replace(chunk, stamps=chunk.stamps - step)
        logger.warning(
            "%s: timestamps stepped %+.3f s across %.3f s of silence: samples were lost that "
            "the counter did not show; starting a new segment",
            self.role,
            step,
            silent,
        )
        self._chain = self._new_chain()
        self.segment = Segment(self.segment.number, np.nan, self._stamps.end, self._out.end)
        return replace(chunk, gap_before=0)

    def _stamp_speed(self) -> float:
        """Timestamp seconds per second of arrival: 1 live, K for a replay at speed K."""
        if self._origin is None or self.last_received is None or self.last_stamp is None:
            return 1.0
        stamp0, received0 = self._origin
        span = self.last_received - received0
        if span < _SPEED_SPAN_S:
            return 1.0
        return max(1.0, (self.last_stamp - stamp0) / span)

    def _add_continuous(self, chunk: Chunk) -> None:
        data, stamps = np.asarray(chunk.data, float), chunk.stamps
        missing = chunk.gap_before
        has_counter = self.description.layout.counter_column is not None
        if self.last_stamp is not None and not has_counter:
            step = (stamps[0] - self.last_stamp) * self.sfreq
            if step > _TIMESTAMP_GAP_SAMPLES:
                missing = round(step) - 1
        if self.segment.raw_first == self._stamps.end:
            self.segment = Segment(
                self.segment.number,
                float(stamps[0]),
                self.segment.raw_first,
                self.segment.out_first,
            )
            self._origin = (float(stamps[-1]), float(chunk.received))
            missing = 0
        if missing > 0:
            fill_stamps = self.last_stamp + np.arange(1, missing + 1) / self.sfreq
            fill = np.full((missing, data.shape[1]), np.nan)
            data = np.vstack([fill, data])
            stamps = np.concatenate([fill_stamps, stamps])
        gap = np.zeros(len(stamps), bool)
        gap[:missing] = True
        if self.role == "eeg":
            picked = data[:, self._picks]
            result = self._chain(picked)
            self._raw.write(picked)
            self._out.write(result.data)
            self._blanked.write(result.blanked_in)
        else:
            result = self._chain(data[:, self._picks])
            self._raw.write(result.cardiac)
            self._out.write(result.hb)
            self._blanked.write(np.zeros(len(stamps), bool))
            self._lost.write(result.lost_in & ~gap[:, None])  # a gap is reported as a gap
        self._bad.write(result.bad_in.any(axis=1) & ~gap)
        self._gap.write(gap)
        self._stamps.write(stamps)
        self.last_stamp = float(stamps[-1])
        self.last_received = float(chunk.received)

    # ------------------------------------------------------------------ finding samples

    def _held(self) -> tuple[int, int]:
        """Raw indices ``[lo, hi)`` held for the current segment."""
        return max(self._stamps.first, self.segment.raw_first), self._stamps.end

    def _stamps_around(self, t: float) -> tuple[int, np.ndarray]:
        """``(lo, stamps)``: held stamps of this segment that bracket ``t``.

        Reads a few stamps around where ``t`` should be (anchored on the newest sample, so a
        drifting clock moves the guess by a few samples at most), all of them if that missed.
        """
        held, end = self._held()
        guess = end - 1 - round((self.last_stamp - t) * self.sfreq)
        lo, hi = max(held, guess - _SEARCH_HALF_WIDTH), min(end, guess + _SEARCH_HALF_WIDTH)
        stamps = self._stamps.read(lo, hi) if lo < hi else None
        if stamps is None or not (
            (stamps[0] <= t or lo == held) and (stamps[-1] >= t or hi == end)
        ):
            lo, stamps = held, self._stamps.read(held, end)
        return lo, stamps

    def first_at_or_after(self, t: float) -> int | None:
        """Raw index of this segment's first sample stamped at or after ``t`` (``None``: not
        arrived yet). A sample within :data:`EDGE_TOLERANCE_S` before ``t`` counts as on it."""
        seg = self.segment
        if seg is None or np.isnan(seg.t0) or self.last_stamp < t - EDGE_TOLERANCE_S:
            return None
        lo, stamps = self._stamps_around(t)
        return lo + int(np.searchsorted(stamps, t - EDGE_TOLERANCE_S, side="left"))

    def last_at_or_before(self, t: float) -> int | None:
        """Raw index of this segment's last sample stamped at or before ``t`` (``None``: the
        segment starts after ``t``)."""
        seg = self.segment
        if seg is None or np.isnan(seg.t0) or seg.t0 > t + EDGE_TOLERANCE_S:
            return None
        lo, stamps = self._stamps_around(t)
        return lo + int(np.searchsorted(stamps, t + EDGE_TOLERANCE_S, side="right")) - 1

    def complete_through(self, t: float) -> bool:
        """Whether every sample stamped at or before ``t`` has arrived: the next sample, due
        one period after the newest, would fall after ``t``. Once the stream has ended, its
        last sample must reach to within two periods (or 20 ms) of ``t``."""
        if self.last_stamp is None:
            return False
        if self.lost:
            return self.last_stamp >= t - max(2.0 / self.sfreq, 0.02)
        return self.last_stamp + 1.0 / self.sfreq > t + EDGE_TOLERANCE_S

    def stamp(self, index: int) -> float:
        """The timestamp of raw sample ``index``."""
        return float(self._stamps.read(index, index + 1)[0])

    def started_after(self, t: float) -> bool:
        """Whether the current segment began after ``t`` (a window there straddles a restart)."""
        seg = self.segment
        return seg is None or np.isnan(seg.t0) or seg.t0 > t + 0.5 / self.sfreq

    def outputs_through(self, last: int) -> int:
        """Index one past the newest model-rate sample computed from raw samples up to
        ``last``: the resampler emits output ``n`` once input ``floor(n * down / up)`` is in."""
        seg = self.segment
        return seg.out_first + outputs_through(last - seg.raw_first, self._up, self._down)

    def cut_ending(self, last: int, window_s: float, n_out: int) -> Cut:
        """The window whose newest raw sample is ``last``: ``round(window_s * rate)`` raw
        samples and the ``n_out`` model-rate samples computed from them.

        Raises :class:`SpanUnavailableError` when part of it is before the segment or was
        overwritten.
        """
        n_raw = round(window_s * self.sfreq)
        raw0, raw_end = last - n_raw + 1, last + 1
        out_end = self.outputs_through(last)
        out0 = out_end - n_out
        seg = self.segment
        held_raw, _ = self._held()
        if raw0 < held_raw or out0 < max(self._out.first, seg.out_first):
            raise SpanUnavailableError(raw0, raw_end, held_raw, self._stamps.end)
        stamps = self._stamps.read(raw0, raw_end)
        return Cut(
            out=self._out.read(out0, out_end),
            raw=self._raw.read(raw0, raw_end),
            nonfinite=bool(self._bad.read(raw0, raw_end).any()),
            gap=bool(self._gap.read(raw0, raw_end).any()),
            blanked=bool(self._blanked.read(raw0, raw_end).any()),
            first_stamp=float(stamps[0]),
            last_stamp=float(stamps[-1]),
            lost=None if self._lost is None else self._lost.read(raw0, raw_end).any(axis=0),
        )
