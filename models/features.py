"""Hand-crafted window features, the same for training, offline scoring and the live path.

Per window, from the model input (numpy and scipy only, no torch):

EEG, per channel and as the mean over channels
    relative log band power (theta 4-8, alpha 8-13, beta 13-30, gamma 30-45 Hz, each over the
    channel's 1-45 Hz power: immune to the amplitude gains that differ between people and
    caps), the aperiodic slope (a line through the log-log spectrum at 2-7 and 14-40 Hz,
    skipping the alpha peak), the periodic band power (the mean height of the log spectrum
    above that line in each band: immune to per-person spectral tilts as well as gains) and
    the log of the 1-45 Hz power. The channel means of the four
    relative powers are repeated multiplied by the time the window spent in a drug and in a
    neutral cue, so that a linear model can see cue-locked changes (drug-cue gamma).
fNIRS, per HbO/HbR channel and as the mean over the pairs that couple
    a ridge regression of the window on the drug and neutral cue regressors of
    :mod:`models.context` (the canonical HRF response to what was on the screen; no
    intercept, since the band-passed signal is centred on the session's slow baseline): the
    drug and neutral betas, their difference, and the window mean and linear trend. Pairs
    zeroed by the coupling gate are left out of the means.

In a session without cues every cue feature is 0 and the score rests on resting-state
evidence alone. Names are ``eeg:...`` and ``nirs:...`` so that a unimodal model takes its own.
"""

from __future__ import annotations

import numpy as np
from scipy import signal

from models.context import CUE_KINDS

FEATURES_VERSION = 1
"""Bumped whenever a feature changes: it names cached windows and goes into every bundle."""
BANDS = {"theta": (4.0, 8.0), "alpha": (8.0, 13.0), "beta": (13.0, 30.0), "gamma": (30.0, 45.0)}
_TOTAL = (1.0, 45.0)
_SLOPE_RANGES = ((2.0, 7.0), (14.0, 40.0))
_RIDGE = 1.0
_PER_CHANNEL_EEG = (
    *(f"rel_{b}" for b in BANDS),
    *(f"periodic_{b}" for b in BANDS),
    "log_power",
    "slope",
)
_NIRS_SUMMARY = ("drug", "neutral", "drug_minus_neutral", "mean", "trend")


def feature_names(eeg_channels: tuple[str, ...], nirs_channels: tuple[str, ...]) -> list[str]:
    """Names of :func:`window_features`' columns, in order."""
    names = [f"eeg:{ch}:{f}" for ch in eeg_channels for f in _PER_CHANNEL_EEG]
    names += [f"eeg:mean:{f}" for f in _PER_CHANNEL_EEG]
    names += [f"eeg:mean:rel_{b}*{cue}" for cue in CUE_KINDS for b in BANDS]
    names += [f"nirs:{ch}:{cue}" for ch in nirs_channels for cue in CUE_KINDS]
    names += [f"nirs:mean_{kind}:{f}" for kind in ("hbo", "hbr") for f in _NIRS_SUMMARY]
    names.append("nirs:coupled_fraction")
    return names


def window_feature_names(eeg_channels: tuple[str, ...], pair_names: list[str]) -> list[str]:
    """Feature names of a window with these EEG channels and fNIRS pairs (hbo, hbr each)."""
    nirs = tuple(f"{pair} {kind}" for pair in pair_names for kind in ("hbo", "hbr"))
    return feature_names(tuple(eeg_channels), nirs)


