"""Subjects: severity, modality leaning, rTMS response and individual physiology.

A latent severity in [0, 1] drives every group effect (MA about 0.65 +- 0.18, controls
near 0). An rTMS course removes a per-subject fraction of it (``rtms_response``, 0.2-0.7
by default), and the craving VAS is a noisy linear function of it. With ``leaning``, some
MA subjects express the disorder mostly in one modality: weight ``w ~ Beta(0.5, 0.5)`` on
EEG and ``1 - w`` on fNIRS. Individual physiology is drawn from published ranges: aperiodic
exponent 1-2 (He, 2014; Donoghue et al., 2020), individual alpha frequency about 10 +- 0.9
Hz (Klimesch, 1999), resting heart rate 60-78 bpm, respiration 0.2-0.3 Hz, Mayer waves near
0.1 Hz (Julien, 2006), and a haemodynamic response whose latency varies by about +-15 %
between people (Handwerker et al., 2004).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import numpy as np

from models.literature_sim.config import LiteratureCohortConfig

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SubjectTraits:
    """What stays the same across a subject's sessions (plus its ground truth)."""

    label: str
    group: str
    number: int
    """Seed component of this subject (its position in the drawing order)."""
    severity: float
    """Severity before any rTMS (MA) or at the only session (HC)."""
    rtms_response: float
    """Fraction of severity removed by the rTMS course (0 for controls)."""
    leans: bool
    lean_weight: float
    """EEG weight ``w`` of a leaning subject (NaN when not leaning)."""
    eeg_gain: float
    nirs_gain: float
    age: float
    chi: float
    """Aperiodic exponent of the EEG background."""
    knee_hz: float
    """Knee frequency of the aperiodic background (flattening below it)."""
    iaf_hz: float
    theta_hz: float
    beta_hz: float
    gamma_hz: float
    background_uv: float
    alpha_uv: float
    theta_uv: float
    beta_uv: float
    gamma_uv: float
    heart_hz: float
    resp_hz: float
    mayer_hz: float
    hrf_dilation: float
    hbr_lag_s: float
    hbr_ratio: float
    any_cue_um: float
    drug_cue_um: float
    cardiac_um: float

    def severity_at(self, session: str) -> float:
        """Severity at ``pre``/``base`` (unchanged) or ``post`` (after the rTMS course)."""
        if session == "post":
            return self.severity * (1.0 - self.rtms_response)
        return self.severity


def sessions_of(group: str) -> tuple[str, ...]:
    """``pre`` and ``post`` for MA, ``base`` for controls."""
    return ("pre", "post") if group == "MA" else ("base",)


def draw_subjects(cfg: LiteratureCohortConfig) -> list[SubjectTraits]:
    """The whole cohort, sorted by label; labels are a random permutation of 1..N, so the
    label order says nothing about the group."""
    rng = np.random.default_rng([cfg.seed, 0])
    total = cfg.ma + cfg.hc
    width = max(2, len(str(total)))
    labels = rng.permutation(total) + 1
    groups = ["MA"] * cfg.ma + ["HC"] * cfg.hc
    subjects = [_draw(f"{int(labels[i]):0{width}d}", groups[i], i, cfg) for i in range(total)]
    return sorted(subjects, key=lambda s: s.label)


