"""The live monitor: readers -> window pipeline -> ONNX encoder -> log, LSL and MQTT.

One asyncio loop. Reader threads hand chunks to the loop, where :meth:`Monitor._on_event`
feeds them to the :class:`~models.pipeline.pipeline.WindowPipeline` (the object offline
scoring and training use) and asks it for the windows that are ready; one scorer task
takes windows in order, runs inference in the engine's executor and publishes. A ticker
emits overdue windows while a stream is silent, and a status task reports health. Every
resource is an async context manager entered in one exit stack, and every loop runs in one
TaskGroup, so Ctrl-C or an error closes everything cleanly (the retained status turns
``offline``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from contract.errors import NeuroclipError
from models.bundle import Bundle
from models.features import window_feature_names
from models.pipeline.buffer import ClockJump
from models.pipeline.compat import check_stream
from models.pipeline.holding import HeldFeed
from models.pipeline.pipeline import GatedWindow, WindowPipeline
from models.pipeline.streams import Chunk, StreamDescription
from streamer.config import MonitorConfig
from streamer.errors import StreamNotFoundError
from streamer.health import LatencyStats, StreamHealth
from streamer.inference import InferenceEngine
from streamer.lsl.reader import LslReader, MarkersRead, ReaderEvent, SegmentStart, StreamLost
from streamer.messages import (
    Identity,
    SessionScoring,
    dumps,
    event_message,
    quality_message,
    score_message,
)
from streamer.outputs.lsl_outlet import ScoreOutlet
from streamer.outputs.mqtt import MqttPublisher
from streamer.outputs.session_log import SessionLog, log_path
from streamer.status import status_line, status_message

logger = logging.getLogger(__name__)

_TICK_S = 0.1
_DUE_MARGIN_S = 0.3
"""Signal readers pull as data arrives from this long before the next window's end (more
than a fNIRS period at the lowest rate a bundle takes, so its last sample is never held)."""


_VANISHED = "monitor vanished (the broker published its last will)"


@dataclass
class MonitorResult:
    """What a run did, for the CLI's closing line and for tests."""

    windows: int
    usable: int
    log_path: Path
    reason: str = "ended"
    """Why it stopped: ``Ctrl-C``, ``SIGTERM``, ``duration reached``, ``fatal error: ...``."""
    undelivered: int = 0
    """Messages the broker never acknowledged (the session log has every score)."""

    def line(self) -> str:
        """The closing line: windows, log, what the broker missed."""
        text = (
            f"monitor stopped ({self.reason}): {self.windows} window(s) scored, "
            f"{self.usable} usable; session log {self.log_path}"
        )
        if self.undelivered:
            text += (
                f"; {self.undelivered} message(s) not delivered to the broker "
                "(the scores among them are in the session log)"
            )
        return text


def _first_leaf(group: BaseExceptionGroup) -> BaseException:
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first


def _local_clock() -> float:
    import pylsl

    return pylsl.local_clock()


