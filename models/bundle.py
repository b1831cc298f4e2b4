"""The model bundle: ``model.onnx`` plus ``bundle.json``, and scoring with ONNX Runtime.

This module is the runtime half of the model contract: it needs numpy and onnxruntime, never
torch. :func:`load_bundle` checks the format version, every required field and the sha256 of
``model.onnx``; :meth:`Bundle.check_streams` compares the bundle's input specs with what a
recording or the live streams offer and refuses a mismatch naming the field, the expected
and the found value. :class:`BundleScorer` runs the model (CUDA provider when present) and
turns logits into the calibrated score, its interval and the prototype distances.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from contract.errors import BundleError
from models.montage import match_eeg

if TYPE_CHECKING:
    from models.windows import SignalParams

FORMAT = "neuroclip.bundle/2"
"""Version 2: the model also takes the cue regressors (``context``) and the hand-crafted
``features``, and the bundle holds its session calibration and validation figures."""
DEFAULT_BUNDLE = Path(__file__).resolve().parent / "default_bundle"
"""The small default model shipped with the package (trained on the synthetic cohort)."""
REQUIRED = (
    "format",
    "name",
    "modalities",
    "model_inputs",
    "inputs",
    "features",
    "context",
    "validation",
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

    @property
    def signal_params(self) -> SignalParams:
        """The preprocessing and window parameters, parsed from the metadata once."""
        cached = self.__dict__.get("_signal_params")
        if cached is None:
            from contract.settings import from_mapping
            from models.windows import SignalParams

            cached = from_mapping(
                SignalParams,
                self.meta["preprocessing"],
                name="bundle",
                source=str(self.path / "bundle.json"),
            )
            object.__setattr__(self, "_signal_params", cached)
        return cached

    @property
    def eeg_channels(self) -> tuple[str, ...]:
        """The model's EEG channels, in input order."""
        return tuple(self.meta["inputs"]["eeg"]["channels"])

    @property
    def nirs_pairs(self) -> tuple[str, ...]:
        """The model's fNIRS pairs (``S1_D1``...), in input order."""
        names = self.meta["inputs"]["nirs"]["channels"]
        return tuple(dict.fromkeys(n.split(" ")[0] for n in names))

    @property
    def nirs_midpoints(self) -> np.ndarray | None:
        """``(n_pairs, 3)`` midpoint of each model pair in metres (head coordinates of the
        training montage), ``None`` when the bundle does not store them."""
        positions = self.meta["inputs"].get("nirs", {}).get("positions_m")
        return None if positions is None else np.asarray(positions, float).reshape(-1, 3)

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
        if modality == "eeg":  # any superset, case and 10-20/10-10 aliases (models.montage)
            found = match_eeg(spec["channels"], channels)
            missing = [c for c, i in zip(spec["channels"], found, strict=True) if i is None]
        else:
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
        if sfreq is not None and (problem := _rate_problem(sfreq, spec["sfreq"])):
            raise BundleError(
                f"Bundle {self.path.name}: {modality.upper()} at {sfreq:g} Hz cannot feed the "
                f"model's {spec['sfreq']:g} Hz (field inputs.{modality}.sfreq): {problem}",
                field=f"inputs.{modality}.sfreq",
                fix=f"stream {modality.upper()} at {spec['sfreq']:g} Hz or faster, with its "
                "full nominal rate in the stream or file header.",
                path=self.path,
            )


