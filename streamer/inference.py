"""ONNX Runtime inference off the event loop: one named single-thread executor per monitor.

The live path never imports torch: :class:`models.bundle.BundleScorer` needs only numpy and
onnxruntime. The CUDA provider is used when ONNX Runtime offers it (``providers: auto``),
the CPU otherwise; ``providers: cuda`` refuses to start without it.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from models.bundle import Bundle, BundleScorer, Scores
from models.errors import BundleError


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
        await self.score(*self._zeros())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def _zeros(self) -> tuple[np.ndarray, np.ndarray]:
        spec = self.bundle.meta["inputs"]
        return tuple(
            np.zeros((len(spec[m]["channels"]), spec[m]["samples"]), np.float32)
            for m in ("eeg", "nirs")
        )

    def _run(self, eeg: np.ndarray, nirs: np.ndarray) -> tuple[Scores, float]:
        started = time.perf_counter()
        inputs = {"eeg": eeg[None], "nirs": nirs[None]}
        scores = self.scorer.score(**{m: inputs[m] for m in self.bundle.modalities})
        return scores, 1000 * (time.perf_counter() - started)

    async def score(self, eeg: np.ndarray, nirs: np.ndarray) -> tuple[Scores, float]:
        """Scores of one window ``(channels, samples)`` per modality, and the ms it took."""
        assert self._executor is not None, "use InferenceEngine as an async context manager"
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        scores, _ = await loop.run_in_executor(self._executor, self._run, eeg, nirs)
        return scores, 1000 * (time.perf_counter() - started)
