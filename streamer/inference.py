"""ONNX Runtime inference off the event loop: one named single-thread executor per monitor.

The live path never imports torch: :class:`models.bundle.BundleScorer` needs only numpy and
onnxruntime. The CUDA provider is used when ONNX Runtime offers it (``providers: auto``),
the CPU otherwise; ``providers: cuda`` refuses to start without it.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

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
    """An async context manager that scores single windows in its own thread."""

    def __init__(self, bundle: Bundle, providers: str = "auto", threads: int = 1):
        self.bundle = bundle
        self.scorer = BundleScorer(bundle, providers=_providers(providers), threads=threads)
        self._executor: ThreadPoolExecutor | None = None

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

    def _run(self, window: Window, feature_names: list[str]) -> Scores:
        return self.scorer.score(**self.scorer.window_feeds([window], feature_names))

    async def score(self, window: Window, feature_names: list[str]) -> tuple[Scores, float]:
        """Scores of one window, and the ms it took; ``feature_names`` name its features."""
        assert self._executor is not None, "use InferenceEngine as an async context manager"
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        scores = await loop.run_in_executor(self._executor, self._run, window, feature_names)
        return scores, 1000 * (time.perf_counter() - started)
