"""Evaluation on the paper's three claims, with subject-wise cross-validation.

For every fold the fused model, both unimodal models and the hand-crafted references (fusion,
EEG-only and fNIRS-only features) are trained on the other subjects only; every usable
window of the held-out subjects (all their sessions) is then scored. A session's score is its
**session estimate** (:mod:`models.session_estimate`): the mean window logit through the
fold model's session-level calibration, with a 95 % interval.

- ``auc``: subject-level ROC AUC, MA vs HC, on the labelled session (``pre`` or ``none``);
- ``ece``: expected calibration error of the labelled sessions' estimates;
- ``rtms_shift``: per MA subject, post minus pre session estimate; paired Wilcoxon test;
- ``craving``: Spearman correlation of session estimate and craving over all held-out
  sessions (and within MA only);
- ``warnings``: every fold's training warnings (a collapsed or gated-off deep part, no signal
  found), and a model whose held-out session scores are one constant is flagged ``collapsed``.

A figure that rests on too few subjects is flagged in the model's ``few_subjects`` and its
``warnings``: an AUC or ECE with fewer than :data:`MIN_SUBJECTS_PER_GROUP` subjects in either
group, an rTMS shift from fewer than :data:`MIN_RTMS_PAIRS` MA subjects with both sessions, a
craving correlation over fewer than :data:`MIN_CRAVING_SUBJECTS` subjects.

This module imports torch and scikit-learn only inside the functions that train (those of
:func:`cross_validate`); scoring a bundle's outputs (:func:`summarise`) needs numpy and scipy
alone, so ``neuroclip evaluate --model`` runs without the ``train`` extra.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
from scipy import stats

from models.dataset import LABELED_SESSIONS, WindowSet
from models.distributed import SINGLE, DistContext
from models.folds import subject_folds
from models.session_estimate import (
    SessionCalibration,
    estimate,
    expected_calibration_error,
)
from models.train_config import TrainConfig

logger = logging.getLogger(__name__)

DEEP = {"fusion": ("eeg", "nirs"), "eeg": ("eeg",), "nirs": ("nirs",)}
HANDCRAFTED = {
    "handcrafted": ("eeg", "nirs"),
    "handcrafted_eeg": ("eeg",),
    "handcrafted_nirs": ("nirs",),
}
ABLATIONS = {
    "fusion, aligned embedding stacked onto the features": {"deep_in_score": "stack"},
    "fusion, deep heads behind the validation gate": {"deep_in_score": "gate"},
    "fusion, deep heads, no stage 1 alignment": {
        "deep_in_score": "gate",
        "alignment": {"enabled": False},
    },
    "fusion, deep heads, no soft targets or masked reconstruction": {
        "deep_in_score": "gate",
        "alignment": {"soft_targets": 0.0, "masked_reconstruction": 0.0},
    },
}
MIN_SUBJECTS_PER_GROUP = 6
"""Fewer subjects than this in either group make an AUC or ECE too coarse to trust: warned.

With 6 per group the subject AUC moves in steps of 1/36; one subject more or less on the
wrong side shifts it by up to 0.17."""
MIN_RTMS_PAIRS = 6
"""Fewer MA subjects with pre and post sessions than this make the rTMS shift anecdotal:
warned (with 5 pairs a two-sided Wilcoxon signed-rank test cannot reach p < 0.05)."""
MIN_CRAVING_SUBJECTS = 10
"""Fewer subjects with craving ratings than this make a Spearman correlation anecdotal:
warned."""


def _variant(cfg: TrainConfig, change: dict[str, Any]) -> TrainConfig:
    alignment = change.get("alignment")
    rest = {k: v for k, v in change.items() if k != "alignment"}
    if alignment:
        cfg = replace(cfg, alignment=replace(cfg.alignment, **alignment))
    return replace(cfg, **rest)


@np.errstate(over="ignore")
def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def session_estimates(
    ws: WindowSet,
    logits: np.ndarray,
    calibration: SessionCalibration,
    independent_fraction: float,
) -> dict[tuple[str, str], Any]:
    """Session estimate of every session of ``ws`` from its usable windows' logits."""
    out = {}
    keys = list(dict.fromkeys(zip(ws.subject.tolist(), ws.session.tolist(), strict=True)))
    for subject, session in keys:
        m = (ws.subject == subject) & (ws.session == session) & np.isfinite(logits)
        out[(subject, session)] = estimate(logits[m], calibration, independent_fraction)
    return out


