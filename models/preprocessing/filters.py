"""Causal IIR filtering whose state (``zi``) carries across chunks."""

from __future__ import annotations

import numpy as np
from scipy import signal


def bandpass_sos(
    l_freq: float | None, h_freq: float | None, sfreq: float, order: int
) -> np.ndarray:
    """Butterworth band-, high- or low-pass as second-order sections.

    ``l_freq=None`` gives a low-pass, ``h_freq=None`` a high-pass.
    """
    nyq = sfreq / 2.0
    if l_freq is not None and h_freq is not None:
        return signal.butter(order, [l_freq / nyq, h_freq / nyq], btype="bandpass", output="sos")
    if l_freq is not None:
        return signal.butter(order, l_freq / nyq, btype="highpass", output="sos")
    if h_freq is not None:
        return signal.butter(order, h_freq / nyq, btype="lowpass", output="sos")
    raise ValueError("bandpass_sos needs l_freq, h_freq or both")


def notch_sos(freqs: list[float], sfreq: float, quality: float = 30.0) -> np.ndarray:
    """Cascaded IIR notches (one per frequency below Nyquist) as second-order sections."""
    sections = []
    for f0 in freqs:
        if f0 < sfreq / 2.0:
            b, a = signal.iirnotch(f0, quality, fs=sfreq)
            sections.append(signal.tf2sos(b, a))
    if not sections:
        return np.array([[1.0, 0.0, 0.0, 1.0, 0.0, 0.0]])
    return np.vstack(sections)


class StatefulSos:
    """Apply second-order sections causally along axis 0, carrying the state across calls.

    The state starts at the filter's steady state for the first sample seen, which avoids
    a start-up transient and depends only on that sample, so it is chunking-invariant.
    """

    def __init__(self, sos: np.ndarray):
        self.sos = np.asarray(sos, dtype=float)
        self._zi: np.ndarray | None = None

    def reset(self) -> None:
        """Forget the state; the next chunk starts a new signal."""
        self._zi = None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Filter ``x`` of shape ``(n_samples, n_channels)``; returns the same shape."""
        if x.shape[0] == 0:
            return x.astype(float, copy=True)
        if self._zi is None:
            zi0 = signal.sosfilt_zi(self.sos)  # (n_sections, 2)
            self._zi = zi0[:, :, None] * x[0][None, None, :]
        y, self._zi = signal.sosfilt(self.sos, x, axis=0, zi=self._zi)
        return y
