"""The session estimate: how MA-like a session looks, from the evidence of its windows.

The clinical question is per patient and session. Window logits of the usable windows are
averaged; the mean goes through the session-level calibration (Platt: ``a * mean + b``,
fitted on out-of-fold sessions of the training subjects), and its interval comes from the
spread of window logits within a session (``window_sd``, measured on the training sessions)
over the number of effectively independent windows (overlapping windows count as
``hop / window`` of one). The interval narrows as usable evidence accumulates; with no usable
window there is no estimate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

Z95 = 1.959964


@dataclass(frozen=True)
class SessionCalibration:
    """Session-level calibration stored in a bundle (``calibration.session``)."""

    a: float = 1.0
    b: float = 0.0
    window_sd: float = 1.0
    """Within-session standard deviation of window logits on the training sessions."""

    def as_dict(self) -> dict[str, float]:
        """For ``bundle.json``."""
        return {"a": self.a, "b": self.b, "window_sd": self.window_sd}


@dataclass(frozen=True)
class SessionEstimate:
    """A session's probability of looking MA-like, with its 95 % interval."""

    n_windows: int
    mean_logit: float
    probability: float
    low: float
    high: float


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(min(z, 50.0), -50.0)))


def estimate(
    logits: np.ndarray, calibration: SessionCalibration, independent_fraction: float = 1.0
) -> SessionEstimate | None:
    """The estimate from the window logits of one session (``None`` without any)."""
    logits = np.asarray(logits, float)
    logits = logits[np.isfinite(logits)]
    if logits.size == 0:
        return None
    mean = float(logits.mean())
    n_eff = max(1.0, logits.size * min(1.0, independent_fraction))
    half = Z95 * calibration.window_sd / math.sqrt(n_eff)
    a, b = calibration.a, calibration.b
    return SessionEstimate(
        n_windows=int(logits.size),
        mean_logit=mean,
        probability=_sigmoid(a * mean + b),
        low=_sigmoid(a * (mean - half) + b),
        high=_sigmoid(a * (mean + half) + b),
    )


def fit_session_calibration(
    mean_logits: np.ndarray, labels: np.ndarray, window_sd: float
) -> SessionCalibration:
    """Platt scaling of session mean logits, fitted on their standardised values.

    Standardising first lets a strongly regularised model, whose logits spread by a few
    hundredths, be calibrated as well as one whose logits spread by tens; a weak prior
    (a slope of one standard deviation per unit, no offset) keeps the fit sane with a
    handful of sessions.
    """
    from scipy.optimize import minimize

    z, y = np.asarray(mean_logits, float), np.asarray(labels, float)
    centre = float(z.mean()) if z.size else 0.0
    spread = float(z.std()) if z.size > 1 and z.std() > 1e-12 else 1.0
    u = (z - centre) / spread

    def loss(p: np.ndarray) -> float:
        s = p[0] * u + p[1]
        return float(np.mean(np.logaddexp(0, s) - y * s) + 0.01 * ((p[0] - 1) ** 2 + p[1] ** 2))

    result = minimize(
        loss, np.array([1.0, 0.0]), method="L-BFGS-B", bounds=[(0.0, 20.0), (-20.0, 20.0)]
    )
    a_u, b_u = float(result.x[0]), float(result.x[1])
    # back to the raw logit: a_u * (m - centre) / spread + b_u
    return SessionCalibration(a_u / spread, b_u - a_u * centre / spread, float(window_sd))


def within_session_sd(logits: np.ndarray, session_keys: np.ndarray) -> float:
    """Pooled within-session standard deviation of window logits."""
    resid = []
    for key in np.unique(session_keys):
        values = logits[session_keys == key]
        if values.size > 1:
            resid.append(values - values.mean())
    if not resid:
        return 1.0
    pooled = np.concatenate(resid)
    return float(max(np.sqrt((pooled**2).mean()), 1e-3))


def expected_calibration_error(probability: np.ndarray, labels: np.ndarray, bins: int = 5) -> float:
    """ECE: the mean |accuracy - confidence| over equal-width probability bins, weighted."""
    p, y = np.asarray(probability, float), np.asarray(labels, float)
    if p.size == 0:
        return float("nan")
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    total = 0.0
    for k in range(bins):
        m = which == k
        if m.any():
            total += m.sum() * abs(y[m].mean() - p[m].mean())
    return float(total / p.size)


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature that minimises the negative log-likelihood of window logits."""
    from scipy.optimize import minimize_scalar

    z0, y = np.asarray(logits, float), np.asarray(labels, float)

    def nll(log_t: float) -> float:
        z = z0 / math.exp(log_t)
        return float(np.mean(np.logaddexp(0, z) - y * z))

    result = minimize_scalar(nll, bounds=(-3.0, 3.0), method="bounded")
    return float(math.exp(result.x))
