"""What was on the screen: cue spans from the markers and their expected haemodynamic response.

The window model needs to know the task. Markers say which picture was shown and when;
:class:`CueLog` turns the marker sequence into cue spans with one rule, the same for a
recording read from a file and for markers arriving live: a ``cue/drug`` or
``cue/neutral`` marker opens a cue, the next ``rest``, cue or ``rtms/train_start`` marker
closes it, and no cue lasts longer than ``max_cue_s``. A live marker stream carries no
durations, so ``max_cue_s`` is learnt once from the training data (:func:`typical_cue_s`:
the median duration of its cue events, e.g. 2.5 s for event-related pictures, 20 s for
blocks), stored in the bundle (``preprocessing.windows.cue_s``) and used by training and the
live path alike.

:func:`cue_regressors` convolves each kind's spans with the canonical double-gamma
haemodynamic response (SPM's: peak at 6 s, undershoot at 16 s, ratio 1/6) and samples the
result on a window's fNIRS model-rate grid. A long block plateaus at 1. They work the same
for block and event-related designs; in a session without cues both are 0, and the window
features and model then rest on the resting-state evidence alone.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from contract.messages import CUES

CUE_KINDS = CUES
"""Cue kinds, as the message contract names them."""
"""Context channels, in this order."""
MAX_CUE_S = 20.0
"""The longest a cue can last when no closing marker came (a block of pictures)."""
HRF_SPAN_S = 32.0
"""A cue that began longer ago than this before a window has no response left inside it."""
_CLOSERS = ("rest", "rtms/train_start")


def _hrf_integral(t: np.ndarray) -> np.ndarray:
    """Integral from 0 to ``t`` of the canonical HRF truncated at ``HRF_SPAN_S``, scaled so
    that its total is 1.

    The truncation makes a span that ended ``HRF_SPAN_S`` or more before a time contribute
    exactly nothing there, so skipping old spans (as :func:`cue_regressors` does) changes no
    number, and a window edge that lands on that cutoff cannot flip with float rounding.
    """
    t = np.clip(t, 0.0, HRF_SPAN_S)
    return _canonical_cdf(t) / _canonical_cdf(np.asarray(HRF_SPAN_S))


def _canonical_cdf(t: np.ndarray) -> np.ndarray:
    return stats.gamma.cdf(t, 6.0) - stats.gamma.cdf(t, 16.0) / 6.0


class CueLog:
    """Cue spans from markers seen in time order (see the module docstring for the rule)."""

    def __init__(self, max_cue_s: float = MAX_CUE_S, keep: int = 2000):
        self.max_cue_s = max_cue_s
        self.keep = keep
        self._spans: list[list] = []

    def add(self, label: str, t: float) -> None:
        """One marker at time ``t`` (markers arrive in time order)."""
        if (label.startswith("cue/") or label in _CLOSERS) and self._open():
            self._spans[-1][1] = min(t, self._spans[-1][0] + self.max_cue_s)
        if label.startswith("cue/") and label[4:] in CUE_KINDS:
            self._spans.append([t, float("inf"), label[4:]])
            if len(self._spans) > self.keep:
                del self._spans[: len(self._spans) - self.keep]

    def _open(self) -> bool:
        return bool(self._spans) and self._spans[-1][1] == float("inf")

    def spans(self) -> list[tuple[float, float, str]]:
        """``(start, end, kind)`` of every cue; an open cue ends at most ``max_cue_s`` on."""
        return [(s, min(e, s + self.max_cue_s), k) for s, e, k in self._spans]

    def kind_at(self, t_begin: float, t_end: float) -> str | None:
        """The latest cue kind overlapping ``[t_begin, t_end)``, or ``None``."""
        for start, end, kind in reversed(self.spans()):
            if start < t_end and end > t_begin:
                return kind
        return None


def typical_cue_s(durations: np.ndarray | None, labels: tuple[str, ...]) -> float | None:
    """The median duration of a recording's cue events, or ``None`` without any."""
    if durations is None:
        return None
    values = [
        float(d)
        for d, lab in zip(durations, labels, strict=True)
        if lab.startswith("cue/") and lab[4:] in CUE_KINDS and d > 0
    ]
    return float(np.median(values)) if values else None


def cue_regressors(
    spans: list[tuple[float, float, str]], t_begin: float, sfreq: float, n: int
) -> np.ndarray:
    """``(2, n)`` expected HbO response to drug and neutral cues at ``t_begin + i / sfreq``.

    Each span contributes ``H(t - start) - H(t - end)``, ``H`` the integral of the canonical
    HRF; only spans that began before the window's end and within ``HRF_SPAN_S`` of its start
    matter, so a live log that keeps recent cues gives the same numbers as a whole recording.
    """
    t = t_begin + np.arange(n) / sfreq
    out = np.zeros((len(CUE_KINDS), n))
    t_end = t_begin + n / sfreq
    for start, end, kind in spans:
        if start >= t_end or end < t_begin - HRF_SPAN_S:
            continue
        row = CUE_KINDS.index(kind)
        out[row] += _hrf_integral(t - start) - _hrf_integral(t - end)
    return out


def cue_occupancy(
    spans: list[tuple[float, float, str]], t_begin: float, t_end: float
) -> np.ndarray:
    """``(2,)`` fraction of ``[t_begin, t_end)`` spent in a drug and in a neutral cue."""
    out = np.zeros(len(CUE_KINDS))
    for start, end, kind in spans:
        overlap = min(end, t_end) - max(start, t_begin)
        if overlap > 0:
            out[CUE_KINDS.index(kind)] += overlap
    return np.minimum(out / (t_end - t_begin), 1.0)


def window_context(
    spans: list[tuple[float, float, str]], t_begin: float, window_s: float, sfreq: float, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """The cue regressors ``(2, n)`` (float32) and occupancy ``(2,)`` of one window."""
    regressors = cue_regressors(spans, t_begin, sfreq, n).astype(np.float32)
    return regressors, cue_occupancy(spans, t_begin, t_begin + window_s)
