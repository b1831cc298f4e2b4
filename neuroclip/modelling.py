"""``neuroclip train``, ``evaluate`` and ``calibrate``: the offline model commands.

torch is imported only by ``train`` and cross-validated ``evaluate``; evaluating or
recalibrating an existing bundle runs on ONNX Runtime alone.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from contract.errors import BundleError, NeuroclipError
from models.io.output import require_new_folder

logger = logging.getLogger(__name__)


INSTALL_TRAIN = "bash scripts/setup.sh train (or pip install -e '.[train]' in the repository)"
"""How to install the ``train`` extra (torch==2.13.0, CPU build, with scikit-learn and onnx)."""
TRAIN_MODULES = {"torch": "torch", "sklearn": "scikit-learn", "onnx": "onnx"}
"""Modules of the ``train`` extra that training imports, by import name: package name."""


class MissingExtraError(NeuroclipError):
    """The ``train`` extra (torch) is not installed: a one-line refusal with the fix."""

    def __init__(self, message: str, *, fix: str):
        super().__init__(message, fix=fix)
        self.args = (f"{message} Fix: {fix}",)  # one line on the terminal


def _installed(module: str) -> bool:
    """Whether ``module`` can be imported, without importing it."""
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def require_train_extra(what: str, modules: tuple[str, ...] = ("torch", "sklearn")) -> None:
    """Refuse ``what`` in one line, with the install command, when a module of the
    ``train`` extra is missing.

    Raises
    ------
    MissingExtraError
        ``modules`` are not all importable.
    """
    missing = [TRAIN_MODULES.get(m, m) for m in modules if not _installed(m)]
    if missing:
        raise MissingExtraError(
            f"{what} needs the train extra, and {', '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not installed (evaluate --model, "
            "calibrate and the live path run without it).",
            fix=INSTALL_TRAIN,
        )


def _progress(desc: str, show: bool = True):
    from tqdm import tqdm

    bar = tqdm(desc=desc, unit="step", disable=None if show else True)

    def update(label: str) -> None:
        bar.set_postfix_str(label)
        bar.update(1)

    return bar, update


def train_config(args: Any):
    """TrainConfig from --config plus the command line's explicit flags."""
    from contract.settings import load_config
    from models.train_config import TrainConfig

    overrides: dict[str, Any] = {
        "device": getattr(args, "device", None),
        "seed": getattr(args, "seed", None),
    }
    if getattr(args, "modalities", None):
        overrides["modalities"] = [m.strip() for m in args.modalities.split(",") if m.strip()]
    return load_config(TrainConfig, args.config, name="train", overrides=overrides)


def _launched(args: Any, cfg: Any):
    """The process group when torchrun started this command (see :mod:`models.distributed`);
    rank 0 says so in one line."""
    from models.distributed import launched

    return launched(cfg.device, getattr(args, "dist_timeout", None))


def _load_windows_on_ranks(ctx: Any, args: Any, cfg: Any, desc: str = "reading sessions"):
    """Every rank's windows; with a cache, rank 0 fills it before the others read it."""
    from models.dataset import load_windows

    def load():
        bar, update = _progress(desc, show=ctx.is_main)
        try:
            return load_windows(
                args.data, cfg.signal, hop_s=cfg.train_hop_s, cache_dir=args.cache, progress=update
            )
        finally:
            bar.close()

    if not ctx.enabled or args.cache is None:
        return load()
    ws = ctx.run_on_main(load)
    return ws if ctx.is_main else load()


def run_train(args: Any) -> int:
    """Train one model on a BIDS dataset and write its bundle.

    Under torchrun (``WORLD_SIZE`` above 1) the ranks train data-parallel and rank 0 alone
    writes the bundle and prints; every rank ends with the same status.
    """
    require_train_extra("training", ("torch", "sklearn", "onnx"))
    cfg = train_config(args)
    with _launched(args, cfg) as ctx:
        if ctx.enabled and ctx.is_main:
            print(ctx.describe(), flush=True)
        return _train(args, cfg, ctx)


