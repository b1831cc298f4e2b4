"""Coloured noise by spectral shaping, and the spectral shapes the generator uses.

Gaussian noise with a prescribed power spectrum is drawn in the frequency domain: each
Fourier coefficient gets independent Gaussian real and imaginary parts scaled by the square
root of the target spectrum, then one inverse FFT gives the series (Timmer & König, 1995).
This is exact for stationary Gaussian processes and costs one FFT per series, so a whole
session of many channels is generated without any per-sample loop.

Shapes: aperiodic ``1 / (knee + f**chi)`` and Gaussian peaks, the spectral model of
Donoghue et al. (2020); a Lorentzian for random-walk-like drifts; a smooth band for muscle.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Shape = Callable[[np.ndarray], np.ndarray]


def spectral_noise(
    rng: np.random.Generator, n: int, sfreq: float, shape: Shape, count: int = 1
) -> np.ndarray:
    """``(count, n)`` zero-mean, unit-variance noise whose power spectrum follows ``shape``.

    ``shape(f)`` gets the ``rfft`` frequencies and returns ``(n_freqs,)`` or
    ``(count, n_freqs)`` relative power.
    """
    f = np.fft.rfftfreq(n, 1.0 / sfreq)
    amp = np.sqrt(np.broadcast_to(np.asarray(shape(f), float), (count, f.size)))
    spec = rng.standard_normal((count, f.size)) + 1j * rng.standard_normal((count, f.size))
    spec *= amp
    spec[:, 0] = 0.0
    x = np.fft.irfft(spec, n=n, axis=1)
    sd = x.std(axis=1, keepdims=True)
    return x / np.where(sd > 0, sd, 1.0)


def slow_noise(
    rng: np.random.Generator, times: np.ndarray, shape: Shape, count: int = 1, rate: float = 8.0
) -> np.ndarray:
    """Like :func:`spectral_noise` for a slow process, drawn at ``rate`` Hz and interpolated
    onto ``times`` (cheap for drifts under a few hertz at high sampling rates)."""
    span = float(times[-1]) if times.size else 0.0
    grid = np.arange(int(np.ceil(span * rate)) + 2) / rate
    coarse = spectral_noise(rng, grid.size, rate, shape, count)
    return np.stack([np.interp(times, grid, row) for row in coarse])


def aperiodic(chi: float | np.ndarray, knee: float = 0.0, floor_hz: float = 0.5) -> Shape:
    """``1 / (knee + f**chi)``, flat below ``floor_hz``; ``chi`` may be ``(count, 1)``."""

    def shape(f: np.ndarray) -> np.ndarray:
        return 1.0 / (knee + np.maximum(f, floor_hz) ** chi)

    return shape


def gaussian_peak(center_hz: float, sd_hz: float) -> Shape:
    """A Gaussian bump in power at ``center_hz`` with standard deviation ``sd_hz``."""

    def shape(f: np.ndarray) -> np.ndarray:
        return np.exp(-0.5 * ((f - center_hz) / sd_hz) ** 2)

    return shape


def lorentzian(corner_hz: float) -> Shape:
    """``1 / (corner**2 + f**2)``: an Ornstein-Uhlenbeck (leaky random walk) drift."""

    def shape(f: np.ndarray) -> np.ndarray:
        return 1.0 / (corner_hz**2 + f**2)

    return shape


def smooth_band(low_hz: float, high_hz: float, order: int = 4) -> Shape:
    """Power passing ``low_hz``-``high_hz`` with Butterworth-like skirts (EMG-like)."""

    def shape(f: np.ndarray) -> np.ndarray:
        hp = (f / low_hz) ** (2 * order) / (1.0 + (f / low_hz) ** (2 * order))
        return hp / (1.0 + (f / high_hz) ** (2 * order))

    return shape


def smooth(x: np.ndarray, sfreq: float, width_s: float) -> np.ndarray:
    """Convolve the last axis with a unit-area Hann window ``width_s`` long (same length)."""
    from scipy.signal import fftconvolve

    m = max(3, round(width_s * sfreq) | 1)
    kernel = np.hanning(m)
    kernel /= kernel.sum()
    shape = (1,) * (x.ndim - 1) + (m,)
    return fftconvolve(x, kernel.reshape(shape), mode="same", axes=-1)
