"""The strong hand-crafted reference: the window features of :mod:`models.features` in a
regularised logistic regression, with everything chosen on the training subjects alone.

- Features are standardised on the training windows.
- Every subject weighs the same in the fit, whatever its number of windows, and both groups
  weigh the same.
- The regularisation ``C`` and the feature set (every feature, or the channel means only) are
  chosen by an inner subject-wise cross-validation on the training subjects, maximising the
  subject-level AUC of the session mean logit; ties go to the fewer features and the
  stronger regularisation. The test folds are never seen.
- Fusion is late: one such model per modality, combined with non-negative weights fitted on
  their out-of-fold session logits (see :meth:`HandcraftedModel.fit`).
- The out-of-fold session mean logits of that inner CV fit the session-level calibration
  (:mod:`models.session_estimate`); their AUC is kept as ``inner_auc``, the model's own
  estimate of how well it separates subjects it did not train on.

The deep fusion model uses the same fit as its feature branch (:mod:`models.training`).
Needs scikit-learn (the ``train`` extra), not torch.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from contract.errors import DatasetError
from models.features import modality_columns
from models.folds import subject_folds
from models.session_estimate import (
    SessionCalibration,
    fit_session_calibration,
    fit_temperature,
    within_session_sd,
)

logger = logging.getLogger(__name__)

C_GRID = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3)
INNER_FOLDS = 4
FALLBACK_C = 0.01
"""``C`` where too few subjects leave no inner CV (fewer than 2 per group)."""


@dataclass
class LabelledWindows:
    """The rows a supervised fit uses: labelled sessions' usable windows."""

    features: np.ndarray
    subject: np.ndarray
    session: np.ndarray
    group: np.ndarray


def subject_weights(subject: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Weights giving every subject, and each group in total, the same weight."""
    w = np.zeros(len(subject))
    for label in (0, 1):
        in_group = group == label
        names = np.unique(subject[in_group])
        for name in names:
            m = subject == name
            w[m] = 1.0 / (m.sum() * len(names))
    return w * len(subject) / max(w.sum(), 1e-12)


def session_means(
    values: np.ndarray, subject: np.ndarray, session: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``(keys, mean)`` of ``values`` per ``subject/session`` in first-seen order."""
    keys = np.char.add(np.char.add(subject.astype(str), "/"), session.astype(str))
    order = list(dict.fromkeys(keys.tolist()))
    return np.array(order), np.array([values[keys == k].mean() for k in order])


def _auc(y: np.ndarray, s: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, s)) if len(set(y.tolist())) == 2 else 0.5


@dataclass
class LinearFit:
    """A standardised logistic regression on feature columns."""

    columns: np.ndarray
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float

    def logits(self, features: np.ndarray) -> np.ndarray:
        """Window logits ``(N,)``."""
        x = (features[:, self.columns] - self.mean) / self.scale
        return x @ self.coef + self.intercept


def fit_linear(data: LabelledWindows, columns: np.ndarray, c: float, seed: int) -> LinearFit:
    """Standardise on ``data`` and fit the subject-weighted logistic regression."""
    from sklearn.linear_model import LogisticRegression

    x = data.features[:, columns].astype(np.float64)
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale < 1e-9] = 1.0
    z = (x - mean) / scale
    lr = LogisticRegression(C=c, max_iter=2000, random_state=seed)
    lr.fit(z, data.group, sample_weight=subject_weights(data.subject, data.group))
    return LinearFit(columns, mean, scale, lr.coef_[0].copy(), float(lr.intercept_[0]))