def _train(args: Any, cfg: Any, ctx: Any) -> int:
    from dataclasses import replace

    from models.dataset import signal_of
    from models.evaluation import bundle_summary, model_metrics
    from models.export import write_bundle
    from models.training import predict, select_device, train_model

    ctx.run_on_main(lambda: require_new_folder(args.out, "Output folder"))
    ws = _load_windows_on_ranks(ctx, args, cfg)
    cfg = replace(cfg, signal=signal_of(ws, cfg.signal))  # the cue rule learnt from the data
    trained = train_model(ws, cfg, progress=ctx.is_main, dist=ctx)
    v = trained.validation
    held_out = bool(v["gate"])  # otherwise the final fit has seen the validation subjects
    metrics: dict[str, Any] = {
        "validation": {
            "inner_cv_subject_auc": v.get("inner_auc"),
            "note": "inner-CV subject AUC: out-of-fold over the training subjects",
        }
    }
    if held_out:
        val = ws.take(ws.usable & np.isin(ws.subject, trained.val_subjects))
        logits, _ = predict(trained.model, val, select_device("cpu"))
        prob = 1 / (1 + np.exp(-logits.mean(axis=1) / trained.temperature))
        val_metrics = model_metrics(val, prob)
        per_group = {g: int(val_metrics["n_subjects"][g]) for g in ("MA", "HC")}
        metrics["validation"].update(
            subjects=len(trained.val_subjects),
            subjects_per_group=per_group,
            window_auc=val_metrics["window_auc"],
            subject_auc=val_metrics["auc"],
        )
    name = args.name or f"neuroclip-{'-'.join(cfg.modalities)}"
    extra: dict[str, Any] = {"data": str(args.data)}
    if ctx.enabled:
        extra["distributed"] = ctx.record()
    ctx.run_on_main(
        lambda: write_bundle(
            trained, cfg, args.out, ws=ws, name=name, metrics=metrics, extra_training=extra
        )
    )
    if not ctx.is_main:
        return 0
    form = "deep part kept" if v["gate"] else "feature branch"
    if v.get("stacked"):
        form = "feature branch with the aligned embedding stacked"
    print(
        f"wrote bundle {args.out} ({name}; {form}; inner-CV subject AUC "
        f"{_fmt(v.get('inner_auc'))}"
        + (
            f"; validation subject AUC {_fmt(metrics['validation']['subject_auc'])} on "
            f"{len(trained.val_subjects)} held-out subjects)"
            if held_out
            else ")"
        )
    )
    for warning in v["warnings"]:
        print(f"warning: {warning}")
    for warning in bundle_summary({"metrics": metrics})["warnings"]:
        print(f"warning: {warning}")
    if not v["passed"]:
        print("warning: this bundle failed validation; it cannot become the default bundle")
    return 0


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def run_evaluate(args: Any) -> int:
    """Cross-validate every model, or evaluate one bundle; write report.json and report.html.

    With ``--model`` only ONNX Runtime, numpy and scipy are needed (and matplotlib for the
    report's figures); cross-validation trains models and refuses in one line without torch.
    """
    import datetime as dt
    import time

    started, t0 = dt.datetime.now(dt.UTC), time.perf_counter()
    if args.model is not None:
        if getattr(args, "ablation", False):
            raise NeuroclipError(
                "--ablation trains fusion variants in cross-validation; it does not apply to "
                "one bundle (--model).",
                fix="use --cv K --ablation, or drop --ablation.",
            )
        report = _evaluate_bundle(args)
    else:
        require_train_extra("cross-validation (evaluate --cv trains the models)")
        cfg = train_config(args)
        with _launched(args, cfg) as ctx:
            if ctx.enabled and ctx.is_main:
                print(ctx.describe(), flush=True)
            report = _cross_validate(args, cfg, ctx)
            ctx.run_on_main(lambda: _write_report(args, report, started, t0))
        return 0
    _write_report(args, report, started, t0)
    return 0


def _write_report(args: Any, report: dict[str, Any], started: Any, t0: float) -> None:
    """report.json and report.html in ``args.out``, and the headline on the terminal."""
    import time

    from models.report import render_html

    out: Path = args.out
    report["run"] = run_info(args, report, started, time.perf_counter() - t0)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=1, default=_json_default))
    (out / "report.html").write_text(render_html(report), encoding="utf-8")
    auc = report["auc"]
    print("subject-level AUC: " + ", ".join(f"{k} {_fmt(v)}" for k, v in auc.items()))
    shift, craving = report["rtms_shift"], report["craving"]
    print(
        f"rTMS shift: n={shift['n']} mean delta {_fmt(shift['mean_delta'])} p={_fmt(shift['p'])}; "
        f"craving Spearman r={_fmt(craving['spearman_r'])} p={_fmt(craving['p'])}"
    )
    print(f"wrote {out / 'report.json'} and {out / 'report.html'}")


def _cross_validate(args: Any, cfg: Any, ctx: Any) -> dict[str, Any]:
    """The cross-validation report; under torchrun the (fold, model) trainings are shared
    among the ranks, and rank 0 writes the report (the others return after it)."""
    from models.evaluation import cross_validate

    ws = _load_windows_on_ranks(ctx, args, cfg)
    bar, update = _progress("cross-validation", show=ctx.is_main)
    try:
        report = cross_validate(ws, cfg, args.cv, ablation=args.ablation, progress=update, dist=ctx)
    finally:
        bar.close()
    if ctx.enabled:
        report["distributed"] = ctx.record()
    return report