def _draw(label: str, group: str, number: int, cfg: LiteratureCohortConfig) -> SubjectTraits:
    rng = np.random.default_rng([cfg.seed, 1, number])
    ma = group == "MA"

    def lognormal(median: float, sigma: float) -> float:
        return float(median * np.exp(sigma * rng.standard_normal()))

    if ma:
        severity = float(np.clip(rng.normal(0.65, 0.18), 0.2, 1.0))
        response = float(rng.uniform(*cfg.rtms_response))
    else:
        severity = float(rng.uniform(0.0, 0.08))
        response = 0.0
    lean_draw, weight = rng.random(), float(rng.beta(0.5, 0.5))
    leans = ma and lean_draw < cfg.leaning
    return SubjectTraits(
        label=label,
        group=group,
        number=number,
        severity=severity,
        rtms_response=response,
        leans=leans,
        lean_weight=weight if leans else float("nan"),
        eeg_gain=weight if leans else 1.0,
        nirs_gain=1.0 - weight if leans else 1.0,
        age=float(rng.uniform(20, 50)),
        chi=float(rng.uniform(1.0, 2.0)),
        knee_hz=float(rng.uniform(1.5, 4.0)),
        iaf_hz=float(np.clip(rng.normal(10.0, 0.9), 8.0, 12.5)),
        theta_hz=float(rng.uniform(5.0, 7.0)),
        beta_hz=float(rng.uniform(17.0, 24.0)),
        gamma_hz=float(rng.uniform(34.0, 40.0)),
        background_uv=lognormal(8.0, 0.25),
        alpha_uv=lognormal(10.0, 0.35),
        theta_uv=lognormal(4.5, 0.3),
        beta_uv=lognormal(3.5, 0.3),
        gamma_uv=lognormal(1.0, 0.3),
        heart_hz=float(rng.uniform(1.0, 1.3)),
        resp_hz=float(rng.uniform(0.2, 0.3)),
        mayer_hz=float(rng.uniform(0.08, 0.12)),
        hrf_dilation=float(np.clip(rng.normal(1.0, 0.1), 0.8, 1.25)),
        hbr_lag_s=float(rng.uniform(0.5, 2.0)),
        hbr_ratio=float(rng.uniform(0.25, 0.45)),
        any_cue_um=lognormal(0.35, 0.3),
        drug_cue_um=lognormal(0.9, 0.25),
        cardiac_um=lognormal(0.3, 0.25),
    )


@dataclass(frozen=True)
class SessionState:
    """One session of one subject: the traits with day-to-day jitter, and the drives."""

    traits: SubjectTraits
    session: str
    severity: float
    eeg_drive: float
    """``effect x severity x eeg_gain``: how strongly the EEG shows the disorder today."""
    nirs_drive: float
    """``effect x severity x nirs_gain``."""


def session_state(
    traits: SubjectTraits, session: str, cfg: LiteratureCohortConfig, rng: np.random.Generator
) -> SessionState:
    """Severity and drives of one session, with small day-to-day changes of physiology."""
    severity = traits.severity_at(session)

    def jitter(value: float, sigma: float) -> float:
        return float(value * np.exp(sigma * rng.standard_normal()))

    today = replace(
        traits,
        iaf_hz=float(np.clip(traits.iaf_hz + rng.normal(0, 0.15), 7.5, 13.0)),
        background_uv=jitter(traits.background_uv, 0.08),
        alpha_uv=jitter(traits.alpha_uv, 0.1),
        theta_uv=jitter(traits.theta_uv, 0.08),
        beta_uv=jitter(traits.beta_uv, 0.08),
        heart_hz=float(np.clip(traits.heart_hz * np.exp(rng.normal(0, 0.04)), 0.9, 1.4)),
        resp_hz=float(np.clip(traits.resp_hz + rng.normal(0, 0.015), 0.17, 0.35)),
        any_cue_um=jitter(traits.any_cue_um, 0.1),
        cardiac_um=jitter(traits.cardiac_um, 0.1),
    )
    return SessionState(
        traits=today,
        session=session,
        severity=severity,
        eeg_drive=cfg.effect * severity * traits.eeg_gain,
        nirs_drive=cfg.effect * severity * traits.nirs_gain,
    )


def craving_vas(severity: float, rng: np.random.Generator) -> float:
    """Craving on a 0-100 visual analogue scale: ``8 + 75 x severity`` plus noise (SD 9)."""
    return float(np.clip(8.0 + 75.0 * severity + rng.normal(0.0, 9.0), 0.0, 100.0))
