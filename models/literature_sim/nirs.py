"""Prefrontal CW fNIRS of one session: haemodynamics, systemic physiology, raw intensity.

Task haemodynamics: the cue train convolved with the canonical double-gamma response
(peak shape 6, undershoot shape 16, ratio 1/6; Friston et al., 1998; Glover, 1999), time
dilated per subject. Any cue evokes a small HbO rise; drug cues add a rise scaled by
``effect x severity x nirs_gain`` that is largest near a subject-specific mix of
dorsolateral and medial prefrontal foci. HbR mirrors HbO with opposite sign, a smaller
amplitude and a lag of 0.5-2 s.

Systemic physiology common to all pairs with pair-specific gains (Scholkmann et al.,
2014): cardiac pulsation (mostly HbO), respiration, Mayer waves and very-low-frequency
fluctuations; plus pair-specific physiological noise. Concentration changes become optical
density by the modified Beer-Lambert law, ``dOD = d x DPF(lambda) x (eps_HbO dHbO +
eps_HbR dHbR)`` (Delpy et al., 1988), with the wavelength- and age-dependent DPF of
Scholkmann & Wolf (2013) and Prahl's absorption table (:mod:`models.extinction`), and
then intensity ``I = I0 exp(-dOD)`` with a baseline ``I0`` that falls with distance.
Instrument noise grows with distance. A few poorly coupled pairs (the optode off the
scalp) carry little cardiac pulsation and much noise, so their scalp coupling index
(Pollonini et al., 2014) is low. Head movements give spikes and baseline shifts.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import fftconvolve
from scipy.special import gammaln

from models.extinction import absorption_coefficients
from models.literature_sim.config import LiteratureCohortConfig
from models.literature_sim.design import DRUG, NEUTRAL, Marker, boxcar
from models.literature_sim.montage import OptodePair, positions_of
from models.literature_sim.noise import aperiodic, lorentzian, spectral_noise
from models.literature_sim.physiology import Body
from models.literature_sim.subjects import SessionState

HRF_DT = 0.05
DRUG_FOCI = ("AF3", "AF4", "AFz")
FOCUS_SD_M = 0.025
BAD_PAIR_RATE = 0.1
"""Expected fraction of poorly coupled pairs at nuisance 1 (capped at 0.4)."""


def double_gamma_hrf(dt: float, dilation: float = 1.0, delay_s: float = 0.0) -> np.ndarray:
    """Canonical double-gamma response sampled every ``dt`` s for 32 s, unit area (so a
    long block plateaus at 1)."""
    t = (np.arange(0.0, 32.0, dt) - delay_s) / dilation
    positive = np.maximum(t, 1e-12)

    def gamma_pdf(shape: float) -> np.ndarray:
        return np.where(
            t > 0, np.exp((shape - 1) * np.log(positive) - positive - gammaln(shape)), 0.0
        )

    h = gamma_pdf(6.0) - gamma_pdf(16.0) / 6.0
    return h / (h.sum() * dt)


def differential_pathlength(wavelength_nm: float, age: float) -> float:
    """DPF of adult forehead tissue (Scholkmann & Wolf, 2013, general equation)."""
    lam = wavelength_nm
    return 223.3 + 0.05624 * age**0.8493 - 5.723e-7 * lam**3 + 0.001245 * lam**2 - 0.9025 * lam


def simulate_nirs(
    state: SessionState,
    markers: list[Marker],
    body: Body,
    pairs: list[OptodePair],
    cfg: LiteratureCohortConfig,
    rng: np.random.Generator,
) -> np.ndarray:
    """``(n_samples, 2 x n_pairs)`` raw CW intensity, pair by pair, wavelengths side by
    side (the column order of :func:`models.io.snirf_writer.write_snirf`)."""
    fs = cfg.nirs_sfreq
    n = round(cfg.duration_s * fs)
    times = np.arange(n) / fs
    anatomy = np.random.default_rng([cfg.seed, 3, state.traits.number])
    n_pairs = len(pairs)
    dist = np.array([p.distance_m for p in pairs])

    # poorly coupled pairs this session (a nested set as nuisance grows, same seed)
    coupling_draw = rng.random(n_pairs)
    bad = coupling_draw < min(0.4, BAD_PAIR_RATE * cfg.nuisance)
    coupling = np.where(bad, 0.05, 1.0)

    hbo, hbr = _task(state, markers, pairs, times, anatomy)
    sys_o, sys_r = _systemic(state, body, times, fs, n_pairs, coupling, cfg, anatomy, rng)
    hbo += sys_o
    hbr += sys_r

    eps = absorption_coefficients(list(cfg.nirs_wavelengths))  # (2 wl, [HbO, HbR])
    dpf = np.array([differential_pathlength(w, state.traits.age) for w in cfg.nirs_wavelengths])
    # dOD = 1e3 x d[m] x DPF x eps x dHb[M]: the inverse of MNE's beer_lambert_law
    path = 1e3 * dist[None, :, None] * dpf[None, None, :]
    od = path * (eps[None, None, :, 0] * hbo[..., None] + eps[None, None, :, 1] * hbr[..., None])
    od *= 1e-6  # uM -> M
    od += _optical_artefacts(body, times, fs, bad, cfg, rng)

    base = 10 ** anatomy.uniform(-0.3, 0.3, n_pairs) * np.exp(-(dist - 0.03) / 0.01)
    i0 = base[:, None] * np.array([1.0, anatomy.uniform(1.2, 1.8)])[None, :]
    i0 *= np.where(bad, 0.3, 1.0)[:, None]
    rel_noise = np.where(bad, 0.01, 2.5e-4 * (dist / 0.03) ** 2)[:, None]
    intensity = i0 * np.exp(-od) * (1.0 + rel_noise * rng.standard_normal(od.shape))
    return intensity.reshape(n, 2 * n_pairs)


def _task(
    state: SessionState,
    markers: list[Marker],
    pairs: list[OptodePair],
    times: np.ndarray,
    anatomy: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Evoked HbO and HbR in uM, ``(n_samples, n_pairs)`` each."""
    t = state.traits
    fine = np.arange(int(np.ceil(times[-1] / HRF_DT)) + 2) * HRF_DT
    h_o = double_gamma_hrf(HRF_DT, t.hrf_dilation)
    h_r = double_gamma_hrf(HRF_DT, t.hrf_dilation, t.hbr_lag_s)

    def response(labels: tuple[str, ...], h: np.ndarray) -> np.ndarray:
        box = boxcar(markers, labels, fine)
        return np.interp(times, fine, fftconvolve(box, h)[: fine.size] * HRF_DT)

    mid = np.array([p.midpoint for p in pairs])
    foci = positions_of(DRUG_FOCI)
    mix = anatomy.dirichlet(np.ones(len(foci)))
    d2 = ((mid[:, None, :] - foci[None, :, :]) ** 2).sum(axis=2)
    near = (mix[None, :] * np.exp(-0.5 * d2 / FOCUS_SD_M**2)).sum(axis=1)
    w_drug = 0.2 + 0.8 * near / near.max()
    w_any = anatomy.uniform(0.4, 1.0, len(pairs))
    drug_amp = t.drug_cue_um * state.nirs_drive
    cue = (DRUG, NEUTRAL)
    hbo = np.outer(response(cue, h_o), t.any_cue_um * w_any)
    hbo += np.outer(response((DRUG,), h_o), drug_amp * w_drug)
    hbr = np.outer(response(cue, h_r), t.any_cue_um * w_any)
    hbr += np.outer(response((DRUG,), h_r), drug_amp * w_drug)
    return hbo, -t.hbr_ratio * hbr


