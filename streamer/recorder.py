"""Record the live LSL streams to an XDF file, as LabRecorder would (``neuroclip record``).

The streams are the ones the monitor reads, found with the same configuration
(:class:`~streamer.config.MonitorConfig`): EEG and NIRS always, Markers when
``streams.markers_required`` (otherwise recorded when it appears), and the monitor's own
score stream (type ``NeuroCLIPScore``, named as :class:`~streamer.outputs.lsl_outlet.ScoreOutlet`
names it for the configured site and session) when asked for.

How it works, and why:

* **Resolution, all at once.** One thread per stream looks for it from the start. Recording
  begins as soon as every required stream is found; a required stream still missing after
  ``streams.resolve_timeout_s`` stops everything with one
  :class:`~streamer.errors.StreamNotFoundError` naming every missing stream. Optional streams
  (Markers when not required, the score stream) keep being looked for until the same
  deadline and join the file when they appear (XDF allows a stream header anywhere); one
  that never appears is a logged warning, not an error.
  Each inlet is opened as soon as its stream is found, so a stream found before the others
  holds a few more samples at its start.
* **No file until the streams are there.** ``out`` is checked first (an existing file is
  refused at once and left untouched) but only created once the required streams are found,
  so a refusal writes nothing.
* **Raw timestamps and clock offsets, like LabRecorder.** Samples are written with the
  stream's own (uncorrected) timestamps; every ``streams.clock_sync_interval_s`` (5 s by
  default) ``inlet.time_correction()`` is written as a ClockOffset chunk collected at
  :func:`pylsl.local_clock`, so readers (pyxdf ``synchronize_clocks``) put every stream on
  this host's clock. Stream headers carry the whole ``inlet.info().as_xml()``: channel
  labels, units, fNIRS wavelengths and distances survive.
* **A lost outlet is looked for again.** When an outlet disappears (pylsl ``LostError``) the
  file stays valid (every chunk is whole, see :mod:`models.io.xdf_writer`), the loss is
  logged and the stream is resolved again (same name, type and source_id) for as long as the
  recording runs. A returning outlet with the same channel count and format continues the
  same XDF stream (a fresh clock offset is written at once); one with another layout gets a
  new stream header.
* **Stopping.** ``duration_s``, ``should_stop()`` or Ctrl-C (:class:`KeyboardInterrupt`)
  stop the threads, which write what their inlets still hold, and then the writer is closed
  so stream footers are written. A recorder killed outright leaves a file readable up to its
  last chunk.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pylsl
from pylsl.util import InternalError, InvalidArgumentError, LostError
from pylsl.util import TimeoutError as LslTimeoutError

from contract.errors import NeuroclipError
from models.io.output import require_new_file
from models.io.stream_desc import SCORE_STREAM_TYPE
from models.io.xdf_writer import XdfWriter
from streamer.config import MonitorConfig, StreamMatch
from streamer.errors import StreamNotFoundError
from streamer.lsl.resolve import on_this_machine, open_inlet
from streamer.outputs.lsl_outlet import ScoreOutlet

logger = logging.getLogger(__name__)

PULL_TIMEOUT_S = 0.2
"""How long one ``pull_chunk`` waits: the granularity of stopping and of chunks."""
_TIME_CORRECTION_TIMEOUT_S = 2.0
_JOIN_TIMEOUT_S = 5.0
_MAX_BUFFER_S = 360
_CHANNEL_FORMATS = {
    pylsl.cf_float32: "float32",
    pylsl.cf_double64: "double64",
    pylsl.cf_string: "string",
    pylsl.cf_int32: "int32",
    pylsl.cf_int16: "int16",
    pylsl.cf_int8: "int8",
    pylsl.cf_int64: "int64",
}


class RecorderError(NeuroclipError):
    """The recording cannot go on (a stream LSL cannot deliver, an LSL failure)."""


@dataclass
class RecordTotals:
    """What was written: samples per stream name, reconnections, and the file."""

    path: Path
    samples: dict[str, int] = field(default_factory=dict)
    """Samples written per stream name (every stream that was declared in the file)."""
    reconnects: dict[str, int] = field(default_factory=dict)
    """How many times each lost stream came back (only streams that were lost)."""
    duration_s: float = 0.0
    """Wall-clock seconds from the start of recording to the stop request."""
    written: bool = False
    """Whether the file was created (False when stopped before the streams were found)."""


@dataclass(frozen=True)
class _Target:
    """One stream to record: its role, how to find it, and whether it is required."""

    role: str
    match: StreamMatch
    required: bool

    @property
    def label(self) -> str:
        return {"eeg": "EEG", "nirs": "NIRS", "markers": "Markers"}.get(self.role, "score")


def score_stream_match(cfg: MonitorConfig) -> StreamMatch:
    """How the monitor names its LSL score stream for ``cfg.site`` and ``cfg.session``."""
    name = ScoreOutlet(cfg.lsl_out.name, cfg.site, cfg.session, "").name
    return StreamMatch(name=name, type=SCORE_STREAM_TYPE)


def record(
    cfg: MonitorConfig,
    out: Path,
    *,
    duration_s: float | None = None,
    scores: bool = True,
    should_stop: Callable[[], bool] | None = None,
    on_start: Callable[[str], None] | None = None,
) -> RecordTotals:
    """Record the configured LSL streams to the new XDF file ``out``; see the module docstring.

    Parameters
    ----------
    cfg
        The monitor's configuration: which streams, how long to look for them, the site and
        session that name the score stream.
    out
        The XDF file to create; an existing file is refused (:class:`OutputError`).
    duration_s
        Stop after this many seconds of recording (``None``: until stopped).
    scores
        Also record the monitor's score stream when it appears.
    should_stop
        Polled about ten times a second; ``True`` stops the recording (the CLI's SIGTERM).
    on_start
        Called once with a line saying what is being recorded, when recording starts.

    Returns
    -------
    RecordTotals
        Samples per stream. ``written`` is False only when ``should_stop`` stopped the
        recorder before the required streams were found (then no file exists).

    Raises
    ------
    StreamNotFoundError
        A required stream did not appear within ``streams.resolve_timeout_s``.
    OutputError
        ``out`` exists, its folder does not, or writing fails.
    RecorderError
        LSL failed in a way that stops the recording.
    """
    out = Path(out)
    _check_output(out)
    streams = cfg.streams
    targets = [
        _Target("eeg", streams.eeg, True),
        _Target("nirs", streams.nirs, True),
        _Target("markers", streams.markers, streams.markers_required),
    ]
    if scores and cfg.lsl_out.enabled:
        targets.append(_Target("scores", score_stream_match(cfg), False))
    elif scores:
        logger.info("lsl_out.enabled is false in the configuration: no score stream to record")
    shared = _Shared(
        sync_interval_s=streams.clock_sync_interval_s,
        resolve_timeout_s=streams.resolve_timeout_s,
    )
    deadline = time.monotonic() + streams.resolve_timeout_s
    threads = [_StreamThread(target, deadline, shared) for target in targets]
    for thread in threads:
        thread.start()
    totals = RecordTotals(path=out)

    def stop_requested() -> bool:
        return should_stop is not None and bool(should_stop())

    try:
        found = _wait_for_required(threads, deadline, stop_requested, shared)
        if found:
            shared.writer = XdfWriter(out)
    except BaseException:
        shared.stop.set()
        _join(threads)
        raise
    if not found:  # should_stop() before the streams were there: no file
        shared.stop.set()
        _join(threads)
        return totals
    totals.written = True
    started = time.monotonic()
    shared.ready.set()
    try:
        if on_start is not None:
            on_start(_start_line(threads, out, deadline, shared))
        _wait_for_stop(started, duration_s, stop_requested, shared)
    except KeyboardInterrupt:
        logger.info("interrupted; closing %s", out)
    finally:
        shared.stop.set()
        totals.duration_s = time.monotonic() - started
        try:
            _join(threads)
        finally:  # footers even when a second Ctrl-C cuts the join short
            shared.writer.close()
    for thread in threads:
        for name, count in thread.samples.items():
            totals.samples[name] = totals.samples.get(name, 0) + count
        if thread.reconnects:
            totals.reconnects[thread.target.label] = thread.reconnects
    if shared.error is not None:
        raise shared.error
    return totals


def _check_output(out: Path) -> None:
    """Refuse at once what the writer would refuse only after the streams are found."""
    require_new_file(out, "the XDF file")


def _wait_for_required(
    threads: list[_StreamThread],
    deadline: float,
    stop_requested: Callable[[], bool],
    shared: _Shared,
) -> bool:
    """Wait until every required stream is open; False if stopped first.

    Raises :class:`StreamNotFoundError` naming every required stream still missing at the
    deadline, or the first error a thread hit.
    """
    required = [t for t in threads if t.target.required]
    while True:
        if shared.error is not None:
            raise shared.error
        if all(t.found.is_set() for t in required):
            return True
        if stop_requested():
            return False
        if time.monotonic() >= deadline and all(
            t.found.is_set() or not t.is_alive() for t in required
        ):
            missing = {
                t.target.role: t.target.match.describe() for t in required if not t.found.is_set()
            }
            raise StreamNotFoundError(missing, shared.resolve_timeout_s)
        time.sleep(0.05)


def _wait_for_stop(
    started: float,
    duration_s: float | None,
    stop_requested: Callable[[], bool],
    shared: _Shared,
) -> None:
    """Return when the duration is reached, a stop is requested or a thread failed."""
    while shared.error is None:
        if duration_s is not None and time.monotonic() - started >= duration_s:
            logger.info("duration of %g s reached; stopping", duration_s)
            return
        if stop_requested():
            logger.info("stop requested")
            return
        time.sleep(0.1)


def _join(threads: list[_StreamThread]) -> None:
    for thread in threads:
        if thread.is_alive():
            began = time.monotonic()
            thread.join(_JOIN_TIMEOUT_S)
            logger.debug(
                "%s thread joined in %.3f s", thread.target.label, time.monotonic() - began
            )
        if thread.is_alive():
            logger.warning(
                "%s recording thread did not stop within %g s; closing the file anyway",
                thread.target.label,
                _JOIN_TIMEOUT_S,
            )


def _start_line(threads: list[_StreamThread], out: Path, deadline: float, shared: _Shared) -> str:
    with shared.lock:
        shared.announced = True
        recording = [t.summary for t in threads if t.summary is not None]
        waiting = [
            f"{t.target.label} ({t.target.match.describe()})"
            for t in threads
            if t.summary is None and t.is_alive()
        ]
    line = f"recording {'; '.join(recording)} to {out}"
    if waiting:
        left = max(0.0, deadline - time.monotonic())
        line += f"; still looking for {', '.join(waiting)} for up to {left:.0f} s"
    return line


@dataclass
class _Shared:
    """What the stream threads share with :func:`record`."""

    sync_interval_s: float
    resolve_timeout_s: float
    stop: threading.Event = field(default_factory=threading.Event)
    ready: threading.Event = field(default_factory=threading.Event)
    """Set once the writer exists: the threads may declare their streams."""
    writer: XdfWriter | None = None
    error: BaseException | None = None
    announced: bool = False
    """Whether the start line was printed (streams found later are logged instead)."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail(self, error: BaseException) -> None:
        """Keep the first error a thread hit; :func:`record` raises it after closing."""
        with self.lock:
            if self.error is None:
                self.error = error
        self.stop.set()


class _StreamThread(threading.Thread):
    """Find one stream, then pull it into the writer until stopped, looking again if lost."""

    def __init__(self, target: _Target, deadline: float, shared: _Shared):
        super().__init__(name=f"neuroclip-record-{target.role}", daemon=True)
        self.target = target
        self.deadline = deadline
        self.shared = shared
        self.found = threading.Event()
        self.summary: str | None = None
        self.samples: dict[str, int] = {}
        self.reconnects = 0
        self._stream_id: int | None = None
        self._layout: tuple[int, str] | None = None
        self._hostname = ""

    # -------------------------------------------------------------- thread body

    def run(self) -> None:
        try:
            self._record()
        except NeuroclipError as exc:
            self.shared.fail(exc)
        except (InternalError, InvalidArgumentError) as exc:
            self.shared.fail(
                RecorderError(
                    f"LSL failed while recording the {self.target.label} stream "
                    f"({type(exc).__name__}: {exc}); the file holds everything written before.",
                    fix="check that the acquisition software still runs, then record again "
                    "to a new file.",
                )
            )
        except BaseException as exc:  # a bug: stop the recording cleanly, then let it show
            self.shared.fail(exc)

    def _record(self) -> None:
        shared = self.shared
        opened = self._open(self.target.match.predicate(), self.deadline)
        if opened is None:  # warn only once recording (a refusal says enough by itself)
            if not self.target.required and self._wait_ready():
                logger.warning(
                    "no %s stream matching %s appeared within %g s; recording without it",
                    self.target.label,
                    self.target.match.describe(),
                    shared.resolve_timeout_s,
                )
            return
        inlet, info = opened
        with shared.lock:
            self.summary = _describe(info, self.target.label)
            late = shared.announced
        self.found.set()
        if not self._wait_ready():
            inlet.close_stream()
            return
        self._hostname = info.hostname()
        self._declare(info, again=False)
        if late:
            logger.info("now also recording %s", self.summary)
        identity = _identity(info) or self.target.match.predicate()
        while True:
            lost = self._pull(inlet, info.name())
            inlet.close_stream()
            if not lost or shared.stop.is_set():
                return
            logger.warning(
                "%s stream %s lost (outlet gone); the file stays valid, looking for it again",
                self.target.label,
                info.name(),
            )
            opened = self._open(identity, None)
            if opened is None:
                return
            inlet, info = opened
            self._hostname = info.hostname()
            self._declare(info, again=True)
            self.reconnects += 1
            logger.warning(
                "%s stream %s is back; recording resumed", self.target.label, info.name()
            )

    def _wait_ready(self) -> bool:
        """Wait until the writer exists (True) or the recorder stops (False)."""
        while not self.shared.ready.wait(0.05):
            if self.shared.stop.is_set():
                return False
        return not self.shared.stop.is_set()

    def _open(
        self, predicate: str, deadline: float | None
    ) -> tuple[pylsl.StreamInlet, pylsl.StreamInfo] | None:
        """Resolve ``predicate`` and open an inlet, until ``deadline`` (None: until stopped)."""
        return open_inlet(
            predicate,
            self.target.label,
            self.shared.stop,
            deadline=deadline,
            max_buflen=_MAX_BUFFER_S,
        )

    def _declare(self, info: pylsl.StreamInfo, *, again: bool) -> None:
        """Write the stream header, or keep the current one when a lost stream comes back
        with the same channel count and format."""
        writer = self.shared.writer
        assert writer is not None
        fmt = _CHANNEL_FORMATS.get(info.channel_format())
        if fmt is None:
            raise RecorderError(
                f"The {self.target.label} stream {info.name()!r} has an undefined channel "
                "format; an XDF file cannot hold it.",
                fix="configure the acquisition software to send float32, double64, int or "
                "string samples.",
            )
        layout = (info.channel_count(), fmt)
        if again and layout == self._layout:
            return
        if again:
            logger.warning(
                "%s stream %s came back with %d %s channels instead of %d %s: recorded as a "
                "new stream in the file",
                self.target.label,
                info.name(),
                *layout,
                *(self._layout or (0, "")),
            )
        self._stream_id = writer.add_stream(
            info.name(),
            info.type(),
            info.channel_count(),
            info.nominal_srate(),
            fmt,
            source_id=info.source_id(),
            desc_xml=info.as_xml(),
        )
        self._layout = layout
        self.samples.setdefault(info.name(), 0)

    def _pull(self, inlet: pylsl.StreamInlet, name: str) -> bool:
        """Pull into the writer until stopped (False) or the outlet is lost (True)."""
        stop = self.shared.stop
        string = self._layout is not None and self._layout[1] == "string"
        next_sync = 0.0
        while not stop.is_set():
            try:
                if time.monotonic() >= next_sync:
                    self._clock_offset(inlet)
                    next_sync = time.monotonic() + self.shared.sync_interval_s
                samples, stamps = inlet.pull_chunk(
                    timeout=PULL_TIMEOUT_S, max_samples=4096, as_numpy=not string
                )
            except LostError:
                return True
            self._write(name, samples, stamps)
        try:  # what the inlet still holds was sent before the stop: keep it
            samples, stamps = inlet.pull_chunk(timeout=0.0, max_samples=65536, as_numpy=not string)
        except LostError:
            logger.info("%s stream %s lost while stopping", self.target.label, name)
            return False
        self._write(name, samples, stamps)
        return False

    def _clock_offset(self, inlet: pylsl.StreamInlet) -> None:
        """Write ``time_correction()`` as a ClockOffset chunk; LostError propagates."""
        try:
            offset = (
                0.0
                if on_this_machine(self._hostname)
                else inlet.time_correction(timeout=_TIME_CORRECTION_TIMEOUT_S)
            )
        except LslTimeoutError:
            logger.warning(
                "%s: time_correction timed out; no clock offset this time", self.target.label
            )
            return
        writer = self.shared.writer
        assert writer is not None and self._stream_id is not None
        writer.write_clock_offset(self._stream_id, pylsl.local_clock(), float(offset))

    def _write(self, name: str, samples: np.ndarray | list, stamps: np.ndarray | list) -> None:
        if len(stamps) == 0:
            return
        writer = self.shared.writer
        assert writer is not None and self._stream_id is not None
        if writer.closed:  # only a thread that outlived the join gets here
            logger.warning("%s: %d samples pulled after the file was closed", name, len(stamps))
            return
        writer.write_samples(self._stream_id, stamps, samples)
        self.samples[name] += len(stamps)


def _identity(info: pylsl.StreamInfo) -> str:
    """The predicate that finds this very stream again (name, type, source_id)."""
    fields = (("name", info.name()), ("type", info.type()), ("source_id", info.source_id()))
    # a value with a quote cannot go into the XPath predicate: match on the others
    return " and ".join(f"{key}='{value}'" for key, value in fields if value and "'" not in value)


def _describe(info: pylsl.StreamInfo, label: str) -> str:
    rate = info.nominal_srate()
    rate_text = f"{rate:g} Hz" if rate > 0 else "irregular"
    return f"{label} {info.name()!r} ({info.channel_count()} ch, {rate_text})"
