"""The strong hand-crafted reference: the window features of :mod:`models.features` in a
regularised logistic regression, with everything chosen on the training subjects alone.

- Features are standardised on the training windows.
- Every subject weighs the same in the fit, whatever its number of windows, and both groups
  weigh the same.
- The regularisation ``C`` is chosen by an inner subject-wise cross-validation on the
  training subjects, maximising the subject-level AUC of the session mean logit; ties go to
  the stronger regularisation. The test folds are never seen.
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

from models.errors import DatasetError
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
    inner_aucs: dict[float, float] = field(default_factory=dict)
    calibration: SessionCalibration = field(default_factory=SessionCalibration)
    window_temperature: float = 1.0

    @property
    def columns(self) -> np.ndarray:
        """The feature columns this model reads."""
        return modality_columns(self.names, self.modalities)

    def fit(self, data: LabelledWindows) -> HandcraftedModel:
        """Choose ``C`` by inner CV, calibrate on its out-of-fold sessions, refit on all."""
        columns = self.columns
        per_group = [len(np.unique(data.subject[data.group == g])) for g in (0, 1)]
        if min(per_group) < 1:
            raise DatasetError(
                f"the hand-crafted model needs subjects of both groups; it got {per_group[1]} "
                f"MA and {per_group[0]} HC with labelled (pre or none) usable windows.",
                fix="add subjects of the missing group.",
            )
        k = min(self.inner_folds, *per_group)
        if k < 2:
            # too few subjects for an inner CV: a documented fallback, reported by inner_auc
            # None (and the training warnings that follow from it)
            logger.warning(
                "only %d MA and %d HC training subjects: no inner CV; C=%g, no calibration",
                per_group[1],
                per_group[0],
                FALLBACK_C,
            )
            self.c, self.inner_auc = FALLBACK_C, None
            self.fit_ = fit_linear(data, columns, self.c, self.seed)
            return self
        folds = subject_folds(data.subject, data.group, k, self.seed, what="inner folds")
        oof = {c: np.zeros(len(data.group)) for c in self.c_grid}
        for fold in folds:
            test = np.isin(data.subject, fold)
            train = _rows(data, ~test)
            for c in self.c_grid:
                oof[c][test] = fit_linear(train, columns, c, self.seed).logits(data.features[test])
        _keys, labels = session_means(data.group.astype(float), data.subject, data.session)
        for c in self.c_grid:
            _, means = session_means(oof[c], data.subject, data.session)
            self.inner_aucs[c] = _auc(labels.astype(int), means)
        best = max(self.inner_aucs.values())
        self.c = min(c for c, a in self.inner_aucs.items() if a >= best - 1e-9)
        self.inner_auc = best
        _, means = session_means(oof[self.c], data.subject, data.session)
        self.calibration = fit_session_calibration(
            means, labels, within_session_sd(oof[self.c], _session_keys(data))
        )
        self.window_temperature = fit_temperature(oof[self.c], data.group)
        self.fit_ = fit_linear(data, columns, self.c, self.seed)
        logger.info(
            "hand-crafted %s: C=%g, inner subject AUC %.3f",
            "+".join(self.modalities),
            self.c,
            best,
        )
        return self

    def logits(self, features: np.ndarray) -> np.ndarray:
        """Window logits."""
        assert self.fit_ is not None, "fit the model first"
        return self.fit_.logits(features)


def _session_keys(data: LabelledWindows) -> np.ndarray:
    return np.char.add(np.char.add(data.subject.astype(str), "/"), data.session.astype(str))


def _rows(data: LabelledWindows, mask: np.ndarray) -> LabelledWindows:
    return LabelledWindows(
        data.features[mask], data.subject[mask], data.session[mask], data.group[mask]
    )