@dataclass
class HandcraftedModel:
    """Inner-CV-tuned logistic regression on the features of ``modalities``."""

    names: list[str]
    modalities: tuple[str, ...] = ("eeg", "nirs")
    seed: int = 0
    c_grid: tuple[float, ...] = C_GRID
    inner_folds: int = INNER_FOLDS
    fit_: LinearFit | None = None
    c: float | None = None
    inner_auc: float | None = None
    inner_aucs: dict[str, float] = field(default_factory=dict)
    subset: str = "all"
    """``all`` features, or the ``summary`` (channel means) where the inner CV preferred it."""
    calibration: SessionCalibration = field(default_factory=SessionCalibration)
    window_temperature: float = 1.0
    part_weights: dict[str, float] = field(default_factory=dict)
    """Late-fusion weight of each modality's part (fusion only)."""
    part_aucs: dict[str, float | None] = field(default_factory=dict)
    """Inner-CV subject AUC of each modality's part (fusion only)."""

    @property
    def columns(self) -> np.ndarray:
        """The feature columns this model reads."""
        return modality_columns(self.names, self.modalities)

    def fit(self, data: LabelledWindows) -> HandcraftedModel:
        """Fit, choosing everything by inner CV on ``data``'s subjects alone.

        One modality: ``C`` by inner CV, calibration on its out-of-fold sessions, a refit on
        all. Several (fusion): one such model per modality, then **late fusion**: the
        out-of-fold session mean logits of the parts are combined with non-negative weights
        (a logistic regression on them), so a modality with many weak features cannot drown
        a few strong ones, a part that anti-learns in the inner CV gets weight 0, and a
        patient whose illness shows in one modality only still moves the sum. The result is
        one linear model over the union of the parts' columns.
        """
        per_group = [len(np.unique(data.subject[data.group == g])) for g in (0, 1)]
        if min(per_group) < 1:
            raise DatasetError(
                f"the hand-crafted model needs subjects of both groups; it got {per_group[1]} "
                f"MA and {per_group[0]} HC with labelled (pre or none) usable windows.",
                fix="add subjects of the missing group.",
            )
        k = min(self.inner_folds, *per_group)
        if len(self.modalities) > 1 and k >= 2:
            return self._fit_late_fusion(data, k)
        oof = self._fit_single(data, k)
        if oof is not None:
            self._calibrate(data, oof)
        return self

    def _fit_single(self, data: LabelledWindows, k: int) -> np.ndarray | None:
        """One linear model on :attr:`columns`; its out-of-fold window logits (None: no CV)."""
        columns = self.columns
        if k < 2:
            # too few subjects for an inner CV: a documented fallback, reported by inner_auc
            # None (and the training warnings that follow from it)
            logger.warning(
                "only %d MA and %d HC training subjects: no inner CV; C=%g, no calibration",
                len(np.unique(data.subject[data.group == 1])),
                len(np.unique(data.subject[data.group == 0])),
                FALLBACK_C,
            )
            self.c, self.inner_auc = FALLBACK_C, None
            self.fit_ = fit_linear(data, columns, self.c, self.seed)
            return None
        folds = subject_folds(data.subject, data.group, k, self.seed, what="inner folds")
        subsets = {"all": columns}
        summary = np.array([c for c in columns if _is_summary(self.names[c])], int)
        if 0 < len(summary) < len(columns):
            subsets["summary"] = summary
        grid = [(name, c) for name in subsets for c in self.c_grid]
        oof = {key: np.zeros(len(data.group)) for key in grid}
        for fold in folds:
            test = np.isin(data.subject, fold)
            train = _rows(data, ~test)
            for name, c in grid:
                oof[(name, c)][test] = fit_linear(train, subsets[name], c, self.seed).logits(
                    data.features[test]
                )
        _keys, labels = session_means(data.group.astype(float), data.subject, data.session)
        scores = {}
        for key in grid:
            _, means = session_means(oof[key], data.subject, data.session)
            scores[key] = _auc(labels.astype(int), means)
        best = max(scores.values())
        # ties: the fewer features, then the stronger regularisation
        chosen = min(
            (key for key, a in scores.items() if a >= best - 1e-9),
            key=lambda key: (len(subsets[key[0]]), key[1]),
        )
        self.subset, self.c = chosen
        self.inner_aucs = {f"{name}, C={c:g}": a for (name, c), a in scores.items()}
        self.inner_auc = best
        # over every column of the modality (zeros where the subset left one out), so that
        # the model's feature branch always takes the same columns
        fitted = fit_linear(data, subsets[self.subset], self.c, self.seed)
        self.fit_ = _merge(columns, [fitted], np.ones(1), 0.0)
        logger.info(
            "hand-crafted %s: %s features, C=%g, inner subject AUC %.3f",
            "+".join(self.modalities),
            self.subset,
            self.c,
            best,
        )
        return oof[chosen]

    def _calibrate(self, data: LabelledWindows, oof: np.ndarray) -> None:
        _, labels = session_means(data.group.astype(float), data.subject, data.session)
        _, means = session_means(oof, data.subject, data.session)
        self.calibration = fit_session_calibration(
            means, labels, within_session_sd(oof, _session_keys(data))
        )
        self.window_temperature = fit_temperature(oof, data.group)

    def _fit_late_fusion(self, data: LabelledWindows, k: int) -> HandcraftedModel:
        parts, oofs = [], []
        for modality in self.modalities:
            part = HandcraftedModel(
                self.names, (modality,), self.seed, self.c_grid, self.inner_folds
            )
            oofs.append(part._fit_single(data, k))
            parts.append(part)
        _, labels = session_means(data.group.astype(float), data.subject, data.session)
        means = np.stack([session_means(o, data.subject, data.session)[1] for o in oofs], 1)
        weights, bias = _nonnegative_logistic(means, labels)
        oof = np.stack(oofs, axis=1) @ weights + bias
        _, fused_means = session_means(oof, data.subject, data.session)
        self.inner_auc = _auc(labels.astype(int), fused_means)
        self.part_weights = {m: float(w) for m, w in zip(self.modalities, weights, strict=True)}
        self.part_aucs = {m: p.inner_auc for m, p in zip(self.modalities, parts, strict=True)}
        self.c = max(p.c for p in parts if p.c is not None)
        self.fit_ = _merge(self.columns, [p.fit_ for p in parts], weights, bias)
        self._calibrate(data, oof)
        logger.info(
            "hand-crafted %s: late fusion weights %s (part inner AUCs %s), inner AUC %.3f",
            "+".join(self.modalities),
            self.part_weights,
            self.part_aucs,
            self.inner_auc,
        )
        return self

    def logits(self, features: np.ndarray) -> np.ndarray:
        """Window logits."""
        assert self.fit_ is not None, "fit the model first"
        return self.fit_.logits(features)