def _systemic(
    state: SessionState,
    body: Body,
    times: np.ndarray,
    fs: float,
    n_pairs: int,
    coupling: np.ndarray,
    cfg: LiteratureCohortConfig,
    anatomy: np.random.Generator,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Systemic HbO and HbR in uM, ``(n_samples, n_pairs)`` each; physiology never vanishes,
    it halves at nuisance 0."""
    t = state.traits
    phys = 0.5 + 0.5 * cfg.nuisance
    n = times.size
    heart = body.at("heart_phase", times)
    pulse = np.sin(heart)
    if 0.45 * fs > 2.0 * 1.4:  # dicrotic second harmonic where the rate allows
        pulse += 0.4 * np.sin(2.0 * heart - 0.8)
    pulse /= pulse.std()
    resp = body.at("resp_phase", times)
    mayer = body.at("mayer", times)
    vlf = spectral_noise(rng, n, fs, aperiodic(1.8, floor_hz=0.005))[0]
    gain = anatomy.uniform(0.7, 1.3, n_pairs)
    cardiac_gain = anatomy.uniform(0.7, 1.3, n_pairs) * coupling
    own = spectral_noise(rng, n, fs, aperiodic(1.0, floor_hz=0.01), 2 * n_pairs)
    hbo = (
        np.outer(t.cardiac_um * pulse, cardiac_gain)
        + np.outer(0.12 * np.sin(resp) + 0.35 * mayer + 0.35 * vlf, gain)
        + 0.12 * own[:n_pairs].T
    )
    hbr = (
        np.outer(-0.1 * t.cardiac_um * pulse, cardiac_gain)
        + np.outer(0.06 * np.sin(resp + 0.6) + 0.12 * mayer + 0.12 * vlf, gain)
        + 0.05 * own[n_pairs:].T
    )
    return phys * hbo, phys * hbr


def _optical_artefacts(
    body: Body,
    times: np.ndarray,
    fs: float,
    bad: np.ndarray,
    cfg: LiteratureCohortConfig,
    rng: np.random.Generator,
) -> np.ndarray:
    """``(n_samples, n_pairs, 2)`` optical density of movements, LED drift and the noise
    of poorly coupled pairs."""
    nu, n, n_pairs = cfg.nuisance, times.size, bad.size
    out = np.zeros((n, n_pairs, 2))
    if nu == 0:
        return out
    for onset, dur, strength in zip(
        body.motion_onsets, body.motion_durations, body.motion_strengths, strict=True
    ):
        lag = np.maximum(times - onset, 0.0)
        spike = (1.0 - np.exp(-lag / 0.15)) * np.exp(-lag / (2.0 * dur))
        weight = rng.uniform(0.3, 1.0, (n_pairs, 1)) * rng.uniform(0.85, 1.15, (n_pairs, 2))
        out += 0.04 * nu * strength * spike[:, None, None] * weight
        if rng.random() < 0.35:  # the optode settles somewhere else
            shift = rng.uniform(0.01, 0.04) * rng.choice([-1.0, 1.0])
            step = 1.0 - np.exp(-np.maximum(times - onset - dur, 0.0) / 0.3)
            out += nu * shift * step[:, None, None] * weight
    drift = spectral_noise(rng, n, fs, lorentzian(0.002), 2 * n_pairs)
    out += 0.01 * nu * drift.T.reshape(n, n_pairs, 2)
    if bad.any():
        k = int(bad.sum())
        loose = spectral_noise(rng, n, fs, aperiodic(1.0, floor_hz=0.02), 2 * k)
        out[:, bad, :] += 0.02 * loose.T.reshape(n, k, 2)
        out[:, bad, :] += 0.01 * rng.standard_normal((n, k, 2))
    return out