def eeg_features(eeg: np.ndarray, sfreq: float, occupancy: np.ndarray) -> np.ndarray:
    """``(N, 10 * C + 10 + 8)`` EEG features of windows ``(N, C, S)``; ``occupancy`` ``(N, 2)``."""
    n, c, s = eeg.shape
    f, psd = signal.welch(eeg, fs=sfreq, nperseg=min(s, round(2 * sfreq)), axis=2)
    psd = psd + 1e-12
    total = psd[:, :, (f >= _TOTAL[0]) & (f < _TOTAL[1])].sum(axis=2)
    rel = [np.log(psd[:, :, (f >= lo) & (f < hi)].sum(axis=2) / total) for lo, hi in BANDS.values()]
    fit = np.zeros(f.shape, bool)
    for lo, hi in _SLOPE_RANGES:
        fit |= (f >= lo) & (f <= hi)
    x = np.log10(f[fit])
    x = x - x.mean()
    log_psd = np.log10(psd)
    slope = (log_psd[:, :, fit] * x).sum(axis=2) / (x**2).sum()
    # the periodic part: the spectrum above its aperiodic line, immune to per-person tilts
    offset = log_psd[:, :, fit].mean(axis=2)
    x_all = np.log10(np.maximum(f, 1e-3)) - np.log10(f[fit]).mean()
    flat = log_psd - (offset[:, :, None] + slope[:, :, None] * x_all)
    periodic = [flat[:, :, (f >= lo) & (f < hi)].mean(axis=2) for lo, hi in BANDS.values()]
    per_channel = np.stack([*rel, *periodic, np.log(total), slope], axis=2)  # (N, C, 10)
    k = per_channel.shape[2]
    means = per_channel.mean(axis=1)  # (N, 10)
    rel_means = means[:, : len(BANDS)]
    cued = [rel_means * occupancy[:, j : j + 1] for j in range(len(CUE_KINDS))]
    return np.concatenate([per_channel.reshape(n, c * k), means, *cued], axis=1)


def nirs_features(nirs: np.ndarray, context: np.ndarray) -> np.ndarray:
    """``(N, 2 * H + 11)`` fNIRS features of HbO/HbR windows ``(N, H, S)`` (hbo, hbr per pair)
    and cue regressors ``(N, 2, S)``."""
    n, h, s = nirs.shape
    if h == 0:
        return np.zeros((n, 2 * len(_NIRS_SUMMARY) + 1))
    # no intercept: the band-passed signal is centred on the session's slow baseline, so a
    # cue response is a level, and a window inside a long block sees a plateau that an
    # intercept would absorb
    gram = context @ context.transpose(0, 2, 1) + _RIDGE * np.eye(len(CUE_KINDS))
    cue_betas = np.linalg.solve(gram, context @ nirs.transpose(0, 2, 1))  # (N, 2, H)
    trend = np.linspace(-1.0, 1.0, s)
    level_trend = np.stack(
        [nirs.mean(axis=2), nirs @ trend / (trend**2).sum()], axis=1
    )  # (N, 2, H)
    betas = np.concatenate([cue_betas, level_trend], axis=1)  # (N, 4, H)
    per_channel = cue_betas.transpose(0, 2, 1).reshape(n, h * 2)
    coupled = np.abs(nirs).max(axis=2) > 0  # (N, H): the gate zeroes uncoupled pairs
    summaries = []
    for parity in (0, 1):  # hbo rows are even, hbr rows odd
        b = betas[:, :, parity::2]
        w = coupled[:, parity::2].astype(float)
        count = np.maximum(w.sum(axis=1), 1.0)

        def mean(values: np.ndarray, w: np.ndarray = w, count: np.ndarray = count) -> np.ndarray:
            return (values * w).sum(axis=1) / count

        drug, neutral = mean(b[:, 0]), mean(b[:, 1])
        summaries += [drug, neutral, drug - neutral, mean(b[:, 2]), mean(b[:, 3])]
    fraction = coupled[:, 0::2].mean(axis=1)
    return np.concatenate([per_channel, np.stack([*summaries, fraction], axis=1)], axis=1)


def window_features(
    eeg: np.ndarray,
    nirs: np.ndarray,
    context: np.ndarray,
    occupancy: np.ndarray,
    eeg_sfreq: float,
) -> np.ndarray:
    """Features of a batch of windows as float32 ``(N, F)``; see :func:`feature_names`.

    ``eeg`` ``(N, C, S_e)`` and ``nirs`` ``(N, H, S_n)`` are model input, ``context``
    ``(N, 2, S_n)`` the cue regressors and ``occupancy`` ``(N, 2)`` the fraction of each window
    spent in a drug and a neutral cue.
    """
    out = np.concatenate(
        [
            eeg_features(eeg.astype(np.float64), eeg_sfreq, occupancy),
            nirs_features(nirs.astype(np.float64), context.astype(np.float64)),
        ],
        axis=1,
    )
    return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)


def modality_columns(names: list[str], modalities: tuple[str, ...]) -> np.ndarray:
    """Indices of the feature columns that belong to ``modalities``."""
    return np.array([i for i, n in enumerate(names) if n.split(":", 1)[0] in modalities], int)
