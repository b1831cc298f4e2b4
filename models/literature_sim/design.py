"""Cue timelines: when the pictures appear, and the markers that say so.

Event-related design: short cues (2-3 s) with a jittered gap (6-14 s), drug and neutral
pictures randomly interleaved in equal numbers, as in event-related cue-reactivity studies
where the jitter decorrelates overlapping haemodynamic responses (Dale, 1999). Block design:
15-25 s blocks of one cue type with rest between. Every session opens with a resting
baseline marked ``rest`` at 0 s.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from models.literature_sim.config import LiteratureCohortConfig

logger = logging.getLogger(__name__)

DRUG = "cue/drug"
NEUTRAL = "cue/neutral"
REST = "rest"
TAIL_S = 4.0
"""No cue starts closer than this to the end, so its response is recorded."""


@dataclass(frozen=True)
class Marker:
    """One annotation: onset and duration in seconds from the session start, and its label."""

    onset: float
    duration: float
    label: str


def cue_timeline(cfg: LiteratureCohortConfig, rng: np.random.Generator) -> list[Marker]:
    """Every marker of one session, sorted by onset: baseline rest, cues, rests after cues."""
    end = cfg.duration_s
    if cfg.design == "event":
        on_range, gap_range = cfg.cue_s, cfg.isi_s
    else:
        on_range, gap_range = cfg.block_s, cfg.block_rest_s
    onsets: list[float] = []
    lengths: list[float] = []
    gaps: list[float] = []
    t = cfg.baseline_s
    while True:
        length = float(rng.uniform(*on_range))
        gap = float(rng.uniform(*gap_range))
        if t + length + TAIL_S > end:
            break
        onsets.append(t)
        lengths.append(length)
        gaps.append(min(gap, end - t - length))
        t += length + gap
    n = len(onsets)
    labels = np.array([DRUG] * (n // 2) + [NEUTRAL] * (n - n // 2))
    labels = labels[rng.permutation(n)]
    markers = [Marker(0.0, cfg.baseline_s, REST)] if cfg.baseline_s > 0 else []
    for onset, length, gap, label in zip(onsets, lengths, gaps, labels, strict=True):
        markers.append(Marker(round(onset, 4), round(length, 4), str(label)))
        if cfg.rest_markers and gap > 0:
            markers.append(Marker(round(onset + length, 4), round(gap, 4), REST))
    if not cfg.baseline_s and not cfg.rest_markers:
        logger.warning("session has no rest marker (baseline_s = 0 and rest_markers off)")
    return markers


def boxcar(
    markers: list[Marker], labels: tuple[str, ...], times: np.ndarray, extend_s: float = 0.0
) -> np.ndarray:
    """1.0 on ``times`` inside any marker with one of ``labels`` (its end moved by
    ``extend_s``), else 0.0; ``times`` must be a uniform grid starting at 0."""
    n = times.size
    dt = times[1] - times[0] if n > 1 else 1.0
    spans = np.array(
        [(m.onset, m.onset + m.duration + extend_s) for m in markers if m.label in labels],
        float,
    ).reshape(-1, 2)
    edges = np.zeros(n + 1)
    start = np.clip(np.ceil(spans[:, 0] / dt - 1e-9).astype(int), 0, n)
    stop = np.clip(np.ceil(spans[:, 1] / dt - 1e-9).astype(int), 0, n)
    np.add.at(edges, start, 1.0)
    np.add.at(edges, stop, -1.0)
    return (np.cumsum(edges[:n]) > 0.5).astype(float)