def package_versions() -> dict[str, str]:
    """Versions of the packages an evaluation rests on; torch only where this run used it."""
    import sys
    from importlib import metadata

    from neuroclip import __version__

    versions = {"neuroclip": __version__}
    for name in ("numpy", "scipy", "onnxruntime", "mne", "scikit-learn", "matplotlib"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    torch = sys.modules.get("torch")
    if torch is not None:
        versions["torch"] = str(getattr(torch, "__version__", "unknown"))
    return versions


def run_info(args: Any, report: dict[str, Any], started: Any, seconds: float) -> dict[str, Any]:
    """The report's "Run" record: how, on what and when it was made, with which packages.

    ``started`` is the UTC start (a ``datetime``); ``seconds`` the wall time it took.
    """
    import datetime as dt

    bundle = report.get("bundle") or {}
    info: dict[str, Any] = {
        "evaluation": report.get("evaluation"),
        "cv": report.get("cv"),
        "seed": report.get("seed"),
        "data": str(args.data),
        "data_fingerprint": report.get("data_fingerprint"),
        "n_subjects": report.get("n_subjects"),
        "n_windows": report.get("n_windows"),
        "n_windows_excluded": report.get("n_windows_excluded"),
        "started": started.isoformat(timespec="seconds"),
        "finished": (started + dt.timedelta(seconds=seconds)).isoformat(timespec="seconds"),
        "duration_s": round(seconds, 1),
        "versions": package_versions(),
    }
    if args.model is not None:
        info["model"] = {
            "name": bundle.get("name"),
            "path": str(args.model),
            "sha256": bundle.get("sha256"),
            "code_version": bundle.get("code_version"),
            "created": bundle.get("created"),
            "training_data_fingerprint": bundle.get("training_data_fingerprint"),
        }
    return info


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _bundle_windows(bundle, data: Path, cache: Path | None, require_both_groups: bool):
    from models.dataset import load_windows

    params = bundle.signal_params
    hop = float(bundle.meta["training"]["config"].get("train_hop_s", params.windows.hop_s))
    ws = load_windows(
        data, params, hop_s=hop, cache_dir=cache, require_both_groups=require_both_groups
    )
    bundle.check_streams(
        eeg_channels=ws.eeg_channels, nirs_channels=ws.nirs_channels, source=str(data)
    )
    return ws


def _score_windows(scorer, ws) -> tuple[np.ndarray, np.ndarray]:
    """Raw model outputs for every window, in batches of 256."""
    logits, embeds = [], []
    for start in range(0, len(ws), 256):
        part = ws.take(np.arange(start, min(len(ws), start + 256)))
        lg, em = scorer.run(**windowset_feeds(scorer, part))
        logits.append(lg)
        embeds.append(em)
    return np.concatenate(logits), np.concatenate(embeds)


def windowset_feeds(scorer, ws) -> dict[str, np.ndarray]:
    """A bundle's model inputs for the windows of a :class:`models.dataset.WindowSet`."""
    return scorer.array_feeds(
        eeg=ws.eeg,
        nirs=ws.nirs,
        context=ws.context,
        features=ws.features,
        feature_names=ws.feature_names,
    )


def _evaluate_bundle(args: Any) -> dict[str, Any]:
    from models.bundle import BundleScorer, load_bundle
    from models.evaluation import bundle_summary, session_estimates, summarise
    from models.session_estimate import SessionCalibration

    bundle = load_bundle(args.model)
    ws = _bundle_windows(bundle, args.data, args.cache, require_both_groups=True)
    usable = ws.take(ws.usable)
    scorer = BundleScorer(bundle)
    logits, embeds = _score_windows(scorer, usable)
    scores = scorer.from_outputs(logits, embeds)
    cal = bundle.meta["calibration"]
    hop = float(bundle.meta["training"]["config"].get("train_hop_s", 5.0))
    independent = min(1.0, hop / float(bundle.meta["inputs"][bundle.modalities[0]]["window_s"]))
    estimates = session_estimates(
        usable, logits.mean(axis=1), SessionCalibration(**cal["session"]), independent
    )
    name = bundle.meta["name"]
    report = summarise(usable, {name: scores.probability}, {name: estimates})
    overlap = bundle.meta["training"].get("data_fingerprint") == ws.fingerprint
    summary = bundle_summary(bundle.meta)
    summary["sha256"] = bundle.sha256
    report.update(
        evaluation="bundle",
        cv=None,  # one bundle scored on the whole dataset: no folds
        seed=bundle.meta["training"].get("seed"),  # the bundle's; scoring draws no numbers
        model=str(args.model),
        model_name=name,
        model_sha256=bundle.sha256,
        bundle=summary,
        data_fingerprint=ws.fingerprint,
        n_subjects=len(ws.subjects),
        n_windows=len(usable),
        n_windows_excluded=int((~ws.usable).sum()),
        warning=(
            "this is the bundle's own training data: not a held-out estimate" if overlap else None
        ),
    )
    site = bundle.meta.get("reference", {}).get("site_recalibration") or {}
    if not overlap and site.get("data_fingerprint") == ws.fingerprint:
        report["warning"] = (
            "the bundle was recalibrated on this dataset (neuroclip calibrate): its calibration "
            "has seen these subjects' labels, so the ECE and scores are not held-out estimates"
        )
    return report


def run_calibrate(args: Any) -> int:
    """Recalibrate a bundle on a site's labelled recordings, without retraining."""
    from models.bundle import BundleScorer, load_bundle
    from models.dataset import LABELED_SESSIONS
    from models.evaluation import MIN_SUBJECTS_PER_GROUP

    bundle = load_bundle(args.model)
    require_new_folder(args.out, "Output folder")
    ws = _bundle_windows(bundle, args.data, args.cache, require_both_groups=False)
    site = ws.take(ws.usable & np.isin(ws.rtms, LABELED_SESSIONS))
    if len(site) == 0:
        raise BundleError(
            f"{args.data} holds no usable labelled windows (sessions pre or none).",
            fix="add pre-treatment or control sessions.",
            path=args.data,
        )
    logits, embeds = _score_windows(BundleScorer(bundle), site)
    meta = json.loads(json.dumps(bundle.meta))
    protos = meta["reference"]["prototypes"]
    note: dict[str, Any] = {
        "data_fingerprint": ws.fingerprint,
        "windows": len(site),
        "subjects": len(site.subjects),
        "subjects_per_group": {
            g: len(set(site.subject[site.group == label].tolist()))
            for g, label in (("MA", 1), ("HC", 0))
        },
    }
    for name, label in (("HC", 0), ("MA", 1)):
        chosen = embeds[site.group == label]
        if len(chosen):
            mean = chosen.mean(axis=0)
            protos[name] = (mean / max(np.linalg.norm(mean), 1e-12)).round(6).tolist()
    groups = set(site.group.tolist())
    if groups == {0, 1}:
        from models.handcrafted import session_means
        from models.session_estimate import fit_session_calibration, within_session_sd

        mean_logits = logits.mean(axis=1)
        temperature, bias = _fit_platt(mean_logits, site.group.astype(float))
        _, means = session_means(mean_logits, site.subject, site.session)
        _, labels = session_means(site.group.astype(float), site.subject, site.session)
        keys = np.char.add(np.char.add(site.subject.astype(str), "/"), site.session.astype(str))
        session_cal = fit_session_calibration(means, labels, within_session_sd(mean_logits, keys))
        meta["calibration"].update(
            temperature=temperature,
            bias=bias,
            session=session_cal.as_dict(),
            method="site recalibration (window temperature and bias; session Platt scaling)",
        )
        # the healthy-control range of session estimates follows the new calibration (on
        # the site's own sessions: the only ones there are)
        held_out = session_cal.hc_sessions
        meta["reference"]["hc_session"] = (
            dict(zip(("p05", "median", "p95"), held_out, strict=True)) if held_out else {}
        )
        note["calibration"] = (
            "window temperature and bias, and the session calibration, refitted on the "
            "site's windows"
        )
    else:
        only = "MA" if 1 in groups else "HC"
        note["calibration"] = (
            f"kept: the site data has only {only}; only the {only} prototype was updated"
        )
        logger.warning("calibration kept: only %s windows in %s", only, args.data)
    meta["reference"]["site_recalibration"] = note
    args.out.mkdir(parents=True, exist_ok=True)
    shutil.copy2(bundle.onnx_path, args.out / "model.onnx")
    (args.out / "bundle.json").write_text(json.dumps(meta, indent=1))
    load_bundle(args.out)
    print(
        f"wrote {args.out}: {note['calibration']} ({note['windows']} windows, "
        f"{note['subjects']} subjects)"
    )
    per_group = note["subjects_per_group"]
    if min(per_group.values()) < MIN_SUBJECTS_PER_GROUP:
        print(
            f"warning: few subjects: recalibrated on {per_group['MA']} MA and "
            f"{per_group['HC']} HC subjects (fewer than {MIN_SUBJECTS_PER_GROUP} per group): "
            "the site calibration may move a lot with one subject more or less"
        )
    return 0


def _fit_platt(mean_logits: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    from scipy.optimize import minimize

    def nll(params: np.ndarray) -> float:
        z = mean_logits / math.exp(params[0]) + params[1]
        return float(np.mean(np.logaddexp(0, z) - y * z))

    result = minimize(nll, x0=np.zeros(2), method="Nelder-Mead")
    return float(math.exp(result.x[0])), float(result.x[1])
