"""Stateful noise sources for the streaming simulator: pink, band-limited and slow."""

from __future__ import annotations

import numpy as np
from scipy import signal

from models.preprocessing.filters import StatefulSos, bandpass_sos


class PinkNoise:
    """Approximately 1/f noise: a sum of unit-variance AR(1) processes with log-spaced corners.

    Each AR(1) has a Lorentzian spectrum; equal variance per octave of corners sums to 1/f
    between the lowest and highest corner. The output has unit variance per channel.
    """

    def __init__(
        self,
        sfreq: float,
        n_channels: int,
        rng: np.random.Generator,
        f_lo: float = 0.3,
        f_hi: float = 80.0,
        n_poles: int = 8,
    ):
        self.rng = rng
        self.poles = np.exp(-2 * np.pi * np.geomspace(f_lo, f_hi, n_poles) / sfreq)
        self.state = rng.standard_normal((n_poles, n_channels))
        self.n_channels = n_channels

    def __call__(self, n: int) -> np.ndarray:
        """The next ``n`` samples ``(n, n_channels)``."""
        out = np.zeros((n, self.n_channels))
        for k, p in enumerate(self.poles):
            w = self.rng.standard_normal((n, self.n_channels)) * np.sqrt(1 - p * p)
            y, _zf = signal.lfilter([1.0], [1.0, -p], w, axis=0, zi=(p * self.state[k])[None, :])
            self.state[k] = y[-1]
            out += y
        return out / np.sqrt(len(self.poles))


class BandNoise:
    """Gaussian noise band-passed to ``[lo, hi]`` Hz, scaled to unit variance."""

    def __init__(
        self,
        lo: float,
        hi: float,
        sfreq: float,
        n_channels: int,
        rng: np.random.Generator,
        order: int = 2,
    ):
        self.rng = rng
        self.n_channels = n_channels
        sos = bandpass_sos(lo, hi, sfreq, order)
        probe = signal.sosfilt(sos, np.random.default_rng(0).standard_normal(int(60 * sfreq)))
        self.scale = 1.0 / probe[int(5 * sfreq) :].std()
        self.filter = StatefulSos(sos)
        self.filter(np.zeros((1, n_channels)))  # settle the state at zero

    def __call__(self, n: int) -> np.ndarray:
        """The next ``n`` samples ``(n, n_channels)``."""
        return self.filter(self.rng.standard_normal((n, self.n_channels))) * self.scale


class SlowNoise:
    """Unit-variance AR(1) noise with a corner at ``corner_hz``: drifts and envelopes."""

    def __init__(self, corner_hz: float, sfreq: float, n_channels: int, rng: np.random.Generator):
        self.rng = rng
        self.p = float(np.exp(-2 * np.pi * corner_hz / sfreq))
        self.state = rng.standard_normal(n_channels)

    def __call__(self, n: int) -> np.ndarray:
        """The next ``n`` samples ``(n, n_channels)``."""
        w = self.rng.standard_normal((n, self.state.size)) * np.sqrt(1 - self.p**2)
        y, _ = signal.lfilter([1.0], [1.0, -self.p], w, axis=0, zi=(self.p * self.state)[None, :])
        self.state = y[-1]
        return y
