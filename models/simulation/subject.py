"""Per-subject parameters: the latent severity and everything that varies between people."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.simulation.config import SimulationConfig
from models.simulation.montage import EEG_CHANNELS, nirs_pairs

HEART_HZ = (0.95, 1.35)
"""Range of the resting heart rates drawn (57-81 beats per minute)."""


@dataclass(frozen=True)
class SubjectParams:
    """The ground truth of one simulated subject (written to ``derivatives/simulation``)."""

    subject: str
    group: str
    severity: float
    """Latent severity before treatment, 0 (healthy-like) to 1."""
    response: float
    """Fraction of severity an rTMS course removes (0 for controls)."""
    iaf_hz: float
    theta_hz: float
    eeg_gain: float
    channel_gains: tuple[float, ...]
    pink_uv: float
    heart_hz: float
    resp_hz: float
    mayer_hz: float
    bad_pairs: tuple[str, ...]
    seed: int

    def severity_at(self, rtms: str) -> float:
        """Severity in a session: after the course it shrinks by ``response``."""
        return self.severity * (1.0 - self.response) if rtms == "post" else self.severity

    def craving_at(self, rtms: str, rng: np.random.Generator) -> float:
        """VAS craving 0-100 that follows severity, with rating noise."""
        return float(np.clip(8.0 + 75.0 * self.severity_at(rtms) + rng.normal(0, 7.0), 0, 100))


def draw_subject(
    subject: str,
    group: str,
    rng: np.random.Generator,
    cfg: SimulationConfig,
    severity: float | None = None,
) -> SubjectParams:
    """Draw one subject; ``severity`` overrides the group's distribution."""
    if severity is None:
        severity = (
            float(np.clip(rng.normal(0.65, 0.17), 0.15, 1.0))
            if group == "MA"
            else float(np.clip(rng.normal(0.12, 0.09), 0.0, 0.5))
        )
    pairs = [p.name for p in nirs_pairs()]
    n_bad = min(cfg.nuisance.bad_nirs_pairs, len(pairs))
    return SubjectParams(
        subject=subject,
        group=group,
        severity=severity,
        response=float(rng.uniform(0.2, 0.7)) if group == "MA" else 0.0,
        iaf_hz=float(np.clip(rng.normal(10.0, 0.8), 8.0, 12.5)),
        theta_hz=float(rng.uniform(5.0, 7.0)),
        eeg_gain=float(rng.lognormal(0.0, 0.2)),
        channel_gains=tuple(float(g) for g in rng.lognormal(0.0, 0.12, len(EEG_CHANNELS))),
        pink_uv=float(rng.uniform(8.0, 14.0)),
        heart_hz=float(rng.uniform(*HEART_HZ)),
        resp_hz=float(rng.uniform(0.2, 0.33)),
        mayer_hz=float(rng.uniform(0.08, 0.12)),
        bad_pairs=tuple(sorted(rng.choice(pairs, size=n_bad, replace=False).tolist())),
        seed=int(rng.integers(0, 2**31 - 1)),
    )


def draw_cohort(cfg: SimulationConfig) -> list[SubjectParams]:
    """Every subject of the cohort, reproducibly from ``cohort.seed``.

    Labels are pseudonymous numbers (``01``, ``02``...) assigned in a shuffled order, so a
    subject's label says nothing about its group.
    """
    rng = np.random.default_rng(cfg.cohort.seed)
    groups = ["MA"] * cfg.cohort.ma + ["HC"] * cfg.cohort.hc
    rng.shuffle(groups)
    return [draw_subject(f"{i + 1:02d}", g, rng, cfg) for i, g in enumerate(groups)]
