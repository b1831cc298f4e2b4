"""Async LSL readers: one thread per inlet (the bridge to blocking pylsl), chunks to the loop.

:class:`LslReader` is an async context manager. Entering it starts a thread that resolves
the configured stream and opens an inlet (:mod:`streamer.lsl.resolve`, as the recorder
does) and pulls chunks into a preallocated array; each chunk is stamped on this machine's
LSL clock (``time_correction``, re-measured every few seconds; 0 for an outlet on this
machine), checked against the stream's sample counter when it has one, and handed to the
event loop with ``call_soon_threadsafe``. A marker stream is read every 50 ms, and at once
when a window waits for a read (:meth:`LslReader.read_after`), rather than polled every
few ms. When the outlet disappears the thread reports it, resolves the stream again and
resumes with a new *segment* (a fresh start for the preprocessing), without anyone
restarting the monitor. Exiting stops and joins the thread.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from contract.errors import NeuroclipError
from models.io.stream_desc import channels_from_xml, stream_layout
from models.pipeline.streams import Chunk, StreamDescription
from streamer.config import StreamMatch
from streamer.errors import StreamNotFoundError
from streamer.health import StreamHealth
from streamer.lsl.resolve import on_this_machine, open_inlet

logger = logging.getLogger(__name__)

_PULL_TIMEOUT_S = 0.05
_MARKER_POLL_S = 0.05
"""Markers are read this often, and at once when a window waits for a read
(:meth:`LslReader.read_after`): a window whose data is in waits for a marker read that came
back after it, and the reader makes that read when asked instead of polling every few ms."""
_MARKER_HEARTBEAT_S = 0.5
"""An empty marker read nobody asked for is reported at most this often."""
_WAIT_POLL_S = 0.02
"""How often a wait for a connection or a thread's end looks again."""
_JOIN_TIMEOUT_S = 5.0
"""How long a stopping reader waits for its thread."""


@dataclass(frozen=True)
class SegmentStart:
    """A (re)connection: samples from here on continue no earlier segment."""

    role: str
    segment: int
    description: StreamDescription


@dataclass(frozen=True)
class StreamLost:
    """The outlet went away; the reader is looking for it again."""

    role: str
    segment: int
    reason: str


@dataclass(frozen=True)
class MarkersRead:
    """The marker inlet was read at local LSL time ``received``: every marker pushed before
    then has been delivered (the window pipeline waits for this before cutting a window
    whose span a late marker could still change)."""

    role: str
    received: float


ReaderEvent = SegmentStart | StreamLost | Chunk | MarkersRead