def _rate_problem(source: float, target: float) -> str | None:
    """Why ``source`` Hz cannot be resampled to ``target`` Hz, or ``None`` when it can."""
    from contract.errors import ChannelError
    from models.preprocessing.resample import rational_ratio

    if not source >= target:
        return "the model never upsamples (it would invent the missing band)."
    try:
        rational_ratio(source, target)
    except ChannelError as exc:
        return exc.message
    return None


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
    if meta.get("format") != FORMAT:
        raise BundleError(
            f"{meta_path}: field format is {meta.get('format')!r}, expected {FORMAT!r} (this "
            "version's models also take the cue context and hand-crafted features).",
            field="format",
            fix="retrain the model with this version of neuroclip (neuroclip train).",
            path=folder,
        )
    missing = [k for k in REQUIRED if k not in meta]
    if missing:
        raise BundleError(
            f"{meta_path} lacks field(s) {', '.join(missing)}.",
            field=missing[0],
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
    from models.features import FEATURES_VERSION

    if meta["features"].get("version") != FEATURES_VERSION:
        raise BundleError(
            f"{meta_path}: features.version is {meta['features'].get('version')!r}; this "
            f"version of neuroclip computes window features version {FEATURES_VERSION}.",
            field="features.version",
            fix="retrain the model with this version of neuroclip (neuroclip train).",
            path=folder,
        )
    if folder.resolve() == DEFAULT_BUNDLE and not meta["validation"].get("passed", False):
        raise BundleError(
            f"The default bundle {folder} failed its own validation "
            f"({'; '.join(meta['validation'].get('warnings', [])) or 'no figures'}).",
            field="validation.passed",
            fix="retrain the default bundle (models/default_bundle/README.md) or pass --model.",
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
    """Interval: the lowest and highest calibrated probability of the bootstrap heads, or,
    when every head agrees (the model is its feature branch alone), the 95 % band of one
    window's score within a session (``calibration.session.window_sd``)."""
    logit: np.ndarray
    distance_hc: np.ndarray
    """Cosine distance of the embedding to the healthy-control prototype, ``(B,)``."""
    distance_ma: np.ndarray
    embedding: np.ndarray

    def row(self, i: int) -> Scores:
        """The scores of window ``i`` alone, as a batch of one."""
        return Scores(*(getattr(self, f.name)[i : i + 1] for f in dataclasses.fields(self)))


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
        self._feature_index: dict[tuple[str, ...], np.ndarray] = {}
        self.window_sd = float(cal.get("session", {}).get("window_sd", 0.0))

    def pick_features(self, features: np.ndarray, names: list[str]) -> np.ndarray:
        """The bundle's feature columns out of ``features`` ``(B, len(names))``."""
        key = tuple(names)
        if features.ndim != 2 or features.shape[1] != len(names):
            raise BundleError(
                f"{features.shape} window features came with {len(names)} names; each "
                "column needs its name.",
                field="features.names",
                fix="report this as a bug: the window's channels and its features disagree.",
                path=self.bundle.path,
            )
        if key not in self._feature_index:
            where = {n: i for i, n in enumerate(names)}
            wanted = self.bundle.meta["features"]["names"]
            missing = [n for n in wanted if n not in where]
            if missing:
                raise BundleError(
                    f"Bundle {self.bundle.path.name} needs feature(s) "
                    f"{', '.join(missing[:4])} that these windows do not have.",
                    field="features.names",
                    fix="score data with the channels the model was trained on.",
                    path=self.bundle.path,
                )
            self._feature_index[key] = np.array([where[n] for n in wanted], int)
        return features[:, self._feature_index[key]]

    def window_feeds(self, windows: list, feature_names: list[str]) -> dict[str, np.ndarray]:
        """The model's inputs for a batch of :class:`models.windows.Window` whose feature
        columns are named ``feature_names``."""
        stack = {
            "eeg": lambda: np.stack([w.eeg for w in windows]),
            "nirs": lambda: np.stack([w.nirs for w in windows]),
            "context": lambda: np.stack([w.context for w in windows]),
            "features": lambda: self.pick_features(
                np.stack([w.features for w in windows]), feature_names
            ),
        }
        return {name: stack[name]() for name in self.bundle.meta["model_inputs"]}

    def array_feeds(
        self,
        *,
        eeg: np.ndarray,
        nirs: np.ndarray,
        context: np.ndarray,
        features: np.ndarray,
        feature_names: list[str],
    ) -> dict[str, np.ndarray]:
        """The model's inputs from batched arrays (a :class:`models.dataset.WindowSet`'s)."""
        arrays = {
            "eeg": eeg,
            "nirs": nirs,
            "context": context,
            "features": self.pick_features(features, feature_names),
        }
        return {name: arrays[name] for name in self.bundle.meta["model_inputs"]}

    def zero_feeds(self) -> dict[str, np.ndarray]:
        """One window of zeros per input (a warm-up run)."""
        spec = self.bundle.meta["inputs"]
        shapes = {
            "eeg": lambda: (len(spec["eeg"]["channels"]), spec["eeg"]["samples"]),
            "nirs": lambda: (len(spec["nirs"]["channels"]), spec["nirs"]["samples"]),
            "context": lambda: (
                len(self.bundle.meta["context"]["channels"]),
                spec["nirs"]["samples"],
            ),
            "features": lambda: (len(self.bundle.meta["features"]["names"]),),
        }
        return {
            n: np.zeros((1, *shapes[n]()), np.float32) for n in self.bundle.meta["model_inputs"]
        }

    def run(self, **inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Raw ``(logits, embedding)`` for float32 inputs named as the model's inputs
        (``eeg``, ``nirs``, ``context``, ``features``: the bundle's own feature columns)."""
        feeds = {
            name: np.ascontiguousarray(inputs[name], dtype=np.float32)
            for name in self.bundle.meta["model_inputs"]
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
        low, high = heads.min(axis=1), heads.max(axis=1)
        if np.all(logits.max(axis=1) - logits.min(axis=1) < 1e-9):
            # one voice (the feature branch alone): the band one window's logit moves in
            # within a session, 95 %, instead of a zero-width interval
            half = 1.959964 * self.window_sd
            low, high = calibrated(mean_logit - half), calibrated(mean_logit + half)
        return Scores(
            probability=calibrated(mean_logit),
            low=low,
            high=high,
            logit=mean_logit,
            distance_hc=1.0 - embedding @ self.proto_hc,
            distance_ma=1.0 - embedding @ self.proto_ma,
            embedding=embedding,
        )
