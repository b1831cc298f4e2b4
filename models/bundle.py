"""The model bundle: ``model.onnx`` plus ``bundle.json``, and scoring with ONNX Runtime.

This module is the runtime half of the model contract: it needs numpy and onnxruntime, never
torch. :func:`load_bundle` checks the format version, every required field and the sha256 of
``model.onnx``; :meth:`Bundle.check_streams` compares the bundle's input specs with what a
recording or the live streams offer and refuses a mismatch naming the field, the expected
and the found value. :class:`BundleScorer` runs the model (CUDA provider when present) and
turns logits into the calibrated score, its interval and the prototype distances.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.errors import BundleError

FORMAT = "neuroclip.bundle/1"
DEFAULT_BUNDLE = Path(__file__).resolve().parent / "default_bundle"
"""The small default model shipped with the package (trained on the synthetic cohort)."""
REQUIRED = (
    "format",
    "name",
    "modalities",
    "inputs",
    "preprocessing",
    "outputs",
    "n_heads",
    "calibration",
    "reference",
    "training",
    "metrics",
    "code_version",
    "model_sha256",
)


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class Bundle:
    """A loaded, verified bundle."""

    path: Path
    meta: dict[str, Any]

    @property
    def modalities(self) -> tuple[str, ...]:
        """``("eeg", "nirs")``, ``("eeg",)`` or ``("nirs",)``."""
        return tuple(self.meta["modalities"])

    @property
    def onnx_path(self) -> Path:
        """The model file."""
        return self.path / "model.onnx"

    @property
    def sha256(self) -> str:
        """sha256 of ``model.onnx`` as verified on load."""
        return str(self.meta["model_sha256"])

    def check_streams(
        self,
        *,
        eeg_channels: tuple[str, ...] | None = None,
        eeg_sfreq: float | None = None,
        nirs_channels: tuple[str, ...] | None = None,
        nirs_sfreq: float | None = None,
        source: str = "the streams",
    ) -> None:
        """Refuse data that does not fit: a missing modality, other channels, another rate.

        ``nirs_channels`` are model-input names (``S1_D1 hbo``...); EEG may hold extra
        channels (the model picks its own), but none of the model's may be missing.
        """
        offered = {"eeg": eeg_channels, "nirs": nirs_channels}
        rates = {"eeg": eeg_sfreq, "nirs": nirs_sfreq}
        for modality in self.modalities:
            self.check_modality(modality, offered[modality], rates[modality], source)

    def check_modality(
        self,
        modality: str,
        channels: tuple[str, ...] | None,
        sfreq: float | None,
        source: str = "the streams",
    ) -> None:
        """Refuse one modality's data when it is missing, lacks channels or has another rate."""
        if modality not in self.modalities:
            return
        spec = self.meta["inputs"][modality]
        if channels is None:
            raise BundleError(
                f"Bundle {self.path.name} needs {modality.upper()} but {source} offer none.",
                field=f"inputs.{modality}",
                fix=f"connect the {modality.upper()} stream, or use a model trained without it.",
                path=self.path,
            )
        missing = [c for c in spec["channels"] if c not in channels]
        if missing:
            raise BundleError(
                f"Bundle {self.path.name}: field inputs.{modality}.channels expects "
                f"{', '.join(missing[:6])}{'...' if len(missing) > 6 else ''}, which "
                f"{source} does not have (found {', '.join(list(channels)[:6])}...).",
                field=f"inputs.{modality}.channels",
                fix="use the montage the model was trained on, or train a model for this one.",
                path=self.path,
            )
        if sfreq is not None and not _rate_ok(sfreq, spec["sfreq"]):
            raise BundleError(
                f"Bundle {self.path.name}: {modality.upper()} at {sfreq:g} Hz cannot be "
                f"resampled to the model's {spec['sfreq']:g} Hz (field inputs.{modality}.sfreq).",
                field=f"inputs.{modality}.sfreq",
                fix="record at a rate that is a simple multiple of the model rate.",
                path=self.path,
            )


def _rate_ok(source: float, target: float) -> bool:
    from models.errors import ChannelError
    from models.preprocessing.resample import rational_ratio

    try:
        rational_ratio(source, target)
    except ChannelError:
        return False
    return source >= target


