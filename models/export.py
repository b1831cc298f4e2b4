"""Export a trained model to a bundle: ``model.onnx`` (dynamic batch) + ``bundle.json``.

The export is checked before anything is kept: ONNX Runtime must reproduce torch's logits and
embedding within 1e-4 on real windows. The bundle is written into a temporary folder and
moved into place only when complete, so a failure never leaves a half-written bundle.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
import tempfile
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch

from contract.errors import OutputError
from contract.settings import as_dict
from models.bundle import FORMAT, load_bundle, sha256_of
from models.context import CUE_KINDS
from models.dataset import WindowSet
from models.features import FEATURES_VERSION
from models.io.output import require_new_folder
from models.networks import N_CONTEXT
from models.train_config import TrainConfig
from models.training import TrainedModel, predict

PARITY_ATOL = 1e-4


def code_version() -> str:
    """The installed neuroclip-monitor version (``unknown`` when run from a bare tree)."""
    try:
        return metadata.version("neuroclip-monitor")
    except metadata.PackageNotFoundError:
        return "unknown"


def export_onnx(trained: TrainedModel, path: Path) -> None:
    """Write the model with one input per modality and a dynamic batch axis.

    Uses torch's ``torch.export``-based exporter. Two of its warnings are silenced for this
    call only: torch's internal use of a deprecated pytree helper, and the note that both
    inputs share the batch axis (intended).
    """
    model = trained.model.eval()
    example = tuple(torch.zeros(2, *shape) for shape in input_shapes(trained).values())
    batch = torch.export.Dim("batch", min=1, max=65536)
    registration = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registration.level
    registration.setLevel(logging.ERROR)  # "torchvision is not installed": not needed here
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*treespec, LeafSpec.*")
        # both inputs share the one batch axis, which is what we want
        warnings.filterwarnings("ignore", message=r".*axis name: batch will not be used.*")
        torch.onnx.export(
            model,
            example,
            str(path),
            input_names=list(model.input_names),
            output_names=["logits", "embedding"],
            dynamic_shapes=(tuple({0: batch} for _ in model.input_names),),
            dynamo=True,
            verbose=False,
            external_data=False,
        )
    registration.setLevel(level)


def input_shapes(trained: TrainedModel) -> dict[str, tuple[int, ...]]:
    """Per-window shape of every model input, in the model's input order."""
    nirs = trained.specs.get("nirs")
    shapes = {
        "eeg": (len(trained.specs["eeg"].channels), trained.specs["eeg"].samples)
        if "eeg" in trained.specs
        else None,
        "nirs": (len(nirs.channels), nirs.samples) if nirs else None,
        "context": (N_CONTEXT, nirs.samples) if nirs else None,
        "features": (len(trained.feature_names),),
    }
    return {name: shapes[name] for name in trained.model.input_names}


def parity(trained: TrainedModel, onnx_path: Path, ws: WindowSet, n: int = 64) -> float:
    """Largest absolute difference between torch and ONNX Runtime outputs on ``n`` windows."""
    import onnxruntime as ort

    sample = ws.take(np.arange(min(n, len(ws))))
    ref_logits, ref_embed = predict(trained.model, sample, torch.device("cpu"))
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    arrays = {
        "eeg": sample.eeg,
        "nirs": sample.nirs,
        "context": sample.context,
        "features": np.ascontiguousarray(sample.features[:, trained.feature_columns]),
    }
    logits, embed = session.run(
        ["logits", "embedding"], {m: arrays[m] for m in trained.model.input_names}
    )
    return float(max(np.abs(logits - ref_logits).max(), np.abs(embed - ref_embed).max()))


def write_bundle(
    trained: TrainedModel,
    cfg: TrainConfig,
    out: Path,
    *,
    ws: WindowSet,
    name: str,
    metrics: dict[str, Any],
    extra_training: dict[str, Any] | None = None,
) -> Path:
    """Export, verify and write a bundle into the new folder ``out``."""
    out = require_new_folder(out, "Bundle folder")
    with tempfile.TemporaryDirectory(dir=out.parent if out.parent.exists() else None) as tmp:
        tmp_path = Path(tmp)
        onnx_path = tmp_path / "model.onnx"
        export_onnx(trained, onnx_path)
        diff = parity(trained, onnx_path, ws)
        if diff > PARITY_ATOL:
            raise OutputError(
                f"ONNX export differs from torch by {diff:.2e} (> {PARITY_ATOL}).",
                fix="report this as a bug; the bundle was not written.",
                path=out,
            )
        meta = bundle_metadata(
            trained, cfg, ws, name, metrics, sha256_of(onnx_path), diff, extra_training or {}
        )
        (tmp_path / "bundle.json").write_text(json.dumps(meta, indent=1))
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(tmp_path, out, dirs_exist_ok=True)
        out.chmod(0o755)
    load_bundle(out)  # verifies what was written
    return out


