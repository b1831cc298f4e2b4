"""Evaluation on the paper's three claims, with subject-wise cross-validation.

For every fold the fused model, both unimodal models and the hand-crafted reference are
trained on the other subjects only; every usable window of the held-out subjects (all their
sessions) is then scored. A session's score is the mean of its window probabilities.

- ``auc``: subject-level ROC AUC, MA vs HC, on the labelled session (``pre`` or ``none``);
- ``rtms_shift``: per MA subject, post minus pre session score; paired Wilcoxon test;
- ``craving``: Spearman correlation of session score and craving over all held-out sessions
  (and within MA only).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
from scipy import stats

from models.dataset import WindowSet
from models.errors import DatasetError
from models.handcrafted import HandcraftedModel
from models.train_config import TrainConfig
from models.training import LABELED_SESSIONS, predict, select_device, train_model

logger = logging.getLogger(__name__)

DEEP = {"fusion": ("eeg", "nirs"), "eeg": ("eeg",), "nirs": ("nirs",)}
ABLATIONS = {
    "fusion, no stage 1 alignment": {"enabled": False},
    "fusion, no soft targets": {"soft_targets": 0.0},
    "fusion, no masked reconstruction": {"masked_reconstruction": 0.0},
}


def subject_folds(ws: WindowSet, k: int, seed: int) -> list[list[str]]:
    """Stratified subject-wise folds: each group's subjects dealt round-robin after a shuffle."""
    rng = np.random.default_rng(seed)
    folds: list[list[str]] = [[] for _ in range(k)]
    for group in (1, 0):
        subjects = sorted({s for s, g in zip(ws.subject, ws.group, strict=True) if g == group})
        if len(subjects) < k:
            raise DatasetError(
                f"{len(subjects)} {'MA' if group else 'HC'} subject(s) for {k} folds: every fold "
                "needs at least one subject of each group.",
                fix=f"use --cv {max(2, len(subjects))} or fewer, or add subjects.",
            )
        rng.shuffle(subjects)
        for i, subject in enumerate(subjects):
            folds[i % k].append(subject)
    return folds


def _deep_probabilities(
    train: WindowSet, test: WindowSet, cfg: TrainConfig, progress: bool
) -> np.ndarray:
    trained = train_model(train, cfg, progress=progress)
    logits, _ = predict(trained.model, test, select_device("cpu"))
    return 1 / (1 + np.exp(-logits.mean(axis=1) / trained.temperature))


def _handcrafted_probabilities(train: WindowSet, test: WindowSet, cfg: TrainConfig) -> np.ndarray:
    lab = train.take(train.usable & np.isin(train.rtms, LABELED_SESSIONS))
    model = HandcraftedModel(cfg.signal.eeg.target_sfreq, cfg.seed).fit(
        lab.eeg, lab.nirs, lab.in_drug_cue, lab.group
    )
    return model.predict_proba(test.eeg, test.nirs, test.in_drug_cue)


def cross_validate(
    ws: WindowSet,
    cfg: TrainConfig,
    k: int,
    *,
    ablation: bool = False,
    progress: Callable[[str], None] | None = None,
    bars: bool = False,
) -> dict[str, Any]:
    """Train and score every model per fold; return the report dictionary."""
    started = time.perf_counter()
    folds = subject_folds(ws, k, cfg.seed)
    usable = ws.take(ws.usable)
    variants: dict[str, TrainConfig] = {
        name: replace(cfg, modalities=mods) for name, mods in DEEP.items()
    }
    if ablation:
        for name, change in ABLATIONS.items():
            variants[name] = replace(cfg, alignment=replace(cfg.alignment, **change))
    probs = {name: np.full(len(usable), np.nan) for name in [*variants, "handcrafted"]}
    fold_of = np.full(len(usable), -1)
    timing: dict[str, float] = {}
    for f, test_subjects in enumerate(folds):
        test_mask = np.isin(usable.subject, test_subjects)
        fold_of[test_mask] = f
        train, test = ws.take(~np.isin(ws.subject, test_subjects)), usable.take(test_mask)
        for name, variant in variants.items():
            if progress:
                progress(f"fold {f + 1}/{k}: {name}")
            t0 = time.perf_counter()
            probs[name][test_mask] = _deep_probabilities(train, test, variant, bars)
            timing[name] = timing.get(name, 0.0) + time.perf_counter() - t0
        t0 = time.perf_counter()
        probs["handcrafted"][test_mask] = _handcrafted_probabilities(train, test, cfg)
        timing["handcrafted"] = timing.get("handcrafted", 0.0) + time.perf_counter() - t0
    report = summarise(usable, probs)
    report.update(
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
            name: report["by_model"][name]["auc"] for name in ["fusion", *ABLATIONS]
        }
    return report


def session_table(ws: WindowSet, probability: np.ndarray) -> list[dict[str, Any]]:
    """One row per session: subject, session, group, rtms, craving, mean score, windows."""
    rows = []
    keys = list(dict.fromkeys(zip(ws.subject.tolist(), ws.session.tolist(), strict=True)))
    for subject, session in keys:
        m = (ws.subject == subject) & (ws.session == session)
        rows.append(
            {
                "subject": subject,
                "session": session,
                "group": "MA" if ws.group[m][0] else "HC",
                "rtms": str(ws.rtms[m][0]),
                "craving": None if np.isnan(ws.craving[m][0]) else float(ws.craving[m][0]),
                "score": float(np.nanmean(probability[m])),
                "windows": int(m.sum()),
            }
        )
    return rows


def _auc(y: np.ndarray, score: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    if len(set(y.tolist())) < 2:
        return None
    return float(roc_auc_score(y, score))


def model_metrics(ws: WindowSet, probability: np.ndarray) -> dict[str, Any]:
    """AUCs, rTMS shift and craving correlation of one model's window probabilities."""
    rows = session_table(ws, probability)
    labelled = [r for r in rows if r["rtms"] in LABELED_SESSIONS]
    y = np.array([r["group"] == "MA" for r in labelled], int)
    subject_auc = _auc(y, np.array([r["score"] for r in labelled]))
    lab_w = np.isin(ws.rtms, LABELED_SESSIONS)
    window_auc = _auc(ws.group[lab_w], probability[lab_w])
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
    if len(crav) >= 3:
        res = stats.spearmanr(*zip(*crav, strict=True))
        craving.update(spearman_r=float(res.statistic), p=float(res.pvalue))
    if len(crav_ma) >= 3:
        res = stats.spearmanr(*zip(*crav_ma, strict=True))
        craving.update(
            ma_only={"n": len(crav_ma), "spearman_r": float(res.statistic), "p": float(res.pvalue)}
        )
    return {
        "auc": subject_auc,
        "window_auc": window_auc,
        "rtms_shift": shift,
        "craving": craving,
        "sessions": rows,
    }


def summarise(ws: WindowSet, probs: dict[str, np.ndarray]) -> dict[str, Any]:
    """The report's headline fields from every model's held-out window probabilities."""
    by_model = {name: model_metrics(ws, p) for name, p in probs.items()}
    headline = by_model.get("fusion") or next(iter(by_model.values()))
    return {
        "auc": {name: m["auc"] for name, m in by_model.items()},
        "window_auc": {name: m["window_auc"] for name, m in by_model.items()},
        "rtms_shift": {k: headline["rtms_shift"][k] for k in ("n", "mean_delta", "p")},
        "craving": {k: headline["craving"][k] for k in ("spearman_r", "p", "n")},
        "by_model": by_model,
    }
