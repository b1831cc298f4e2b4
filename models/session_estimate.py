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
from collections import deque
from dataclasses import dataclass

import numpy as np

from contract.messages import ESTIMATE_PARTS

Z95 = 1.959964


@dataclass(frozen=True)
class SessionCalibration:
    """Session-level calibration stored in a bundle (``calibration.session``)."""

    a: float = 1.0
    b: float = 0.0
    window_sd: float = 1.0
    """Within-session standard deviation of window logits on the training sessions."""
    hc_sessions: tuple[float, float, float] | None = None
    """5th percentile, median and 95th percentile of the held-out healthy-control session
    estimates the calibration was fitted on (the bundle's ``reference.hc_session``); not
    part of ``calibration.session``."""

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
    logits: np.ndarray,
    calibration: SessionCalibration,
    independent_fraction: float = 1.0,
    n_windows: int | None = None,
) -> SessionEstimate | None:
    """The estimate from the window logits of one session (``None`` without any).

    ``n_windows`` says how many windows ``logits`` stands for when it holds their mean alone
    (the running estimate of :class:`SessionTracker`).
    """
    logits = np.asarray(logits, float)
    logits = logits[np.isfinite(logits)]
    if logits.size == 0:
        return None
    mean = float(logits.mean())
    count = logits.size if n_windows is None else n_windows
    n_eff = max(1.0, count * min(1.0, independent_fraction))
    half = Z95 * calibration.window_sd / math.sqrt(n_eff)
    a, b = calibration.a, calibration.b
    return SessionEstimate(
        n_windows=int(count),
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
    a, b = a_u / spread, b_u - a_u * centre / spread
    hc = 1.0 / (1.0 + np.exp(-np.clip(a * z[y == 0] + b, -50, 50)))
    hc_sessions = tuple(float(v) for v in np.percentile(hc, [5, 50, 95])) if hc.size else None
    return SessionCalibration(a, b, float(window_sd), hc_sessions)  # type: ignore[arg-type]


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


ESTIMATE_GROUPS = ESTIMATE_PARTS
"""The parts of a session that get their own estimate: the phases in which the patient is
at rest or watching cues (an rTMS train's windows are mostly unusable, and its few usable
ones count toward the whole session only)."""
RECENT_S = 300.0
"""The span of the ``recent`` estimate: the last five minutes of windows."""


def estimate_group(phase: str, cue: str | None) -> str | None:
    """The :data:`ESTIMATE_GROUPS` entry of a window, or ``None`` (train, unknown phase)."""
    if cue is not None:
        return f"cue_{cue}"
    return phase if phase in ESTIMATE_GROUPS else None


def session_calibration(meta: dict) -> tuple[SessionCalibration, tuple[float, float] | None]:
    """A bundle's session calibration and its healthy-control session range (p05, p95 of
    the training HC sessions' estimates; ``None`` for bundles made before it was kept)."""
    cal = SessionCalibration(**meta["calibration"].get("session", {}))
    hc = (meta.get("reference") or {}).get("hc_session") or {}
    band = (float(hc["p05"]), float(hc["p95"])) if "p05" in hc and "p95" in hc else None
    return cal, band


def hc_band_position(estimate: SessionEstimate, hc_range: tuple[float, float] | None) -> str | None:
    """Where an estimate's 95 % interval sits against the healthy-control session range.

    ``within``: the whole interval at or below the top of the range; ``outside``: the whole
    interval above it; ``near``: the interval reaches across the top (not decided yet, as
    early in a session). ``None`` without a range.
    """
    if hc_range is None:
        return None
    upper = hc_range[1]
    if estimate.high <= upper:
        return "within"
    return "outside" if estimate.low > upper else "near"


class _Sums:
    """Running count and sum of logits (an estimate needs nothing else)."""

    __slots__ = ("n", "total")

    def __init__(self) -> None:
        self.n = 0
        self.total = 0.0

    def add(self, logit: float) -> None:
        self.n += 1
        self.total += logit

    def remove(self, logit: float) -> None:
        self.n -= 1
        self.total -= logit


class SessionTracker:
    """The session estimate as windows arrive: whole session, per part, last few minutes.

    One object per session, fed every window in order (usable or not) by the monitor and by
    offline scoring alike, so both publish the same estimates. Constant work per window: a
    running sum per part, and a queue of the windows of the last :data:`RECENT_S` seconds.
    """

    def __init__(
        self,
        calibration: SessionCalibration,
        independent_fraction: float,
        hc_range: tuple[float, float] | None = None,
        recent_s: float = RECENT_S,
    ):
        self.calibration = calibration
        self.independent_fraction = independent_fraction
        self.hc_range = hc_range
        self.recent_s = recent_s
        self._session = _Sums()
        self._groups: dict[str, _Sums] = {}
        self._recent = _Sums()
        self._recent_windows: deque[tuple[float, float]] = deque()
        self.last_group: str | None = None

    def add(self, t_end: float, phase: str, cue: str | None, logit: float | None) -> None:
        """One window ending at ``t_end``; ``logit`` is its mean raw logit, or ``None`` when
        the window was unusable."""
        self.last_group = estimate_group(phase, cue)
        while self._recent_windows and self._recent_windows[0][0] <= t_end - self.recent_s:
            self._recent.remove(self._recent_windows.popleft()[1])
        if logit is None or not math.isfinite(logit):
            return
        self._session.add(logit)
        self._recent.add(logit)
        self._recent_windows.append((t_end, logit))
        if self.last_group is not None:
            self._groups.setdefault(self.last_group, _Sums()).add(logit)

    def _estimate(self, sums: _Sums | None) -> SessionEstimate | None:
        if sums is None or sums.n == 0:
            return None
        return estimate(
            np.array([sums.total / sums.n]), self.calibration, self.independent_fraction, sums.n
        )

    def session(self) -> SessionEstimate | None:
        """Every usable window so far."""
        return self._estimate(self._session)

    def recent(self) -> SessionEstimate | None:
        """The usable windows of the last :attr:`recent_s` seconds."""
        return self._estimate(self._recent)

    def group(self, name: str | None) -> SessionEstimate | None:
        """One part of the session (:data:`ESTIMATE_GROUPS`)."""
        return self._estimate(self._groups.get(name)) if name else None

    def groups(self) -> dict[str, SessionEstimate]:
        """Every part that has usable windows, in :data:`ESTIMATE_GROUPS` order."""
        return {g: e for g in ESTIMATE_GROUPS if (e := self.group(g)) is not None}

    def as_message(self, estimate_: SessionEstimate | None) -> dict | None:
        """One estimate as the messages carry it (``None`` without usable windows)."""
        if estimate_ is None:
            return None
        return {
            "probability": round(estimate_.probability, 6),
            "low": round(estimate_.low, 6),
            "high": round(estimate_.high, 6),
            "windows": estimate_.n_windows,
            "band": hc_band_position(estimate_, self.hc_range),
        }
