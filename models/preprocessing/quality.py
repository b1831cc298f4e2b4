"""Signal-quality measures computed on windows: scalp coupling index and EEG channel flags."""

from __future__ import annotations

import numpy as np

from models.signals import NirsLayout


def scalp_coupling_index(cardiac_od: np.ndarray, layout: NirsLayout) -> np.ndarray:
    """Scalp coupling index per source-detector pair (Pollonini et al., 2014).

    The correlation between the wavelengths of a pair in the cardiac band (the minimum over
    wavelength pairs when there are more than two), as MNE defines it. A pair with a flat
    channel scores 0. Returns ``(n_pairs,)`` in pair order of ``layout.pairs()``.
    """
    pairs = layout.pairs()
    sci = np.zeros(len(pairs))
    x = cardiac_od - cardiac_od.mean(axis=0, keepdims=True)
    norms = np.sqrt((x * x).sum(axis=0))
    for k, (_, cols) in enumerate(pairs):
        values = []
        for a in range(len(cols)):
            for b in range(a + 1, len(cols)):
                na, nb = norms[cols[a]], norms[cols[b]]
                if na == 0 or nb == 0 or not np.isfinite(na * nb):
                    values.append(0.0)
                else:
                    values.append(float(x[:, cols[a]] @ x[:, cols[b]] / (na * nb)))
        sci[k] = min(values)
    return sci


def eeg_channel_flags(
    window_uv: np.ndarray, *, flat_uv: float = 0.5, rail_uv: float = 1000.0, z_max: float = 5.0
) -> dict[str, np.ndarray]:
    """Boolean flags per channel for a raw EEG window ``(n_samples, n_channels)`` in uV.

    ``nonfinite``: any NaN/inf; ``flat``: standard deviation below ``flat_uv``;
    ``railing``: any |sample| above ``rail_uv``; ``noisy``: log-variance more than
    ``z_max`` robust z-scores above the other channels.
    """
    # a NaN or infinity anywhere in a column makes its sum non-finite (uV never overflow)
    total = window_uv.sum(axis=0)
    nonfinite = ~np.isfinite(total)
    safe = window_uv
    if nonfinite.any():
        safe = np.where(np.isfinite(window_uv), window_uv, 0.0)
        total = safe.sum(axis=0)
    # one pass for the variance (sum of squares); float64 keeps it exact enough for uV
    n = max(len(safe), 1)
    mean = total / n
    var = np.maximum(np.einsum("ij,ij->j", safe, safe) / n - mean * mean, 0.0)
    std = np.sqrt(var)
    flat = std < flat_uv
    railing = np.maximum(safe.max(axis=0), -safe.min(axis=0)) > rail_uv
    logvar = np.log(std**2 + 1e-12)
    med = np.median(logvar)
    mad = np.median(np.abs(logvar - med)) * 1.4826 + 1e-9
    noisy = (logvar - med) / mad > z_max
    return {"nonfinite": nonfinite, "flat": flat, "railing": railing, "noisy": noisy}