def bundle_metadata(
    trained: TrainedModel,
    cfg: TrainConfig,
    ws: WindowSet,
    name: str,
    metrics: dict[str, Any],
    sha: str,
    parity_diff: float,
    extra_training: dict[str, Any],
) -> dict[str, Any]:
    """Everything DESIGN.md's bundle contract asks for."""
    sig = cfg.signal
    source = {"eeg": sig.eeg.target_sfreq, "nirs": sig.nirs.target_sfreq}
    inputs = {
        m: {
            "name": m,
            "channels": list(spec.channels),
            "samples": spec.samples,
            "sfreq": spec.sfreq,
            "window_s": sig.windows.window_s,
            "scale": 20.0 if m == "eeg" else 1.0,
            "model_rate_from_source": source[m],
        }
        for m, spec in trained.specs.items()
    }
    if "nirs" in inputs and ws.nirs_positions is not None:
        inputs["nirs"]["positions_m"] = np.round(ws.nirs_positions, 6).tolist()
    hc_scores, hc_sessions = _reference_bands(trained, ws)
    return {
        "format": FORMAT,
        "name": name,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "code_version": code_version(),
        "modalities": list(trained.specs),
        "model_inputs": list(trained.model.input_names),
        "inputs": inputs,
        "features": {"version": FEATURES_VERSION, "names": trained.feature_names},
        "context": {"channels": list(CUE_KINDS), "rule": "models.context.CueLog"},
        "preprocessing": as_dict(sig),
        "outputs": {
            "logits": {"shape": ["batch", cfg.n_heads]},
            "embedding": {"shape": ["batch", int(trained.model.heads.in_features)]},
        },
        "n_heads": cfg.n_heads,
        "calibration": {
            "method": "window: temperature scaling; session: Platt scaling of the session "
            "mean logit (models.session_estimate)",
            "temperature": trained.temperature,
            "bias": 0.0,
            "session": trained.session_calibration.as_dict(),
            "independent_fraction": min(1.0, sig.windows.hop_s / sig.windows.window_s),
        },
        "validation": trained.validation,
        "reference": {
            "prototypes": {
                k: v.astype(float).round(6).tolist() for k, v in trained.prototypes.items()
            },
            "hc_score": hc_scores,
            "hc_session": hc_sessions,
        },
        "training": {
            "data_fingerprint": ws.fingerprint,
            "seed": cfg.seed,
            "n_fit_subjects": len(trained.fit_subjects),
            "n_val_subjects": len(trained.val_subjects),
            "config": as_dict(cfg),
            **extra_training,
        },
        "metrics": {**metrics, "onnx_parity_max_abs": parity_diff},
        "model_sha256": sha,
    }


def _percentiles(p: np.ndarray) -> dict[str, float]:
    return {
        "p05": float(np.percentile(p, 5)),
        "median": float(np.median(p)),
        "p95": float(np.percentile(p, 95)),
    }


def _reference_bands(
    trained: TrainedModel, ws: WindowSet
) -> tuple[dict[str, float], dict[str, float]]:
    """Healthy-control references: percentiles of calibrated window scores (the band around
    the window scores) and of session estimates (against which a live estimate is placed
    within, near or outside). The session range comes from the held-out sessions the
    session calibration was fitted on (out of fold, or the validation subjects'), not from
    the model scoring its own training data."""
    hc = ws.take(ws.usable & (ws.group == 0))
    if len(hc) == 0:
        return {}, {}
    logits, _ = predict(trained.model, hc, torch.device("cpu"))
    mean_logit = logits.mean(axis=1)
    windows = _percentiles(1 / (1 + np.exp(-mean_logit / trained.temperature)))
    held_out = trained.session_calibration.hc_sessions
    sessions = dict(zip(("p05", "median", "p95"), held_out, strict=True)) if held_out else {}
    return windows, sessions


__all__ = ["export_onnx", "parity", "write_bundle"]
