"""The causal fNIRS chain: intensity -> optical density -> HbO/HbR -> band-pass.

A second output, the optical density band-passed around the cardiac frequency, feeds the
windowed scalp coupling index (:mod:`models.preprocessing.quality`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from contract.errors import ChannelError
from contract.settings import InvalidSettingError, setting
from models.extinction import absorption_coefficients
from models.preprocessing.filters import StatefulSos, bandpass_sos
from models.preprocessing.guard import FiniteGuard, hold_last
from models.preprocessing.loss import SignalLossDetector
from models.preprocessing.resample import PolyphaseResampler, rational_ratio
from models.preprocessing.rows import RowWeightedSum
from models.preprocessing.short_channels import ShortChannelRegression
from models.signals import NirsLayout


@dataclass(frozen=True)
class NirsParams:
    """Parameters of the fNIRS chain (stored in every model bundle)."""

    baseline_s: float = setting(
        30.0, gt=0, doc="seconds of intensity averaged into the optical-density reference"
    )
    ppf: float = setting(6.0, gt=0, doc="partial pathlength factor (MNE's default)")
    l_freq: float = setting(0.01, gt=0, doc="haemoglobin high-pass edge in Hz")
    h_freq: float = setting(0.5, gt=0, doc="haemoglobin low-pass edge in Hz")
    filter_order: int = setting(2, ge=1, le=8, doc="Butterworth order of the band-passes")
    cardiac_l_freq: float = setting(0.7, gt=0, doc="scalp coupling band, low edge in Hz")
    cardiac_h_freq: float = setting(1.5, gt=0, doc="scalp coupling band, high edge in Hz")
    target_sfreq: float = setting(5.0, gt=0, doc="model sampling rate of HbO/HbR in Hz")
    short_channel_regression: bool = setting(
        True,
        doc="regress the long pairs on short-separation channels when the montage has them "
        "(they are never scored either way)",
    )
    short_channel_tau_s: float = setting(
        120.0, gt=0, doc="time constant of the short-channel regression's running fit"
    )
    loss_hold_s: float = setting(
        1.0, ge=0, doc="seconds a channel stays flagged after a saturated or lost sample"
    )

    def check(self) -> None:
        """Cross-field rules."""
        if self.h_freq <= self.l_freq:
            raise InvalidSettingError("h_freq", f"a number > l_freq ({self.l_freq:g})", self.h_freq)
        if self.cardiac_h_freq <= self.cardiac_l_freq:
            raise InvalidSettingError(
                "cardiac_h_freq",
                f"a number > cardiac_l_freq ({self.cardiac_l_freq:g})",
                self.cardiac_h_freq,
            )
        if self.h_freq >= self.target_sfreq / 2:
            raise InvalidSettingError(
                "h_freq", f"a number < target_sfreq / 2 ({self.target_sfreq / 2:g})", self.h_freq
            )


class OpticalDensity:
    """``OD = -ln(|I| / I_ref)`` with a causal reference intensity per channel.

    The reference is the mean of a channel's first ``baseline_samples`` good samples; until
    that many have arrived it is the mean of those seen so far (sample by sample, summed in
    one fixed order, so the result does not depend on chunking). Samples marked not good
    (saturated, lost) stay out of the reference, and a channel reads OD 0 until its first
    good sample. Passing ``reference`` fixes it instead; with the whole-recording mean this
    is exactly ``mne.preprocessing.nirs.optical_density``. Non-positive intensities are
    taken as absolute values, floored at a tiny positive value.
    """

    def __init__(self, baseline_samples: int, reference: np.ndarray | None = None):
        self.baseline_samples = max(1, int(baseline_samples))
        self._fixed = None if reference is None else np.asarray(reference, float)
        self._sum: np.ndarray | None = None
        self._count: np.ndarray | None = None

    @property
    def reference(self) -> np.ndarray | None:
        """The current reference intensity per channel (NaN before a good sample)."""
        if self._fixed is not None:
            return self._fixed
        if self._sum is None:
            return None
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self._count > 0, self._sum / self._count, np.nan)

    def __call__(self, intensity: np.ndarray, good: np.ndarray | None = None) -> np.ndarray:
        """Optical density for a chunk ``(n_samples, n_channels)`` of raw intensity;
        ``good`` (same shape) marks the samples that may enter the reference."""
        x = np.maximum(np.abs(intensity), np.finfo(float).tiny)
        if self._fixed is not None:
            return -np.log(x / self._fixed)
        n, width = x.shape
        if self._sum is None:
            self._sum, self._count = np.zeros(width), np.zeros(width)
        if n == 0:
            return np.zeros((0, width))
        good = np.isfinite(x) if good is None else good & np.isfinite(x)
        counts = self._count + np.cumsum(good, axis=0)
        used = good & (counts <= self.baseline_samples)
        # one running sum from the previous total, so every chunking adds in the same order
        sums = np.cumsum(np.vstack([self._sum, np.where(used, x, 0.0)]), axis=0)[1:]
        counts = np.minimum(counts, self.baseline_samples)
        self._sum, self._count = sums[-1].copy(), counts[-1].astype(float)
        with np.errstate(invalid="ignore", divide="ignore"):
            od = -np.log(x * counts / sums)
        return np.where((counts > 0) & np.isfinite(od), od, 0.0)


class BeerLambert:
    """Modified Beer-Lambert law: optical density per wavelength -> HbO/HbR in uM.

    For each source-detector pair, ``Hb = pinv(E * d * ppf) @ OD * 1e-3`` molar, with
    ``E`` the absorption coefficients and ``d`` the distance in metres: MNE's formula.
    Output columns are ``[pair0 hbo, pair0 hbr, pair1 hbo, ...]``.
    """

    def __init__(self, layout: NirsLayout, ppf: float):
        if layout.signal == "hb":
            raise ValueError("BeerLambert needs intensity or optical density channels")
        wavelengths = layout.wavelengths
        if len(wavelengths) < 2:
            raise ChannelError(
                f"fNIRS data has {len(wavelengths)} wavelength(s) {wavelengths}; the "
                "Beer-Lambert law needs at least two.",
                fix="record at least two wavelengths per source-detector pair.",
            )
        abs_coef = absorption_coefficients(wavelengths)
        pairs = layout.pairs()
        self.pair_names = [name for name, _ in pairs]
        matrix = np.zeros((2 * len(pairs), len(layout.channels)))
        for k, (name, cols) in enumerate(pairs):
            dist = layout.distances_m[cols[0]]
            if not np.isfinite(dist) or dist <= 0:
                raise ChannelError(
                    f"fNIRS pair {name} has no valid source-detector distance ({dist}).",
                    fix="give optode positions in the file or the stream's desc, or set "
                    "the distances of the montage explicitly.",
                )
            inverse = np.linalg.pinv(abs_coef * dist * ppf)  # (2, n_wavelengths)
            matrix[2 * k : 2 * k + 2, list(cols)] = inverse * 1e-3 * 1e6  # molar -> uM
        self.matrix = matrix
        self.ch_names = [f"{name} {kind}" for name in self.pair_names for kind in ("hbo", "hbr")]
        self._combine = RowWeightedSum(matrix)

    def __call__(self, od: np.ndarray) -> np.ndarray:
        """HbO/HbR in uM for optical density ``(n_samples, n_channels)``."""
        return self._combine(od)


@dataclass(frozen=True)
class NirsOutput:
    """What the fNIRS chain gives for one chunk."""

    hb: np.ndarray
    """``(n_out, 2 * n_long_pairs)`` band-passed HbO/HbR in uM at the model rate, long pairs
    only, short-channel regressed when the montage has short channels."""
    cardiac: np.ndarray
    """``(n_in, n_channels)`` the cardiac band of every input channel: optical density for
    intensity and OD streams (scalp coupling index), HbO/HbR for haemoglobin streams
    (cardiac peak power)."""
    bad_in: np.ndarray
    """``(n_in, n_channels)`` True where an input sample was NaN or infinite."""
    lost_in: np.ndarray
    """``(n_in, n_channels)`` True where a sample was saturated or lost, with the hold
    (:mod:`models.preprocessing.loss`)."""


class NirsChain:
    """Causal fNIRS preprocessing for one stream layout."""

    def __init__(self, params: NirsParams, sfreq: float, layout: NirsLayout):
        self.params = params
        self.sfreq = float(sfreq)
        self.layout = layout
        self._guard = FiniteGuard()
        self._loss = SignalLossDetector(layout.signal, self.sfreq, params.loss_hold_s)
        self._last_good = np.full(len(layout.channels), np.nan)
        self._od = (
            OpticalDensity(round(params.baseline_s * self.sfreq))
            if layout.signal == "intensity"
            else None
        )
        self._mbll = None if layout.signal == "hb" else BeerLambert(layout, params.ppf)
        h_cardiac = min(params.cardiac_h_freq, 0.45 * self.sfreq)
        self._cardiac = StatefulSos(
            bandpass_sos(params.cardiac_l_freq, h_cardiac, self.sfreq, params.filter_order)
        )
        self._bandpass = StatefulSos(
            bandpass_sos(params.l_freq, params.h_freq, self.sfreq, params.filter_order)
        )
        self._short = ShortChannelRegression(
            layout, self.sfreq, params.short_channel_tau_s, params.short_channel_regression
        )
        self.ch_names = [
            f"{name} {kind}" for name, _ in layout.long_pairs() for kind in ("hbo", "hbr")
        ]
        up, down = rational_ratio(self.sfreq, params.target_sfreq)
        self._resampler = PolyphaseResampler(up, down)

    def __call__(self, x: np.ndarray) -> NirsOutput:
        """Process one chunk ``(n_samples, n_channels)`` in the layout's units."""
        if x.ndim != 2 or x.shape[1] != len(self.layout.channels):
            raise ValueError(f"fNIRS chunk must be (n, {len(self.layout.channels)}), got {x.shape}")
        clean, bad = self._guard(x)
        lost = self._loss(np.asarray(x, float), clean)
        # a lost sample keeps the channel's last good value: a saturation step would ring
        # through the 0.01 Hz high-pass for minutes, far past the flag
        held = hold_last(clean, lost, self._last_good) if lost.any() else clean
        if len(held):
            self._last_good = held[-1].copy()
        if self._od is not None:
            signal = self._od(held, ~lost)
        else:  # OD or haemoglobin input: before a channel's first good sample, 0
            signal = np.where(np.isfinite(held), held, 0.0)
        hb = _hbo_hbr_order(signal, self.layout) if self._mbll is None else self._mbll(signal)
        cardiac = self._cardiac(signal)
        hb = self._short(self._bandpass(hb), self.layout.any_per_pair(lost))
        return NirsOutput(hb=self._resampler(hb), cardiac=cardiac, bad_in=bad, lost_in=lost)


def _hbo_hbr_order(hb: np.ndarray, layout: NirsLayout) -> np.ndarray:
    """Haemoglobin columns as ``[pair0 hbo, pair0 hbr, pair1 hbo, ...]`` in pair order."""
    return hb[:, layout.pair_columns.ravel()]
