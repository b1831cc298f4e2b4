"""Scalp EEG of one session: aperiodic background, rhythms, the disorder, and artefacts.

Brain signal = aperiodic ``1/f**chi`` activity of a dozen random cortical dipoles plus a
little local activity per electrode (He, 2014), and rhythms as narrow Gaussian spectral
peaks (Donoghue et al., 2020): frontal-midline theta, parieto-occipital alpha at the
individual alpha frequency (Klimesch, 1999), sensorimotor beta and a weak frontal gamma.
Every source reaches the electrodes through a dipole lead field, so channels correlate.

The disorder, scaled by ``effect x severity x eeg_gain``: resting theta and beta power up
and alpha power down (quantitative EEG of methamphetamine dependence, e.g. Newton et al.,
2003), and frontal 30-45 Hz gamma power up during and 2 s after drug cues only
(cue-reactivity). Any cue also desynchronises alpha a little (Pfurtscheller & Lopes da
Silva, 1999).

Artefacts, scaled by ``nuisance``: mains hum with a slowly varying amplitude, blinks and
saccades spreading from the eyes with distance (Croft & Barry, 2000), temporal muscle bursts
with a broad 25+ Hz spectrum (Goncharova et al., 2003), head-movement transients, an ECG
trace strongest near the left mastoid, and slow electrode drift. Amplifier noise is always
present.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import fftconvolve
from scipy.signal.windows import tukey

from models.literature_sim.config import LiteratureCohortConfig
from models.literature_sim.design import DRUG, NEUTRAL, Marker, boxcar
from models.literature_sim.montage import (
    dipole_under,
    lead_field,
    positions_of,
    proximity,
    random_dipoles,
)
from models.literature_sim.noise import (
    aperiodic,
    gaussian_peak,
    lorentzian,
    slow_noise,
    smooth,
    smooth_band,
    spectral_noise,
)
from models.literature_sim.physiology import Body
from models.literature_sim.subjects import SessionState

BACKGROUND_DIPOLES = 12
THETA_SITES = ("Fz", "FCz")
ALPHA_SITES = ("PO3", "PO4")
BETA_SITES = ("C3", "C4")
GAMMA_SITES = ("AFz", "F3", "F4")
# power change per unit of drive (effect x severity x eeg_gain)
THETA_GAIN = 1.5
BETA_GAIN = 0.8
ALPHA_LOSS = 0.5
GAMMA_CUE_GAIN = 4.0
GAMMA_AFTER_S = 2.0
BLINKS_PER_MIN = 14.0
SACCADES_PER_MIN = 10.0
MUSCLE_PER_MIN = 3.0
LARGE_MOVEMENT_FRACTION = 0.2
AMPLIFIER_UV = 0.6


def simulate_eeg(
    state: SessionState,
    markers: list[Marker],
    body: Body,
    cfg: LiteratureCohortConfig,
    rng: np.random.Generator,
) -> np.ndarray:
    """``(n_channels, n_samples)`` EEG in microvolts for one session."""
    fs = cfg.eeg_sfreq
    n = round(cfg.duration_s * fs)
    times = np.arange(n) / fs
    elec = positions_of(cfg.eeg_channels)
    # the subject's anatomy and electrode fit stay the same across sessions
    anatomy = np.random.default_rng([cfg.seed, 2, state.traits.number])
    brain = _brain(state, markers, elec, times, fs, anatomy, rng)
    gains = anatomy.lognormal(0.0, 0.08, len(elec)) * rng.lognormal(0.0, 0.03, len(elec))
    artefacts = _artefacts(state, body, elec, times, fs, cfg, anatomy, rng)
    amplifier = AMPLIFIER_UV * rng.standard_normal(brain.shape)
    return gains[:, None] * brain + artefacts + amplifier


def _brain(
    state: SessionState,
    markers: list[Marker],
    elec: np.ndarray,
    times: np.ndarray,
    fs: float,
    anatomy: np.random.Generator,
    rng: np.random.Generator,
) -> np.ndarray:
    t, drive, n = state.traits, state.eeg_drive, times.size
    pos, mom = random_dipoles(anatomy, BACKGROUND_DIPOLES)
    chis = t.chi + anatomy.normal(0.0, 0.1, (BACKGROUND_DIPOLES, 1))
    knee = t.knee_hz**chis
    sources = spectral_noise(rng, n, fs, aperiodic(chis, knee), BACKGROUND_DIPOLES)
    background = lead_field(elec, pos, mom) @ sources
    background *= t.background_uv / np.median(background.std(axis=1))
    local = (
        0.2
        * t.background_uv
        * spectral_noise(rng, n, fs, aperiodic(t.chi, t.knee_hz**t.chi), len(elec))
    )

    any_cue = smooth(boxcar(markers, (DRUG, NEUTRAL), times, extend_s=1.0), fs, 0.5)
    drug_cue = smooth(boxcar(markers, (DRUG,), times, extend_s=GAMMA_AFTER_S), fs, 0.4)

    def rhythm(sites: tuple[str, ...], centre: float, sd: float, rms: float) -> np.ndarray:
        dip = [dipole_under(s, 0.45) for s in sites]
        field = lead_field(elec, np.array([d[0] for d in dip]), np.array([d[1] for d in dip]))
        shape = gaussian_peak(centre, sd)
        shared = spectral_noise(rng, n, fs, shape)
        own = spectral_noise(rng, n, fs, shape, len(sites))
        return field @ (rms * (0.6 * shared + 0.8 * own))

    theta = rhythm(THETA_SITES, t.theta_hz, 0.8, t.theta_uv * np.sqrt(1 + THETA_GAIN * drive))
    alpha_power = max(0.25, 1.0 - ALPHA_LOSS * drive)
    alpha = rhythm(ALPHA_SITES, t.iaf_hz, 0.9, t.alpha_uv * np.sqrt(alpha_power))
    alpha *= 1.0 - 0.25 * any_cue
    beta = rhythm(BETA_SITES, t.beta_hz, 2.5, t.beta_uv * np.sqrt(1 + BETA_GAIN * drive))
    gamma = rhythm(GAMMA_SITES, t.gamma_hz, 4.0, t.gamma_uv)
    gamma *= np.sqrt(1.0 + GAMMA_CUE_GAIN * drive * drug_cue)
    return background + local + theta + alpha + beta + gamma


def _artefacts(
    state: SessionState,
    body: Body,
    elec: np.ndarray,
    times: np.ndarray,
    fs: float,
    cfg: LiteratureCohortConfig,
    anatomy: np.random.Generator,
    rng: np.random.Generator,
) -> np.ndarray:
    nu, n, duration = cfg.nuisance, times.size, cfg.duration_s
    out = np.zeros((len(elec), n))
    if nu == 0:
        return out
    # mains: odd harmonics, amplitude per electrode (impedance), slowly varying
    hum = np.zeros(n)
    phase = rng.uniform(0, 2 * np.pi)
    for k, rel in ((1, 1.0), (3, 0.25)):
        if k * cfg.line_freq < 0.45 * fs:
            hum += rel * np.sin(2 * np.pi * k * cfg.line_freq * times + k * phase)
    hum *= 1.0 + 0.2 * slow_noise(rng, times, lorentzian(0.05))[0]
    out += nu * rng.uniform(0.3, 2.5, len(elec))[:, None] * hum

    # eyes: blinks (positive at Fp) and horizontal saccades (opposite at F7/F8)
    eyes = positions_of(("Fp1", "Fp2")) + np.array([0.0, 0.005, -0.035])
    eye_weight = proximity(elec, eyes, 0.035) / proximity(positions_of(("Fp1",)), eyes, 0.035)
    impulses = np.zeros(n)
    blink_at = rng.uniform(0, duration, rng.poisson(BLINKS_PER_MIN * duration / 60))
    np.add.at(impulses, (blink_at * fs).astype(int), rng.uniform(0.7, 1.3, blink_at.size))
    tk = np.arange(int(0.8 * fs)) / fs
    kernel = (tk / 0.06) ** 2 * np.exp(-tk / 0.06)
    blinks = fftconvolve(impulses, kernel / kernel.max())[:n]
    out += nu * 110.0 * eye_weight[:, None] * blinks
    jumps = np.sort(rng.uniform(0, duration, rng.poisson(SACCADES_PER_MIN * duration / 60)))
    gaze = np.r_[0.0, rng.standard_normal(jumps.size)][np.searchsorted(jumps, times)]
    gaze = smooth(gaze, fs, 0.03)
    side = np.clip((elec[:, 0] - eyes[:, 0].mean()) / 0.03, -1, 1)
    out += nu * 25.0 * (eye_weight * side)[:, None] * gaze

    # temporal muscle bursts
    temporal = positions_of(("T7", "T8"))
    for _ in range(rng.poisson(MUSCLE_PER_MIN * duration / 60)):
        m = int(rng.uniform(0.3, 1.5) * fs)
        start = int(rng.uniform(0, max(1, n - m)))
        sites = temporal[[rng.integers(0, 2)]] if rng.random() < 0.7 else temporal
        topo = proximity(elec, sites, 0.03)
        band = smooth_band(25.0, min(150.0, 0.45 * fs))
        burst = spectral_noise(rng, m, fs, band)[0] * tukey(m, 0.3) * rng.uniform(5, 20)
        out[:, start : start + m] += nu * topo[:, None] * burst[: n - start]

    # head movements: a smooth transient under a random electrode cluster; about one in
    # five pulls the cable and swings many channels by around a millivolt
    for onset, dur, strength in zip(
        body.motion_onsets, body.motion_durations, body.motion_strengths, strict=True
    ):
        m = max(3, int(dur * fs))
        start = int(onset * fs)
        large = rng.random() < LARGE_MOVEMENT_FRACTION
        size, spread = (rng.uniform(500.0, 1200.0), 0.1) if large else (80.0, 0.05)
        topo = proximity(elec, elec[[rng.integers(0, len(elec))]], spread)
        bump = np.hanning(m)[: n - start]
        out[:, start : start + m] += nu * size * strength * topo[:, None] * bump

    # ECG: QRS and T wave locked to the heart phase, strongest near the left mastoid
    beat = np.angle(np.exp(1j * body.at("heart_phase", times)))
    ecg = np.exp(-0.5 * (beat / (2 * np.pi * 0.025)) ** 2)
    ecg += 0.3 * np.exp(-0.5 * ((beat - 2 * np.pi * 0.3) / (2 * np.pi * 0.06)) ** 2)
    ecg_topo = proximity(elec, positions_of(("TP9",)), 0.08)
    out += nu * anatomy.uniform(0.5, 2.5) * ecg_topo[:, None] * ecg

    # slow electrode drift (sweat, polarisation), partly common
    drift = slow_noise(rng, times, lorentzian(0.03), len(elec) + 1)
    out += nu * (12.0 * drift[:-1] + 6.0 * drift[-1])
    return out