def load_bundle(path: str | Path) -> Bundle:
    """Load and verify a bundle folder (format, fields, sha256 of the model)."""
    folder = Path(path)
    meta_path, onnx_path = folder / "bundle.json", folder / "model.onnx"
    for needed in (meta_path, onnx_path):
        if not needed.is_file():
            raise BundleError(
                f"Model bundle {folder} lacks {needed.name}.",
                field=needed.name,
                fix="pass the folder 'neuroclip train' wrote (model.onnx + bundle.json).",
                path=folder,
            )
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise BundleError(
            f"{meta_path} is not valid JSON: {exc}",
            field="bundle.json",
            fix="restore the bundle from its source.",
            path=folder,
        ) from None
    missing = [k for k in REQUIRED if k not in meta]
    if missing:
        raise BundleError(
            f"{meta_path} lacks field(s) {', '.join(missing)}.",
            field=missing[0],
            fix="re-export the bundle with this version of neuroclip.",
            path=folder,
        )
    if meta["format"] != FORMAT:
        raise BundleError(
            f"{meta_path}: field format is {meta['format']!r}, expected {FORMAT!r}.",
            field="format",
            fix="re-export the bundle with this version of neuroclip.",
            path=folder,
        )
    found = sha256_of(onnx_path)
    if found != meta["model_sha256"]:
        raise BundleError(
            f"{onnx_path}: sha256 {found[:16]}... does not match bundle.json's model_sha256 "
            f"{str(meta['model_sha256'])[:16]}...; the model was changed or damaged.",
            field="model_sha256",
            fix="restore the bundle from its source; never edit model.onnx by hand.",
            path=folder,
        )
    return Bundle(folder, meta)


@dataclass(frozen=True)
class Scores:
    """Scores of a batch of windows."""

    probability: np.ndarray
    """Calibrated probability that a window looks MA-like, ``(B,)``."""
    low: np.ndarray
    high: np.ndarray
    """Interval: the lowest and highest calibrated probability of the bootstrap heads."""
    logit: np.ndarray
    distance_hc: np.ndarray
    """Cosine distance of the embedding to the healthy-control prototype, ``(B,)``."""
    distance_ma: np.ndarray
    embedding: np.ndarray


class BundleScorer:
    """Run a bundle with ONNX Runtime; CUDA when available unless ``providers`` says else."""

    def __init__(self, bundle: Bundle, providers: list[str] | None = None, threads: int = 0):
        import onnxruntime as ort

        self.bundle = bundle
        available = ort.get_available_providers()
        if providers is None:
            providers = [
                p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available
            ]
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(bundle.onnx_path), options, providers=providers)
        self.providers = self.session.get_providers()
        cal = bundle.meta["calibration"]
        self.temperature = float(cal["temperature"])
        self.bias = float(cal.get("bias", 0.0))
        protos = bundle.meta["reference"]["prototypes"]
        self.proto_hc = np.asarray(protos["HC"], np.float32)
        self.proto_ma = np.asarray(protos["MA"], np.float32)

    def run(self, **inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Raw ``(logits, embedding)`` for float32 inputs named by modality."""
        feeds = {
            m: np.ascontiguousarray(inputs[m], dtype=np.float32) for m in self.bundle.modalities
        }
        logits, embedding = self.session.run(["logits", "embedding"], feeds)
        return logits, embedding

    def score(self, **inputs: np.ndarray) -> Scores:
        """Calibrated scores for a batch of windows."""
        logits, embedding = self.run(**inputs)
        return self.from_outputs(logits, embedding)

    def from_outputs(self, logits: np.ndarray, embedding: np.ndarray) -> Scores:
        """Turn model outputs into calibrated scores (shared by live and offline paths)."""

        def calibrated(z: np.ndarray) -> np.ndarray:
            return 1.0 / (1.0 + np.exp(-(z / self.temperature + self.bias)))

        heads = calibrated(logits.astype(np.float64))
        mean_logit = logits.mean(axis=1)
        return Scores(
            probability=calibrated(mean_logit),
            low=heads.min(axis=1),
            high=heads.max(axis=1),
            logit=mean_logit,
            distance_hc=1.0 - embedding @ self.proto_hc,
            distance_ma=1.0 - embedding @ self.proto_ma,
            embedding=embedding,
        )
