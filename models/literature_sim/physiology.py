"""The body behind both recordings: heartbeat, breathing, Mayer waves and head movements.

One set per session, shared by EEG and fNIRS, so a head movement disturbs both at once
and the ECG artefact in EEG beats with the fNIRS cardiac pulsation. Heart rate varies with
respiration (respiratory sinus arrhythmia) and slowly on its own; respiration wanders a
little; Mayer waves are a narrow-band ~0.1 Hz blood-pressure oscillation (Julien, 2006).
Phases are integrals of instantaneous frequency on a 25 Hz grid and are interpolated onto
each modality's clock.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.literature_sim.noise import gaussian_peak, lorentzian, spectral_noise
from models.literature_sim.subjects import SessionState

GRID_HZ = 25.0
MOTION_PER_MIN = 1.0
"""Head movements per minute (their size scales with the nuisance level)."""


@dataclass(frozen=True)
class Body:
    """Slow physiological processes of one session, on a fine common grid."""

    grid: np.ndarray
    heart_phase: np.ndarray
    """Radians; a beat at every multiple of 2 pi."""
    resp_phase: np.ndarray
    mayer: np.ndarray
    """Unit-variance Mayer wave."""
    motion_onsets: np.ndarray
    motion_durations: np.ndarray
    motion_strengths: np.ndarray
    """Signed relative size of each movement (about +-0.5 to 1.5)."""

    def at(self, name: str, times: np.ndarray) -> np.ndarray:
        """``heart_phase``, ``resp_phase`` or ``mayer`` interpolated onto ``times``."""
        return np.interp(times, self.grid, getattr(self, name))


def draw_body(state: SessionState, duration_s: float, rng: np.random.Generator) -> Body:
    """Heart, respiration, Mayer waves and head movements of one session."""
    t = state.traits
    grid = np.arange(int(np.ceil(duration_s * GRID_HZ)) + 2) / GRID_HZ
    n = grid.size
    resp_wander = spectral_noise(rng, n, GRID_HZ, lorentzian(0.02))[0]
    resp_hz = t.resp_hz * (1.0 + 0.06 * resp_wander)
    resp_phase = rng.uniform(0, 2 * np.pi) + 2 * np.pi * np.cumsum(resp_hz) / GRID_HZ
    heart_wander = spectral_noise(rng, n, GRID_HZ, lorentzian(0.01))[0]
    heart_hz = t.heart_hz * (1.0 + 0.04 * np.sin(resp_phase) + 0.03 * heart_wander)
    heart_phase = rng.uniform(0, 2 * np.pi) + 2 * np.pi * np.cumsum(heart_hz) / GRID_HZ
    mayer = spectral_noise(rng, n, GRID_HZ, gaussian_peak(t.mayer_hz, 0.012))[0]
    count = rng.poisson(MOTION_PER_MIN * duration_s / 60.0)
    onsets = np.sort(rng.uniform(5.0, max(5.0, duration_s - 3.0), count))
    return Body(
        grid=grid,
        heart_phase=heart_phase,
        resp_phase=resp_phase,
        mayer=mayer,
        motion_onsets=onsets,
        motion_durations=rng.uniform(0.3, 1.5, count),
        motion_strengths=rng.uniform(0.5, 1.5, count) * rng.choice([-1.0, 1.0], count),
    )