class Monitor:
    """Watch one session; :meth:`run` until ``duration_s`` passes or the task is cancelled.

    ``engine``: an inference engine already entered and shared with other monitors (the
    rooms of one process, :mod:`streamer.rooms`); ``None``: the monitor runs its own.
    """

    def __init__(
        self,
        cfg: MonitorConfig,
        bundle: Bundle,
        *,
        clock: Callable[[], float] = _local_clock,
        engine: InferenceEngine | None = None,
    ):
        self.cfg = cfg
        self.bundle = bundle
        self.clock = clock
        self.params = bundle.signal_params
        self.eeg_channels = bundle.eeg_channels
        self.ident = Identity(cfg.site, cfg.session, bundle.meta["name"], bundle.sha256)
        self.health = {r: StreamHealth(r) for r in ("eeg", "nirs", "markers")}
        self.latency = LatencyStats()
        self.pipeline = WindowPipeline(
            self.params,
            self.eeg_channels,
            hop_s=cfg.windows.hop_s,
            warmup_s=cfg.windows.warmup_s,
            max_wait_s=cfg.windows.max_wait_s,
            on_jump=self._clock_jump,
            nirs_pairs=(self.bundle.nirs_pairs, self.bundle.nirs_midpoints),
            phase_s=cfg.windows.phase_s or 0.0,
        )
        self.feed = HeldFeed(self.pipeline)
        self.scoring = SessionScoring(
            bundle.meta, cfg.windows.smoothing_windows, self.pipeline.grid
        )
        self._windows: asyncio.Queue[tuple[GatedWindow, dict[str, float]] | None] = asyncio.Queue()
        self._pair_names: list[str] = []
        self._feature_names: list[str] = []
        """Names of a window's feature columns, set with the fNIRS pairs (not per window)."""
        self._publish_ms: float | None = None
        self._fatal: BaseException | None = None
        self._started = time.time()
        self.log: SessionLog | None = None
        self.mqtt: MqttPublisher | None = None
        self.outlet: ScoreOutlet | None = None
        self.engine: InferenceEngine | None = engine
        self._own_engine = engine is None
        self._readers: dict[str, LslReader] = {}
        self._due_end: float | None = None
        self.windows_emitted = 0
        self._in_flight: asyncio.Future | None = None
        self.log_path = Path(cfg.log.dir)
        self.stop_reason: str | None = None
        self.ended_unix: float | None = None
        self._duration_reached = False

    # ---------------------------------------------------------------- lifecycle

    async def run(self) -> MonitorResult:
        """Connect, check the bundle against the streams, then score until stopped.

        However it stops (``duration_s``, :meth:`request_stop` then a cancel for Ctrl-C or
        SIGTERM, a fatal error), the retained status ends ``offline`` with the real counts,
        the reason and the end time, and the session's summary is published last.
        """
        cfg = self.cfg
        path = self.log_path = log_path(cfg.log.dir, cfg.site, cfg.session)
        try:
            async with contextlib.AsyncExitStack() as stack:
                if self._own_engine:
                    self.engine = await stack.enter_async_context(
                        InferenceEngine(self.bundle, cfg.model.providers, cfg.model.threads)
                    )
                self.log = await stack.enter_async_context(SessionLog(path, fsync=cfg.log.fsync))
                if cfg.mqtt.enabled:
                    # the will is what the broker publishes if this process vanishes
                    will = dumps(self._status("offline", _VANISHED)).encode()
                    self.mqtt = await stack.enter_async_context(
                        MqttPublisher(
                            cfg.mqtt, cfg.site, cfg.session, will, final_status=self._final_status
                        )
                    )
                    self.mqtt.set_retained("status", dumps(self._status("starting")).encode())
                stack.push_async_exit(self._stopping)  # runs before the publisher closes
                readers = {
                    role: await stack.enter_async_context(
                        LslReader(
                            role,
                            getattr(cfg.streams, role),
                            self._on_event,
                            self.health[role],
                            clock_sync_interval_s=cfg.streams.clock_sync_interval_s,
                            max_buffered_s=cfg.streams.max_buffered_s,
                            pull_interval_s=cfg.streams.pull_interval_s,
                        )
                    )
                    for role in ("eeg", "nirs", "markers")
                }
                self._readers = readers
                await self._wait_for_streams(readers)
                if cfg.lsl_out.enabled:
                    self.outlet = await stack.enter_async_context(
                        ScoreOutlet(cfg.lsl_out.name, cfg.site, cfg.session, self.bundle.sha256)
                    )
                logger.info(
                    "monitoring site %s session %s with %s (%s) on %s; log %s",
                    cfg.site,
                    cfg.session,
                    self.ident.model_name,
                    self.bundle.sha256[:12],
                    ", ".join(self.engine.providers),
                    path,
                )
                try:
                    await self._run_tasks()
                except ExceptionGroup as group:  # the first failure of a task, as itself
                    raise _first_leaf(group) from None
                finally:
                    if self._in_flight is not None and not self._in_flight.done():
                        await self._in_flight
        except asyncio.CancelledError:
            raise  # a requested stop: the caller prints the closing line
        except BaseException:
            logger.error(self.result().line())
            raise
        return self.result()

    def request_stop(self, reason: str) -> None:
        """Say why the run is about to be cancelled (``Ctrl-C``, ``SIGTERM``): the final
        status and the last line carry it."""
        self.stop_reason = self.stop_reason or reason

    def result(self) -> MonitorResult:
        """What the run did so far (complete once :meth:`run` returned)."""
        return MonitorResult(
            windows=self.windows_emitted,
            usable=self.scoring.summary.usable,
            log_path=self.log_path,
            reason=self.stop_reason or "running",
            undelivered=self.mqtt.undelivered if self.mqtt is not None else 0,
        )

    async def _stopping(self, exc_type, exc, _tb) -> bool:
        """Record why the run ends and publish the last summary (the publisher, closed
        next, sends the final status)."""
        if exc is None:
            reason = "duration reached" if self._duration_reached else "ended"
        elif isinstance(exc, asyncio.CancelledError):
            reason = "cancelled"
        else:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            reason = f"fatal error: {first}"
        self.stop_reason = self.stop_reason or reason
        self.ended_unix = time.time()
        if self.mqtt is not None:
            self.mqtt.set_retained("summary", self._summary_payload())
        return False

    def _final_status(self) -> bytes:
        return dumps(self._status("offline")).encode()

    def _summary_payload(self) -> bytes:
        return dumps(self.scoring.summary_message(self.ident)).encode()

    async def _run_tasks(self) -> None:
        try:
            async with asyncio.timeout(self.cfg.duration_s), asyncio.TaskGroup() as tasks:
                tasks.create_task(self._score_loop(), name="neuroclip-score")
                tasks.create_task(self._tick_loop(), name="neuroclip-tick")
                tasks.create_task(self._status_loop(), name="neuroclip-status")
        except TimeoutError:
            self._duration_reached = True
            logger.info("duration of %g s reached; stopping", self.cfg.duration_s)

    async def _wait_for_streams(self, readers: dict[str, LslReader]) -> None:
        timeout = self.cfg.streams.resolve_timeout_s
        roles = ["eeg", "nirs"] + (["markers"] if self.cfg.streams.markers_required else [])
        results = await asyncio.gather(
            *(readers[role].wait_connected(timeout) for role in roles), return_exceptions=True
        )
        missing: dict[str, str] = {}
        for result in results:
            if isinstance(result, StreamNotFoundError):
                missing.update(result.missing)
            elif isinstance(result, BaseException):
                raise result
        if missing:
            raise StreamNotFoundError(missing, timeout)
        await asyncio.sleep(0)  # let the connection events run
        if self._fatal is not None:
            raise self._fatal
        self._check_stream("eeg", results[0])
        self._check_stream("nirs", results[1])

    def _check_stream(self, role: str, description: StreamDescription) -> None:
        """Refuse a stream that does not fit the bundle (channels, units, rate, fNIRS pairs)."""
        pairs = check_stream(self.bundle, role, description)
        if pairs is not None:
            self._pair_names = pairs
            # features are named by the model's pairs; messages by the stream's own names
            self._feature_names = window_feature_names(
                self.eeg_channels, list(self.bundle.nirs_pairs)
            )

    # ---------------------------------------------------------------- events from readers

    def _on_event(self, event: ReaderEvent) -> None:
        """Runs on the loop for every reader event, in order per reader."""
        if self._fatal is not None:
            return
        try:
            self._handle(event)
        except NeuroclipError as exc:  # a stream the bundle or the contract refuses
            self._fail(exc)
        except Exception as exc:
            logger.exception("failed to handle a %s event", event.role)
            self._fail(exc)

    def _fail(self, exc: BaseException) -> None:
        if self._fatal is None:
            self._fatal = exc
            self._windows.put_nowait(None)  # wakes the scorer, which raises it

    def _handle(self, event: ReaderEvent) -> None:
        role = event.role
        if isinstance(event, MarkersRead):
            self.pipeline.markers_seen(event.received)
            self._poll(self.clock())
            return
        if isinstance(event, SegmentStart):
            if role != "markers":
                self._check_stream(role, event.description)
                self.feed.flush(role)
            self.pipeline.start(role, event.segment, event.description)
            if event.segment > 1:
                self._event("stream/found", self.clock(), role=role, stream=event.description.name)
            return
        if isinstance(event, StreamLost):
            if role != "markers":
                self.feed.flush(role)
            self.pipeline.lost(role)
            self._event("stream/lost", self.clock(), role=role, reason=event.reason)
            self._poll()  # windows whose data all arrived are scored now
            return
        assert isinstance(event, Chunk)
        if role == "markers":
            self.pipeline.feed(event)
            for label, t in zip(event.data, event.stamps, strict=True):
                self._event(label, float(t), phase=self.pipeline.phases.info(t, t).phase)
            return  # the reader's MarkersRead that follows releases the windows
        buffer = self.pipeline.buffers[role]
        if buffer.segment is None or buffer.segment.number != event.segment:
            return
        received_at = self.clock()
        started = time.perf_counter()
        if self.feed.add(event):
            self._poll(received_at, started)

    def _poll(self, received_at: float | None = None, started: float | None = None) -> None:
        """Queue every window the pipeline releases, with the latency it has so far.

        ``received_at`` is when the chunk (data or a marker read) that completed the windows
        was taken; ``None`` when the timer releases overdue windows, which have no ingest.
        Latencies count from the window's end (the end of its last fNIRS sample's period),
        on the streams' corrected clock.
        """
        for window in self.pipeline.ready(self.clock()):
            stages: dict[str, float] = {"since": started or time.perf_counter()}
            if received_at is not None:
                stages["ingest"] = 1000 * (received_at - window.t_end)
            self._windows.put_nowait((window, stages))
        if not self._readers:
            return
        needed = self.pipeline.markers_needed_after
        if needed is not None:
            self._readers["markers"].read_after(needed)  # it reports its next read
        end = self.pipeline.next_window_end()
        if end is not None and end != self._due_end:
            self._due_end = end  # the signal readers pull as data comes from just before it
            for role in ("eeg", "nirs"):
                self._readers[role].deliver_from(end - _DUE_MARGIN_S)

    def _clock_jump(self, role: str, jump: ClockJump) -> None:
        self._event(
            "stream/clock_jump",
            self.clock(),
            role=role,
            step_s=round(jump.step_s, 6),
            corrected=jump.corrected,
        )

    def _event(self, label: str, t: float, **extra: object) -> None:
        if self.mqtt is not None:
            self.mqtt.enqueue("event", dumps(event_message(self.ident, label, t, **extra)).encode())

    # ---------------------------------------------------------------- tasks

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(_TICK_S)
            self.feed.flush_waiting(self.clock())
            self._poll(None)

    async def _score_loop(self) -> None:
        assert self.engine is not None
        while True:
            item = await self._windows.get()
            if item is None:
                raise self._fatal
            window, stages = item
            stages["preprocess"] = 1000 * (time.perf_counter() - stages.pop("since"))
            scores = None
            if window.usable:
                scores, stages["inference"] = await self.engine.score(
                    window.window, self._feature_names
                )
            stages["publish"] = self._publish_ms
            if "ingest" in stages:
                stages["total"] = 1000 * (self.clock() - window.t_end)
            # once a score goes out it also reaches the log and the counts: a stop (Ctrl-C,
            # --duration) waits for the window in flight instead of cutting it in half
            self._in_flight = asyncio.ensure_future(self._publish(window, scores, stages))
            await asyncio.shield(self._in_flight)

    async def _publish(self, window: GatedWindow, scores, stages: dict) -> None:
        started = time.perf_counter()
        smoothed = self.scoring.add(window, scores)
        message = score_message(
            self.ident,
            window,
            scores,
            smoothed,
            stages,
            eeg_channels=self.eeg_channels,
            pair_names=self._pair_names,
            estimate=self.scoring.estimate(),
        )
        text = dumps(message)
        # hand the score to the network first (lower latency), then append it to the log;
        # the log keeps a backlog when the disk fails, so neither path waits on the other
        if self.outlet is not None:
            self.outlet.push(text, window.t_end)
        if self.mqtt is not None:
            self.mqtt.enqueue("score", text.encode())
        await self.log.append(text)
        if self.mqtt is not None:
            quality = quality_message(self.ident, window, self.eeg_channels, self._pair_names)
            self.mqtt.enqueue("quality", dumps(quality).encode(), qos=0)
            if window.seq % 10 == 0:
                self.mqtt.set_retained("summary", self._summary_payload())
        self.windows_emitted += 1
        self.latency.add(message["latency_ms"])
        self._publish_ms = 1000 * (time.perf_counter() - started)

    async def _status_loop(self) -> None:
        while True:
            status = self._status("online")
            if self.mqtt is not None:
                self.mqtt.set_retained("status", dumps(status).encode())
            logger.info(self._status_line(status))
            await asyncio.sleep(self.cfg.status_interval_s)

    # ---------------------------------------------------------------- status

    def _status(self, state: str, reason: str | None = None) -> dict:
        return status_message(self, state, reason)

    @staticmethod
    def _status_line(status: dict) -> str:
        return status_line(status)