class LslReader:
    """Read one LSL stream in a thread; deliver :data:`ReaderEvent` objects to ``sink``.

    Parameters
    ----------
    role
        ``eeg``, ``nirs`` or ``markers``: how the stream is used.
    match
        Which stream to resolve.
    sink
        Called on the event loop with every event, in order.
    health
        Updated by the thread; read by the status reporter.
    """

    def __init__(
        self,
        role: str,
        match: StreamMatch,
        sink: Callable[[ReaderEvent], None],
        health: StreamHealth,
        *,
        clock_sync_interval_s: float = 5.0,
        max_buffered_s: float = 360.0,
        pull_interval_s: float = 0.0,
    ):
        self.role = role
        self._pull_interval = pull_interval_s
        self._due_at: float | None = None
        """Signals: the stream time from which data is wanted as it comes (a window ends
        soon after); before it, chunks are pulled every ``pull_interval_s``."""
        self.match = match
        self.health = health
        self._sink = sink
        self._sync_interval = clock_sync_interval_s
        self._max_buffered = max(1, round(max_buffered_s))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connected = threading.Event()
        self._wake = threading.Event()
        self.description: StreamDescription | None = None
        self.error: BaseException | None = None
        self._read_after: float | None = None
        """Markers: report the first read that comes back after this local LSL time."""

    def deliver_from(self, t: float) -> None:
        """Signals: pull as data arrives once the stream reaches time ``t`` (where the next
        window needs it); until then every ``pull_interval_s``, so a monitor wakes for
        a few large chunks instead of every 10 ms push. Called from the loop."""
        self._due_at = t

    def read_after(self, t: float) -> None:
        """Markers: read the inlet once local LSL time ``t`` has passed and report it (as
        :class:`MarkersRead`); called from the loop, served by the thread."""
        if self._read_after != t:
            self._read_after = t
            self._wake.set()

    async def __aenter__(self) -> LslReader:
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(
            target=self._run, name=f"neuroclip-lsl-{self.role}", daemon=True
        )
        self._thread.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            # polled, not joined in the loop's default executor: its few workers would make
            # the readers of many rooms (one process, streamer.rooms) stop one after another
            await _until(lambda: not self._thread.is_alive(), _JOIN_TIMEOUT_S)

    async def wait_connected(self, timeout_s: float) -> StreamDescription:
        """Wait for the first connection; raise :class:`StreamNotFoundError` after ``timeout_s``."""
        found = await _until(self._connected.is_set, timeout_s)
        if self.error is not None:
            raise self.error
        if not found or self.description is None:
            raise StreamNotFoundError({self.role: self.match.describe()}, timeout_s)
        return self.description

    # ------------------------------------------------------------------ thread side

    def _emit(self, event: ReaderEvent) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self._sink, event)
            except RuntimeError:  # the loop closed between the check and the call
                logger.debug("event loop closed; %s event dropped at shutdown", self.role)

    def _run(self) -> None:
        import pylsl
        from pylsl.util import LostError

        segment = 0
        while not self._stop.is_set():
            opened = open_inlet(
                self.match.predicate(), self.role, self._stop, max_buflen=self._max_buffered
            )
            if opened is None:
                return
            inlet, info = opened
            try:
                description = _describe(info, self.role)
            except NeuroclipError as exc:  # a layout the contract refuses: fatal, reported
                self.error = exc
                self._connected.set()
                return
            segment += 1
            self.description = description
            self.health.on_connect(description.name, description.nominal_rate, segment > 1)
            self._emit(SegmentStart(self.role, segment, description))
            self._connected.set()
            reason = self._pull_loop(pylsl, LostError, inlet, description, segment)
            inlet.close_stream()
            if reason is not None:
                self.health.on_lost(reason)
                self._emit(StreamLost(self.role, segment, reason))
                logger.warning(
                    "%s stream %s lost (%s); looking for it", self.role, description.name, reason
                )

    def _pull_loop(
        self,
        pylsl,
        lost_error: type[Exception],
        inlet,
        description: StreamDescription,
        segment: int,
    ) -> str | None:
        """Pull until the stream is lost (return why) or the reader stops (return None)."""
        if description.string:
            return self._marker_loop(pylsl, lost_error, inlet, segment)
        layout = description.layout
        width = description.channel_count
        capacity = max(64, round(max(description.nominal_rate, 10.0) * 2))
        buffer = np.zeros((capacity, width), np.float32)
        offset = self._measure_offset(inlet)
        next_sync = time.monotonic() + self._sync_interval
        expected_counter: int | None = None
        while not self._stop.is_set():
            try:
                _, stamps = inlet.pull_chunk(  # the samples land in ``buffer``
                    timeout=_PULL_TIMEOUT_S,
                    max_samples=capacity,
                    dest_obj=buffer,
                    min_samples=1,
                    as_numpy=True,
                )
                offset, next_sync = self._resynced(inlet, offset, next_sync)
            except lost_error:
                return "outlet gone"
            received = pylsl.local_clock()
            n = len(stamps)
            if n == 0:
                continue
            stamps = np.asarray(stamps, float) + offset
            block = buffer[:n]
            gap = duplicates = 0
            if layout is not None and layout.counter_column is not None:
                counter = block[:, layout.counter_column].astype(np.int64)
                keep, gap, duplicates, expected_counter = _check_counter(counter, expected_counter)
                if not keep.all():
                    block, stamps = block[keep], stamps[keep]
                if len(stamps) == 0:
                    self.health.on_samples(0, None, received, gap, duplicates)
                    continue
            assert layout is not None
            data = block[:, list(layout.data_columns)].astype(np.float64) * layout.scales
            self.health.on_samples(len(stamps), float(stamps[-1]), received, gap, duplicates)
            self._emit(Chunk(self.role, segment, data, stamps, received, gap, duplicates))
            due = self._due_at
            if self._pull_interval and due is not None and stamps[-1] + self._pull_interval < due:
                self._stop.wait(self._pull_interval)  # liblsl keeps what arrives meanwhile
        return None

    def _marker_loop(self, pylsl, lost_error: type[Exception], inlet, segment: int) -> str | None:
        """Read markers every :data:`_MARKER_POLL_S`, and when a window waits for a read;
        return why the stream was lost, or None when the reader stops."""
        offset = self._measure_offset(inlet)
        next_sync = time.monotonic() + self._sync_interval
        reported = -float("inf")
        while not self._stop.is_set():
            self._wake.wait(_MARKER_POLL_S)
            self._wake.clear()
            wanted = self._read_after
            asked = wanted is not None and wanted > reported
            if asked and (early := wanted - pylsl.local_clock()) > 0:
                time.sleep(early)  # a read counts only once that instant has passed
            try:
                samples, stamps = inlet.pull_chunk(timeout=0.0, max_samples=1024)
                offset, next_sync = self._resynced(inlet, offset, next_sync)
            except lost_error:
                return "outlet gone"
            received = pylsl.local_clock()
            if stamps:
                times = np.asarray(stamps, float) + offset
                labels = [_decode(row[0]) for row in samples]
                self.health.on_samples(len(labels), float(times[-1]), received, 0, 0)
                self._emit(Chunk(self.role, segment, labels, times, received))
            elif not asked and received - reported < _MARKER_HEARTBEAT_S:
                continue
            reported = received
            self._emit(MarkersRead(self.role, received))
        return None

    def _resynced(self, inlet, offset: float, next_sync: float) -> tuple[float, float]:
        """The clock offset, re-measured once ``next_sync`` (monotonic) has passed, and when
        to measure it next."""
        if time.monotonic() < next_sync:
            return offset, next_sync
        return self._measure_offset(inlet, offset), time.monotonic() + self._sync_interval

    def _measure_offset(self, inlet, previous: float = 0.0) -> float:
        from pylsl.util import LostError, TimeoutError

        if self.description is not None and on_this_machine(self.description.hostname):
            self.health.on_clock_offset(0.0)
            return 0.0
        try:
            offset = float(inlet.time_correction(timeout=2.0))
        except (TimeoutError, LostError) as exc:
            logger.warning(
                "%s: time_correction failed (%s); keeping %.6f s", self.role, exc, previous
            )
            return previous
        self.health.on_clock_offset(offset)
        return offset