def cross_validate(
    ws: WindowSet,
    cfg: TrainConfig,
    k: int,
    *,
    ablation: bool = False,
    progress: Callable[[str], None] | None = None,
    bars: bool = False,
    deep_models: tuple[str, ...] = tuple(DEEP),
    dist: DistContext | None = None,
) -> dict[str, Any]:
    """Train and score every model per fold; return the report dictionary.

    ``deep_models`` limits the deep models trained (benchmarks comparing fusion variants);
    the hand-crafted references always run. With ``dist`` of several processes (each holding
    the same ``ws``), the (fold, model) trainings are dealt out to the ranks in turn, each
    trained as one process would from its seed, and gathered: every rank returns the same
    report (``train_seconds`` sums the ranks' times).
    """
    started = time.perf_counter()
    folds = subject_folds(ws.subject, ws.group, k, cfg.seed)
    usable = ws.take(ws.usable)
    independent = min(1.0, cfg.train_hop_s / cfg.signal.windows.window_s)
    variants: dict[str, TrainConfig] = {
        name: replace(cfg, modalities=mods) for name, mods in DEEP.items() if name in deep_models
    }
    if ablation:
        for name, change in ABLATIONS.items():
            variants[name] = _variant(cfg, change)
    names = [*variants, *HANDCRAFTED]
    logits = {name: np.full(len(usable), np.nan) for name in names}
    temperature = {name: np.ones(len(usable)) for name in names}
    estimates: dict[str, dict] = {name: {} for name in names}
    warnings: dict[str, list[str]] = {name: [] for name in names}
    gates: dict[str, list[bool]] = {name: [] for name in variants}
    timing: dict[str, float] = {}
    splits = []
    for test_subjects in folds:
        test_mask = np.isin(usable.subject, test_subjects)
        splits.append((test_mask, ~np.isin(ws.subject, test_subjects)))
    tasks = [(f, name) for f in range(len(folds)) for name in [*variants, *HANDCRAFTED]]
    ctx = dist if dist is not None else SINGLE
    cost = {
        n: TASK_COST.get(len(variants[n].modalities) if n in variants else 0, 1.0) for n in names
    }
    owner = _deal([cost[name] for _, name in tasks], ctx.world_size)
    mine: dict[tuple[int, str], dict[str, Any]] = {}
    error: BaseException | None = None
    for (f, name), rank in zip(tasks, owner, strict=True):
        # the trainings are shared among the ranks; each is one process's, from its seed
        if rank != ctx.rank or error is not None:
            continue
        test_mask, train_rows = splits[f]
        train, test = ws.take(train_rows), usable.take(test_mask)
        try:
            if name in variants:
                if progress:
                    progress(f"fold {f + 1}/{k}: {name}")
                mine[f, name] = _deep_fold(train, test, variants[name], bars)
            else:
                mine[f, name] = _handcrafted_fold(
                    train, test, replace(cfg, modalities=HANDCRAFTED[name])
                )
        except Exception as exc:  # every rank must hear of it before it is raised
            if not ctx.enabled:
                raise
            error = exc
    ctx.agree(error)
    results = {key: r for part in ctx.gather(mine) for key, r in part.items()}
    for f, name in tasks:  # in the one-process order: warnings and timings alike
        result, (test_mask, _) = results[f, name], splits[f]
        timing[name] = timing.get(name, 0.0) + result["seconds"]
        if name in variants:
            if "failed" in result:
                # one failed model must not sink the others: its sessions get no score
                warnings[name].append(f"fold {f + 1}: training failed: {result['failed']}")
                continue
            gates[name].append(result["gate"])
            warnings[name] += [f"fold {f + 1}: {w}" for w in result["warnings"]]
        elif result["warnings"]:
            warnings[name] += [f"fold {f + 1}: {w}" for w in result["warnings"]]
        temperature[name][test_mask] = result["temperature"]
        logits[name][test_mask] = result["logits"]
        test = usable.take(test_mask)
        estimates[name].update(
            session_estimates(test, result["logits"], result["calibration"], independent)
        )
    probs = {name: _sigmoid(logits[name] / temperature[name]) for name in names}
    report = summarise(usable, probs, estimates, warnings)
    for name, g in gates.items():
        report["by_model"][name]["deep_part_kept_in_folds"] = int(sum(g))
    report.update(
        evaluation="cross-validation",
        folds=[sorted(map(str, fold)) for fold in folds],
        cv=k,
        seed=cfg.seed,
        data_fingerprint=ws.fingerprint,
        n_subjects=len(ws.subjects),
        n_windows=len(usable),
        n_windows_excluded=int((~ws.usable).sum()),
        train_seconds=timing,
        total_seconds=time.perf_counter() - started,
    )
    if ablation:
        report["ablation"] = {
            name: report["by_model"][name]["auc"] for name in ["fusion", *ABLATIONS, "handcrafted"]
        }
    return report