COMBINER_RIDGE = 1.0
"""Ridge on the late-fusion weights of standardised part logits (chosen on the development
cohorts of benchmarks/generalisation.py: 0.01 let weak parts in; 1 to 10 did equally well)."""


def _nonnegative_logistic(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """Weights >= 0 and a bias of a ridged logistic regression of ``y`` on the columns of
    ``x``, each scaled to unit standard deviation first (the weights are returned for the
    unscaled columns)."""
    from scipy.optimize import minimize

    k = x.shape[1]
    sd = x.std(axis=0)
    sd[sd < 1e-9] = 1.0
    z = x / sd

    def loss(p: np.ndarray) -> float:
        s = z @ p[:k] + p[k]
        return float(np.mean(np.logaddexp(0, s) - y * s) + COMBINER_RIDGE * np.sum(p[:k] ** 2))

    start = np.r_[np.full(k, 1.0 / k), 0.0]
    bounds = [(0.0, 10.0)] * k + [(-20.0, 20.0)]
    result = minimize(loss, start, method="L-BFGS-B", bounds=bounds)
    return result.x[:k] / sd, float(result.x[k])


def _merge(
    columns: np.ndarray, parts: list[LinearFit | None], weights: np.ndarray, bias: float
) -> LinearFit:
    """One linear model equal to ``sum_k weights[k] * part_k + bias`` over ``columns``."""
    where = {int(c): i for i, c in enumerate(columns)}
    mean, scale = np.zeros(len(columns)), np.ones(len(columns))
    coef, intercept = np.zeros(len(columns)), bias
    for part, w in zip(parts, weights, strict=True):
        assert part is not None
        idx = np.array([where[int(c)] for c in part.columns], int)
        mean[idx], scale[idx], coef[idx] = part.mean, part.scale, w * part.coef
        intercept += w * part.intercept
    return LinearFit(np.asarray(columns), mean, scale, coef, float(intercept))


def _is_summary(name: str) -> bool:
    """A channel-mean feature (``eeg:mean:...``, ``nirs:mean_hbo:...``, coupled fraction)."""
    return ":mean" in name or name.endswith("coupled_fraction")


def _session_keys(data: LabelledWindows) -> np.ndarray:
    return np.char.add(np.char.add(data.subject.astype(str), "/"), data.session.astype(str))


def _rows(data: LabelledWindows, mask: np.ndarray) -> LabelledWindows:
    return LabelledWindows(
        data.features[mask], data.subject[mask], data.session[mask], data.group[mask]
    )
