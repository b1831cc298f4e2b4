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


def cardiac_peak_power(
    cardiac_hbo: np.ndarray, sfreq: float, band: tuple[float, float]
) -> np.ndarray:
    """Cardiac peak power per column of cardiac-band HbO ``(n_samples, n_pairs)``.

    The coupling index for haemoglobin input, where the two wavelengths the scalp coupling
    index compares are gone: QT-NIRS's peak spectral power (Hernandez & Pollonini, 2020;
    PHOEBE), computed on HbO alone. Each column is standardised, its unbiased
    autocorrelation taken, and the largest periodogram value (Hamming window, power
    scaling) within ``band`` returned: a clear heartbeat gives a high peak, a channel off
    the scalp or flat gives ~0. Non-finite columns give 0.
    """
    n, width = cardiac_hbo.shape
    out = np.zeros(width)
    if n < 4:
        return out
    x = cardiac_hbo - cardiac_hbo.mean(axis=0, keepdims=True)
    std = x.std(axis=0)
    usable = np.isfinite(std) & (std > 0)
    if not usable.any():
        return out
    z = x[:, usable] / std[usable]
    size = 1 << int(np.ceil(np.log2(2 * n - 1)))
    spectrum = np.fft.rfft(z, size, axis=0)
    auto = np.fft.irfft(spectrum * np.conj(spectrum), size, axis=0)
    auto = np.concatenate([auto[-(n - 1) :], auto[:n]], axis=0)  # lags -(n-1) .. n-1
    lags = np.arange(-(n - 1), n)
    auto /= (n - np.abs(lags))[:, None]
    window = np.hamming(len(auto))[:, None]
    # one-sided power spectrum as MATLAB's periodogram(..., 'power'): a unit cosine gives 0.5
    power = 2.0 * np.abs(np.fft.rfft(auto * window, axis=0)) ** 2 / (window.sum() ** 2)
    freqs = np.fft.rfftfreq(len(auto), 1.0 / sfreq)
    in_band = (freqs >= band[0]) & (freqs <= band[1])
    if in_band.any():
        out[usable] = power[in_band].max(axis=0)
    return out


def qt_nirs_peak_power(
    a: np.ndarray, b: np.ndarray, sfreq: float, band: tuple[float, float]
) -> float:
    """QT-NIRS's peak spectral power of one pair, from its two wavelengths' cardiac-band
    optical density, written straight from its definition (the cross-correlation of the two
    standardised signals, a Hamming-windowed periodogram, its peak in ``band``).

    Not used for gating (an HbO/HbR stream has no wavelengths left): the reference
    :func:`cardiac_peak_power` is checked against, in the tests and in
    ``benchmarks/hb_quality_index.py``.
    """
    n = len(a)
    a, b = (a - a.mean()) / a.std(), (b - b.mean()) / b.std()
    c = np.correlate(a, b, "full") / (n - np.abs(np.arange(-(n - 1), n)))
    w = np.hamming(len(c))
    power = 2 * np.abs(np.fft.rfft(c * w)) ** 2 / w.sum() ** 2
    f = np.fft.rfftfreq(len(c), 1 / sfreq)
    return float(power[(f >= band[0]) & (f <= band[1])].max())


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
