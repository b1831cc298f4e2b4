"""A causal, stateful polyphase resampler (the streaming form of ``resample_poly``)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy import signal

from contract.errors import ChannelError

MAX_DENOMINATOR = 100_000
"""Largest ``up`` or ``down`` tried: the FIR holds ``20 * max(up, down) + 1`` taps (16 MB at
this bound), while each output still costs only ``20 * down / up`` multiplications."""
RATE_TOLERANCE = 1e-6
"""Relative error allowed between the rational ratio and the true one (1 ppm: 3.6 ms an
hour, far below one model-rate sample)."""


def rational_ratio(
    sfreq_in: float, sfreq_out: float, max_denominator: int = MAX_DENOMINATOR
) -> tuple[int, int]:
    """The simplest ``(up, down)`` with ``sfreq_in * up / down == sfreq_out`` to 1 ppm.

    Device rates such as 10.172526 Hz (NIRSport2: 1536/3125 to 5 Hz), 8.2565 Hz (Kernel
    Flow) or 2048 Hz (BioSemi: 125/2048 to 125 Hz) have such a ratio; the first
    denominator that meets the tolerance is chosen, so simple rates keep small filters.

    Raises
    ------
    ChannelError
        When no ratio within ``max_denominator`` meets the tolerance, or a rate is not a
        positive finite number.
    """
    if not (np.isfinite(sfreq_in) and np.isfinite(sfreq_out) and sfreq_in > 0 and sfreq_out > 0):
        raise ChannelError(
            f"Cannot resample from {sfreq_in!r} Hz to {sfreq_out!r} Hz: rates must be positive.",
            fix="give the stream's nominal sampling rate (LSL nominal_srate, the file header).",
        )
    exact = sfreq_out / sfreq_in
    ratio = _simplest_within(exact, RATE_TOLERANCE * exact, max_denominator)
    if ratio is None:
        raise ChannelError(
            f"Cannot resample from {sfreq_in:g} Hz to {sfreq_out:g} Hz: no ratio up/down with "
            f"terms <= {max_denominator} matches it to {RATE_TOLERANCE:g}.",
            fix="check the stream's nominal rate (a rate read with rounding, e.g. 10.17 for "
            "10.172526, cannot be matched); give it in full in the stream or file header.",
        )
    return ratio.numerator, ratio.denominator


def _simplest_within(value: float, tolerance: float, limit: int) -> Fraction | None:
    """The first continued-fraction convergent of ``value`` within ``tolerance`` whose terms
    stay within ``limit`` (convergents are the best approximations for their size)."""
    h0, h1, k0, k1 = 0, 1, 1, 0
    rest = Fraction(value)
    while True:
        whole = rest.numerator // rest.denominator
        h0, h1 = h1, whole * h1 + h0
        k0, k1 = k1, whole * k1 + k0
        if max(h1, k1) > limit:
            return None
        if h1 > 0 and abs(h1 / k1 - value) <= tolerance:
            return Fraction(h1, k1)
        fractional = rest - whole
        if fractional == 0:
            return None
        rest = 1 / fractional


def outputs_through(last_in: int, up: int, down: int) -> int:
    """How many outputs exist once input ``last_in`` has arrived: output ``n`` needs inputs
    up to ``floor(n * down / up)``, so it is out as soon as that one is in."""
    return ((last_in + 1) * up - 1) // down + 1


class PolyphaseResampler:
    """Resample by ``up/down`` causally, one chunk at a time.

    Uses the same anti-aliasing FIR as :func:`scipy.signal.resample_poly` (Kaiser window,
    beta 5, 10 zero crossings per side), applied causally: output ``n`` depends only on
    input samples up to ``floor(n * down / up)``. The FIR adds a group delay of
    ``10 * max(up, down) / up`` input samples, the same offline and online.
    Before the first sample the history is padded with that sample, so the output does not
    start with a step and depends only on the data, never on the chunking.
    """

    def __init__(self, up: int, down: int):
        if up < 1 or down < 1:
            raise ValueError("up and down must be >= 1")
        g = np.gcd(up, down)
        self.up, self.down = up // g, down // g
        max_rate = max(self.up, self.down)
        half_len = 10 * max_rate
        taps = signal.firwin(2 * half_len + 1, 1.0 / max_rate, window=("kaiser", 5.0)) * self.up
        self.n_taps_per_phase = -(-len(taps) // self.up)
        padded = np.zeros(self.n_taps_per_phase * self.up)
        padded[: len(taps)] = taps
        # phase p uses taps h[p + q*up] on input x[m0 - q]; stored reversed to match windows
        self._phase_taps = padded.reshape(self.n_taps_per_phase, self.up).T[:, ::-1].copy()
        self._history: np.ndarray | None = None
        self._n_in = 0
        self._n_out = 0

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Resample ``x`` of shape ``(n_samples, n_channels)``; returns the new samples."""
        n_new = x.shape[0]
        if self.up == 1 and self.down == 1:
            self._n_in += n_new
            return x.astype(float, copy=True)
        q = self.n_taps_per_phase
        if self._history is None:
            if n_new == 0:
                return np.zeros((0, x.shape[1]))
            self._history = np.repeat(x[:1].astype(float), q - 1, axis=0)
        buffer = np.concatenate([self._history, x.astype(float, copy=False)], axis=0)
        base = self._n_in - (q - 1)  # input index of buffer[0]
        self._n_in += n_new
        last_in = self._n_in - 1
        n_end = outputs_through(last_in, self.up, self.down)
        if n_end > self._n_out:
            n = np.arange(self._n_out, n_end)
            j = n * self.down
            m0, phase = j // self.up, j % self.up
            windows = sliding_window_view(buffer, q, axis=0)  # (n_win, n_ch, q)
            starts = m0 - base - (q - 1)
            if self.up == 1:  # decimation: one phase, evenly spaced windows, no gather copy
                picked = windows[starts[0] : starts[-1] + 1 : self.down]
                y = np.einsum("ncq,q->nc", picked, self._phase_taps[0])
            else:
                y = np.einsum("ncq,nq->nc", windows[starts], self._phase_taps[phase])
            self._n_out = n_end
        else:
            y = np.zeros((0, x.shape[1]))
        self._history = buffer[-(q - 1) :] if q > 1 else buffer[:0]
        return y