TASK_COST = {2: 4.0, 1: 1.5, 0: 0.25}
"""Rough relative cost of a fold's training by the number of modalities of a deep model (0:
a hand-crafted reference), for dealing them out to ranks (the development cohorts: fusion
trains stage 1 too)."""


def _deal(costs: list[float], world_size: int) -> list[int]:
    """The rank of each task: the costliest first, each to the least loaded rank (lowest on a
    tie); the same on every rank."""
    load = [0.0] * world_size
    owner = [0] * len(costs)
    for i in sorted(range(len(costs)), key=lambda i: -costs[i]):
        rank = min(range(world_size), key=lambda r: (load[r], r))
        owner[i] = rank
        load[rank] += costs[i]
    return owner


def _deep_fold(
    train: WindowSet, test: WindowSet, variant: TrainConfig, bars: bool
) -> dict[str, Any]:
    """One deep model trained on a fold's training subjects and its held-out window logits
    (or why training failed)."""
    from contract.errors import TrainingFailedError
    from models.training import predict, select_device, train_model

    t0 = time.perf_counter()
    try:
        trained = train_model(train, variant, progress=bars)
    except TrainingFailedError as exc:
        return {"failed": exc.message, "seconds": time.perf_counter() - t0}
    raw, _ = predict(trained.model, test, select_device("cpu"))
    return {
        "logits": raw.mean(axis=1),
        "calibration": trained.session_calibration,
        "temperature": trained.temperature,
        "gate": bool(trained.validation["gate"] or trained.validation.get("stacked")),
        "warnings": list(trained.validation["warnings"]),
        "seconds": time.perf_counter() - t0,
    }


def _handcrafted_fold(train: WindowSet, test: WindowSet, cfg: TrainConfig) -> dict[str, Any]:
    """A hand-crafted reference fitted on a fold's training subjects, and its held-out logits."""
    from models.training import fit_feature_model

    t0 = time.perf_counter()
    model = fit_feature_model(train, np.ones(len(train), bool), cfg)
    warnings = []
    if model.inner_auc is not None and model.inner_auc <= 0.6:
        warnings.append(f"inner-CV subject AUC {model.inner_auc:.2f}: no signal found")
    return {
        "logits": model.logits(test.features),
        "calibration": model.calibration,
        "temperature": model.window_temperature,
        "warnings": warnings,
        "seconds": time.perf_counter() - t0,
    }


def session_table(
    ws: WindowSet, probability: np.ndarray, estimates: dict[tuple[str, str], Any] | None = None
) -> list[dict[str, Any]]:
    """One row per session: subject, session, group, rtms, craving, score, interval, windows.

    ``score`` is the session estimate where ``estimates`` are given, else the mean window
    probability.
    """
    rows = []
    keys = list(dict.fromkeys(zip(ws.subject.tolist(), ws.session.tolist(), strict=True)))
    for subject, session in keys:
        m = (ws.subject == subject) & (ws.session == session)
        est = None if estimates is None else estimates.get((subject, session))
        row = {
            "subject": subject,
            "session": session,
            "group": "MA" if ws.group[m][0] else "HC",
            "rtms": str(ws.rtms[m][0]),
            "craving": None if np.isnan(ws.craving[m][0]) else float(ws.craving[m][0]),
            "score": _session_score(probability[m], est),
            "low": None if est is None else est.low,
            "high": None if est is None else est.high,
            "windows": int(m.sum()),
        }
        rows.append(row)
    return rows


def _session_score(probability: np.ndarray, est: Any) -> float:
    if est is not None:
        return est.probability
    finite = probability[np.isfinite(probability)]
    return float(finite.mean()) if finite.size else float("nan")


