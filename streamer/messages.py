"""Builders of the messages the monitor publishes (score, quality, event, summary).

Every builder is a pure function of its inputs, so the same window always gives the same
message apart from ``emitted_unix`` and the latencies. Formats are named in
:mod:`contract.messages`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

import numpy as np

from contract.messages import (
    EVENT_FORMAT,
    QUALITY_FORMAT,
    SCORE_FORMAT,
    SUMMARY_FORMAT,
    finite_or_none,
    stage_latencies,
)
from models.bundle import Scores
from models.pipeline.grid import WindowGrid
from models.pipeline.pipeline import GatedWindow
from models.session_estimate import SessionTracker, session_calibration


@dataclass(frozen=True)
class Identity:
    """Who publishes: site, pseudonymous session and model."""

    site: str
    session: str
    model_name: str
    model_sha256: str


def dumps(message: dict) -> str:
    """Compact JSON (no NaN: ``allow_nan=False`` turns any slip into an error here)."""
    return json.dumps(message, separators=(",", ":"), allow_nan=False)


def _quality(window: GatedWindow, eeg_channels: tuple[str, ...], pair_names: list[str]) -> dict:
    w = window.window
    if w is None:
        return {"usable": False, "reasons": list(window.reasons), "eeg": None, "nirs": None}
    bad = w.bad_eeg
    good_pairs = w.good_pairs
    saturated = w.saturated if w.saturated is not None else np.zeros(len(pair_names), bool)
    index_median = float(np.median(w.sci)) if len(w.sci) else 0.0
    return {
        "usable": window.usable,
        "reasons": list(window.reasons),
        "eeg": {
            "bad_fraction": round(float(bad.mean()), 4),
            "bad_channels": [c for c, b in zip(eeg_channels, bad, strict=True) if b],
        },
        "nirs": {
            "good_fraction": round(float(good_pairs.mean()), 4) if len(good_pairs) else 0.0,
            "sci_median": round(float(np.clip(index_median, -1, 1)), 4),
            "bad_pairs": [p for p, g in zip(pair_names, good_pairs, strict=True) if not g],
            "index": w.coupling_index,
            "saturated_pairs": [p for p, x in zip(pair_names, saturated, strict=True) if x],
        },
    }


def score_message(
    ident: Identity,
    window: GatedWindow,
    scores: Scores | None,
    smoothed: float | None,
    stages_ms: dict[str, float | None],
    *,
    eeg_channels: tuple[str, ...],
    pair_names: list[str],
    estimate: dict | None = None,
) -> dict:
    """The ``neuroclip.score/2`` message of one window (``scores`` is None if unusable);
    ``estimate`` is :meth:`SessionScoring.estimate` after this window."""
    scored = scores is not None
    return {
        "schema": SCORE_FORMAT,
        "site": ident.site,
        "session": ident.session,
        "seq": window.seq,
        "window": {"start": round(window.t_begin, 6), "end": round(window.t_end, 6)},
        "usable": window.usable,
        "score": finite_or_none(scores.probability[0]) if scored else None,
        "interval": [finite_or_none(scores.low[0]), finite_or_none(scores.high[0])]
        if scored
        else None,
        "distance_hc": finite_or_none(scores.distance_hc[0]) if scored else None,
        "distance_ma": finite_or_none(scores.distance_ma[0]) if scored else None,
        "smoothed": finite_or_none(smoothed),
        "quality": _quality(window, eeg_channels, pair_names),
        "phase": window.phase.phase,
        "cue": window.phase.cue,
        "model": {"name": ident.model_name, "sha256": ident.model_sha256},
        "latency_ms": stage_latencies(stages_ms),
        "estimate": estimate,
        "emitted_unix": round(time.time(), 6),
    }


def quality_message(
    ident: Identity, window: GatedWindow, eeg_channels: tuple[str, ...], pair_names: list[str]
) -> dict:
    """Per-channel detail of one window: EEG flags by channel, SCI by fNIRS pair."""
    w = window.window
    message: dict = {
        "schema": QUALITY_FORMAT,
        "site": ident.site,
        "session": ident.session,
        "seq": window.seq,
        "window_end": round(window.t_end, 6),
        "usable": window.usable,
        "reasons": list(window.reasons),
        "eeg": None,
        "nirs": None,
    }
    if w is not None:
        message["eeg"] = {
            "channels": list(eeg_channels),
            "flags": {
                name: [c for c, f in zip(eeg_channels, flags, strict=True) if f]
                for name, flags in w.eeg_flags.items()
            },
        }
        message["nirs"] = {
            "pairs": pair_names,
            "sci": [round(float(np.clip(v, -1, 1)), 4) for v in w.sci],
            "index": w.coupling_index,
            "saturated": [bool(x) for x in w.saturated]
            if w.saturated is not None
            else [False] * len(pair_names),
        }
    return message


def event_message(ident: Identity, label: str, t: float, **extra: object) -> dict:
    """A marker or a monitor event (``stream/lost``, ``stream/found``)."""
    return {
        "schema": EVENT_FORMAT,
        "site": ident.site,
        "session": ident.session,
        "label": label,
        "time": round(t, 6),
        "emitted_unix": round(time.time(), 6),
        **extra,
    }


class Smoother:
    """Exponential moving average of usable scores over about ``windows`` windows.

    Unusable windows never enter it and carry no smoothed value (a line on the page breaks
    there instead of running flat across a gap). The monitor and offline scoring share it,
    through :class:`SessionScoring`, so that their ``smoothed`` fields agree.
    """

    def __init__(self, windows: int):
        self.alpha = 2.0 / (windows + 1)
        self.value: float | None = None

    def add(self, score: float) -> float:
        """Fold one usable score in; returns the new smoothed value."""
        self.value = score if self.value is None else self.value + self.alpha * (score - self.value)
        return self.value


@dataclass
class SessionSummary:
    """Counts of the session and the means of usable window scores per phase (the
    comparisons of version 1 summaries, kept beside the estimates)."""

    windows: int = 0
    usable: int = 0
    per_phase: dict[str, list[float]] = field(default_factory=dict)

    def add(self, phase: str, score: float | None) -> None:
        """Count one window; keep its score when it had one."""
        self.windows += 1
        if score is None:
            return
        self.usable += 1
        self.per_phase.setdefault(phase, []).append(score)


class SessionScoring:
    """What one session's windows add up to: the smoothed score, the session estimate
    (:class:`~models.session_estimate.SessionTracker`) and the counts.

    The monitor and offline scoring feed it every window in order with :meth:`add`, so the
    ``smoothed`` and ``estimate`` fields of their messages are the same.
    """

    def __init__(self, bundle_meta: dict, smoothing_windows: int, grid: WindowGrid):
        """``grid`` is the pipeline's: overlapping windows count as ``hop / window`` of an
        independent one in the estimate's interval."""
        calibration, hc_range = session_calibration(bundle_meta)
        independent_fraction = min(1.0, grid.hop_s / grid.window_s)
        self.tracker = SessionTracker(calibration, independent_fraction, hc_range)
        self.smoother = Smoother(smoothing_windows)
        self.summary = SessionSummary()

    def add(self, window: GatedWindow, scores: Scores | None) -> float | None:
        """Fold one window in; returns its smoothed score (None when it was unusable)."""
        probability = None if scores is None else float(scores.probability[0])
        logit = None if scores is None else float(scores.logit[0])
        self.tracker.add(window.t_end, window.phase.phase, window.phase.cue, logit)
        self.summary.add(window.phase.phase, probability)
        return None if probability is None else self.smoother.add(probability)

    def estimate(self) -> dict | None:
        """The ``estimate`` field of a score message: whole session, last minutes, and the
        part of the session the last window belongs to."""
        tracker = self.tracker
        session = tracker.as_message(tracker.session())
        if session is None:
            return None
        return {
            "session": session,
            "recent": tracker.as_message(tracker.recent()),
            "part": tracker.last_group,
            "part_estimate": tracker.as_message(tracker.group(tracker.last_group)),
        }

    def summary_message(self, ident: Identity) -> dict:
        """The retained ``neuroclip.summary/2`` message: counts, per-phase means of window
        scores, and the session estimate whole, recent and per part."""

        def mean(values: list[float]) -> float | None:
            return round(float(np.mean(values)), 6) if values else None

        per_phase = self.summary.per_phase
        tracker = self.tracker
        return {
            "schema": SUMMARY_FORMAT,
            "site": ident.site,
            "session": ident.session,
            "model": {"name": ident.model_name, "sha256": ident.model_sha256},
            "windows": self.summary.windows,
            "usable": self.summary.usable,
            "baseline_mean": mean(per_phase.get("baseline", [])),
            "phase_means": {p: mean(v) for p, v in per_phase.items()},
            "phase_counts": {p: len(v) for p, v in per_phase.items()},
            "estimate": {
                "session": tracker.as_message(tracker.session()),
                "recent": tracker.as_message(tracker.recent()),
                "parts": {g: tracker.as_message(e) for g, e in tracker.groups().items()},
                "hc_range": list(tracker.hc_range) if tracker.hc_range else None,
            },
            "emitted_unix": round(time.time(), 6),
        }
