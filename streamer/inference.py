"""ONNX Runtime inference off the event loop: one named single-thread executor that batches
the windows of every room it serves.

The live path never imports torch: :class:`models.bundle.BundleScorer` needs only numpy and
onnxruntime. The CUDA provider is used when ONNX Runtime offers it (``providers: auto``),
the CPU otherwise; ``providers: cuda`` refuses to start without it.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from contract.errors import BundleError
from models.bundle import Bundle, BundleScorer, Scores
from models.windows import Window


def _providers(choice: str) -> list[str] | None:
    if choice == "auto":
        return None
    if choice == "cpu":
        return ["CPUExecutionProvider"]
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        raise BundleError(
            "model.providers is 'cuda' but this ONNX Runtime has no CUDA provider "
            f"(it offers {', '.join(ort.get_available_providers())}).",
            field="providers",
            fix="install onnxruntime-gpu with a matching CUDA, or set model.providers to auto.",
        )
    return ["CUDAExecutionProvider", "CPUExecutionProvider"]


class InferenceEngine:
    """An async context manager that scores windows in its own thread, batching the windows
    that fall due together into one ONNX Runtime call.

    Any number of monitors (rooms) may share one engine. A window asked for while the
    engine is idle runs at once, in a batch with the windows asked for in the same turn of
    the event loop; windows asked for while a batch runs wait for it and go together in the
    next. So a lone window never waits for others, and many rooms whose windows fall due
    at the same instant cost one call (one Python round trip, one thread hand-off) instead
    of one each. A room's window never waits on another room's data: only windows already
    asked for are batched.
    """

    def __init__(
        self,
        bundle: Bundle,
        providers: str = "auto",
        threads: int = 1,
        *,
        max_batch: int = 64,
    ):
        self.bundle = bundle
        self.scorer = BundleScorer(bundle, providers=_providers(providers), threads=threads)
        self.max_batch = max_batch
        self._executor: ThreadPoolExecutor | None = None
        self._pending: list[_Request] = []
        self._running = False
        self.batches = BatchStats()

    @property
    def providers(self) -> list[str]:
        """The providers ONNX Runtime actually uses, best first."""
        return list(self.scorer.providers)

    async def __aenter__(self) -> InferenceEngine:
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="neuroclip-inference")
        # one warm-up run so the first live window does not pay for lazy initialisation
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(
            self._executor, lambda: self.scorer.score(**self.scorer.zero_feeds())
        )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    async def score(self, window: Window, feature_names: list[str]) -> tuple[Scores, float]:
        """Scores of one window, and the ms from asking to having them (a wait for a batch
        in progress included); ``feature_names`` name its features."""
        assert self._executor is not None, "use InferenceEngine as an async context manager"
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        request = _Request(window, tuple(feature_names), loop.create_future())
        self._pending.append(request)
        if not self._running:
            self._running = True
            # the windows asked for in this turn of the loop join the batch
            loop.call_soon(self._start_batch, loop)
        scores = await request.future
        return scores, 1000 * (time.perf_counter() - started)

    def _start_batch(self, loop: asyncio.AbstractEventLoop) -> None:
        batch = [r for r in self._pending[: self.max_batch] if not r.future.cancelled()]
        del self._pending[: self.max_batch]
        if not batch:
            self._next_or_idle(loop)
            return
        self.batches.add(len(batch))
        job = loop.run_in_executor(self._executor, self._run, batch)
        job.add_done_callback(lambda done: self._finish_batch(loop, batch, done))

    def _finish_batch(
        self, loop: asyncio.AbstractEventLoop, batch: list[_Request], done: asyncio.Future
    ) -> None:
        error = None if done.cancelled() else done.exception()
        for i, request in enumerate(batch):
            if request.future.done():
                continue  # its monitor stopped waiting
            if done.cancelled():
                request.future.cancel()
            elif error is not None:
                request.future.set_exception(error)
            else:
                request.future.set_result(done.result()[i])
        self._next_or_idle(loop)

    def _next_or_idle(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._pending and self._executor is not None:
            loop.call_soon(self._start_batch, loop)
        else:
            self._running = False

    def _run(self, batch: list[_Request]) -> list[Scores]:
        """One ONNX call for the batch (windows of one feature layout go together)."""
        groups: dict[tuple[str, ...], list[int]] = {}
        for i, request in enumerate(batch):
            groups.setdefault(request.feature_names, []).append(i)
        out: list[Scores | None] = [None] * len(batch)
        for names, rows in groups.items():
            feeds = self.scorer.window_feeds([batch[i].window for i in rows], list(names))
            scores = self.scorer.score(**feeds)
            for j, i in enumerate(rows):
                out[i] = scores.row(j)
        return out  # type: ignore[return-value]


@dataclass
class _Request:
    window: Window
    feature_names: tuple[str, ...]
    future: asyncio.Future


@dataclass
class BatchStats:
    """How many windows went into the ONNX calls (for tests and profiles)."""

    calls: int = 0
    windows: int = 0
    largest: int = 0

    def add(self, size: int) -> None:
        """Count one call of ``size`` windows."""
        self.calls += 1
        self.windows += size
        self.largest = max(self.largest, size)