def _auc(y: np.ndarray, score: np.ndarray) -> float | None:
    """ROC AUC as the Mann-Whitney statistic (ties count half): scikit-learn's value, without
    scikit-learn. None with one class only or a non-finite score."""
    y = np.asarray(y).astype(bool)
    score = np.asarray(score, dtype=float)
    if y.all() or not y.any() or not np.all(np.isfinite(score)):
        return None
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    ranks = stats.rankdata(score)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def roc_points(y: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False and true positive rates of the ROC curve, one point per distinct score (from
    (0, 0) to (1, 1)); both classes must be present."""
    y = np.asarray(y).astype(bool)
    score = np.asarray(score, dtype=float)
    order = np.argsort(-score, kind="mergesort")
    s, hits = score[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tps = np.cumsum(hits)[last]
    fps = last + 1 - tps
    return np.r_[0.0, fps / max(fps[-1], 1)], np.r_[0.0, tps / max(tps[-1], 1)]


def model_metrics(
    ws: WindowSet,
    probability: np.ndarray,
    estimates: dict[tuple[str, str], Any] | None = None,
    warnings: list[str] | None = None,
) -> dict[str, Any]:
    """AUCs, calibration, rTMS shift and craving correlation of one model."""
    rows = session_table(ws, probability, estimates)
    labelled = [r for r in rows if r["rtms"] in LABELED_SESSIONS]
    y = np.array([r["group"] == "MA" for r in labelled], int)
    session_scores = np.array([r["score"] for r in labelled])
    subject_auc = _auc(y, session_scores)
    lab_w = np.isin(ws.rtms, LABELED_SESSIONS)
    window_auc = _auc(ws.group[lab_w], probability[lab_w])
    notes = list(warnings or [])
    scored = session_scores[np.isfinite(session_scores)]
    collapsed = bool(len(scored) < len(session_scores) or np.std(scored) < 1e-3)
    if collapsed:
        notes.append(
            "collapsed: held-out sessions got one constant score (or none): the model, or "
            "its session calibration (slope near 0 where out-of-fold scores ran against the "
            "labels), carries no evidence"
        )
    n_group = {g: len({r["subject"] for r in labelled if r["group"] == g}) for g in ("MA", "HC")}
    few_auc = min(n_group.values()) < MIN_SUBJECTS_PER_GROUP
    if few_auc:
        notes.append(
            f"few subjects: the AUC and ECE rest on {n_group['MA']} MA and {n_group['HC']} HC "
            f"subjects (fewer than {MIN_SUBJECTS_PER_GROUP} per group); the AUC moves in "
            "large steps"
        )
    by_subject: dict[str, dict[str, float]] = {}
    for r in rows:
        if r["group"] == "MA":
            by_subject.setdefault(r["subject"], {})[r["rtms"]] = r["score"]
    pairs = [(v["pre"], v["post"]) for v in by_subject.values() if "pre" in v and "post" in v]
    deltas = np.array([post - pre for pre, post in pairs])
    shift: dict[str, Any] = {
        "n": len(pairs),
        "mean_delta": float(deltas.mean()) if pairs else None,
        "p": None,
        "subjects": {s: v for s, v in by_subject.items()},
    }
    if len(pairs) >= 2 and np.any(deltas != 0):
        shift["p"] = float(stats.wilcoxon(deltas).pvalue)
    crav = [(r["score"], r["craving"]) for r in rows if r["craving"] is not None]
    crav_ma = [
        (r["score"], r["craving"]) for r in rows if r["craving"] is not None and r["group"] == "MA"
    ]
    craving = {"n": len(crav), "spearman_r": None, "p": None}
    if len(crav) >= 3 and not collapsed:
        res = stats.spearmanr(*zip(*crav, strict=True))
        craving.update(spearman_r=float(res.statistic), p=float(res.pvalue))
    if len(crav_ma) >= 3 and not collapsed:
        res = stats.spearmanr(*zip(*crav_ma, strict=True))
        craving.update(
            ma_only={"n": len(crav_ma), "spearman_r": float(res.statistic), "p": float(res.pvalue)}
        )
    craving_subjects = len({r["subject"] for r in rows if r["craving"] is not None})
    few = {
        "auc": few_auc,
        "rtms_shift": len(pairs) < MIN_RTMS_PAIRS,
        "craving": craving_subjects < MIN_CRAVING_SUBJECTS,
    }
    if few["rtms_shift"] and pairs:
        notes.append(
            f"few subjects: the rTMS shift rests on {len(pairs)} MA subjects with pre and post "
            f"sessions (fewer than {MIN_RTMS_PAIRS}; with 5 or fewer pairs a two-sided Wilcoxon "
            "test cannot reach p < 0.05)"
        )
    if few["craving"] and craving["spearman_r"] is not None:
        notes.append(
            f"few subjects: the craving correlation rests on {craving_subjects} subjects "
            f"(fewer than {MIN_CRAVING_SUBJECTS})"
        )
    return {
        "auc": subject_auc,
        "n_subjects": {**n_group, "rtms_pairs": len(pairs), "craving": craving_subjects},
        "few_subjects": few,
        "window_auc": window_auc,
        "ece": expected_calibration_error(session_scores, y) if len(y) else None,
        "rtms_shift": shift,
        "craving": craving,
        "collapsed": collapsed,
        "warnings": notes,
        "sessions": rows,
    }


def summarise(
    ws: WindowSet,
    probs: dict[str, np.ndarray],
    estimates: dict[str, dict] | None = None,
    warnings: dict[str, list[str]] | None = None,
) -> dict[str, Any]:
    """The report's headline fields from every model's held-out window probabilities and
    session estimates."""
    by_model = {
        name: model_metrics(ws, p, (estimates or {}).get(name), (warnings or {}).get(name))
        for name, p in probs.items()
    }
    headline = by_model.get("fusion") or next(iter(by_model.values()))
    return {
        "auc": {name: m["auc"] for name, m in by_model.items()},
        "window_auc": {name: m["window_auc"] for name, m in by_model.items()},
        "ece": {name: m["ece"] for name, m in by_model.items()},
        "rtms_shift": {k: headline["rtms_shift"][k] for k in ("n", "mean_delta", "p")},
        "craving": {k: headline["craving"][k] for k in ("spearman_r", "p", "n")},
        "by_model": by_model,
    }


def _few(total: int | None, per_group: dict[str, int] | None) -> bool:
    """Too few subjects for an AUC: per group where known, else on the total."""
    if per_group:
        return min(per_group.get("MA", 0), per_group.get("HC", 0)) < MIN_SUBJECTS_PER_GROUP
    return total is not None and total < 2 * MIN_SUBJECTS_PER_GROUP


def bundle_summary(meta: dict[str, Any]) -> dict[str, Any]:
    """What a bundle says about itself, for a report: identity, training data and the
    validation figures it records, each with the subjects it rests on, plus ``warnings``
    (failed validation, its own training warnings, and any figure resting on too few
    subjects: fewer than :data:`MIN_SUBJECTS_PER_GROUP` per group, or twice that in all where
    the groups are not recorded)."""
    training = meta.get("training", {})
    validation = meta.get("validation", {})
    recorded = meta.get("metrics", {}).get("validation", {})
    figures: list[dict[str, Any]] = []
    warnings: list[str] = []
    n_fit = training.get("n_fit_subjects")
    inner = recorded.get("inner_cv_subject_auc", validation.get("inner_auc"))
    if inner is not None:
        few = _few(n_fit, None)
        figures.append(
            {
                "figure": "inner-CV subject AUC (out-of-fold, training subjects)",
                "value": inner,
                "subjects": n_fit,
                "few_subjects": few,
            }
        )
        if few:
            warnings.append(
                f"few subjects: the bundle's inner-CV subject AUC {inner:.2f} rests on "
                f"{n_fit} training subjects (fewer than {2 * MIN_SUBJECTS_PER_GROUP})"
            )
    per_group = recorded.get("subjects_per_group")
    n_val = recorded.get("subjects")
    for key, label in (("subject_auc", "subject"), ("window_auc", "window")):
        value = recorded.get(key)
        if value is None:
            continue
        few = _few(n_val, per_group)
        figures.append(
            {
                "figure": f"validation {label} AUC (held-out validation subjects)",
                "value": value,
                "subjects": n_val,
                "few_subjects": few,
            }
        )
        if few:
            groups = (
                f" ({per_group.get('MA', 0)} MA, {per_group.get('HC', 0)} HC)" if per_group else ""
            )
            warnings.append(
                f"few subjects: the bundle's validation {label} AUC {value:.2f} rests on "
                f"{n_val} validation subjects{groups}, fewer than {MIN_SUBJECTS_PER_GROUP} per "
                "group: it says next to nothing about the model"
            )
    if validation.get("passed") is False:
        warnings.append("the bundle failed its own validation")
    warnings += [f"training: {w}" for w in validation.get("warnings", [])]
    site = meta.get("reference", {}).get("site_recalibration")
    if site and _few(site.get("subjects"), site.get("subjects_per_group")):
        warnings.append(
            f"few subjects: the bundle was recalibrated on {site.get('subjects')} site "
            f"subjects (fewer than {MIN_SUBJECTS_PER_GROUP} per group)"
        )
    return {
        "name": meta.get("name"),
        "sha256": meta.get("model_sha256"),
        "code_version": meta.get("code_version"),
        "created": meta.get("created"),
        "modalities": meta.get("modalities"),
        "training_data_fingerprint": training.get("data_fingerprint"),
        "training_seed": training.get("seed"),
        "n_fit_subjects": n_fit,
        "n_val_subjects": training.get("n_val_subjects"),
        "validation_passed": validation.get("passed"),
        "site_recalibration": site,
        "figures": figures,
        "warnings": warnings,
    }