async def _until(condition: Callable[[], bool], timeout_s: float) -> bool:
    """Whether ``condition`` became true within ``timeout_s``, checked every
    :data:`_WAIT_POLL_S` on the loop (no thread held while waiting)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(_WAIT_POLL_S)
    return True


def _check_counter(counter: np.ndarray, expected: int | None) -> tuple[np.ndarray, int, int, int]:
    """Keep samples whose counter is new; count the missing and the repeated ones.

    Returns ``(keep_mask, missing_before, duplicates, next_expected)``.
    """
    keep = np.ones(len(counter), bool)
    first = int(counter[0])
    if (expected is None or first >= expected) and np.all(np.diff(counter) == 1):
        missing = 0 if expected is None else first - expected
        return keep, missing, 0, int(counter[-1]) + 1
    missing = duplicates = 0
    nxt = first if expected is None else expected
    for i, value in enumerate(counter):
        value = int(value)
        if value < nxt:
            keep[i] = False
            duplicates += 1
            continue
        missing += value - nxt
        nxt = value + 1
    return keep, missing, duplicates, nxt


def _decode(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _describe(info, role: str) -> StreamDescription:
    string = info.channel_format() == 3  # pylsl.cf_string
    count = info.channel_count()
    layout = None
    if not string:
        kind = role if role in ("eeg", "nirs") else "other"
        channels = channels_from_xml(info.as_xml(), count)
        layout = stream_layout(kind, channels, f"LSL {role.upper()} stream {info.name()!r}")
    return StreamDescription(
        name=info.name(),
        type=info.type(),
        source_id=info.source_id(),
        hostname=info.hostname(),
        nominal_rate=float(info.nominal_srate()),
        channel_count=count,
        string=string,
        layout=layout,
    )
