"""Windows: the unit the encoder scores, and its quality gate.

A window holds ``window_s`` of preprocessed EEG (at the EEG model rate) and HbO/HbR (at the
fNIRS model rate); :mod:`models.pipeline` decides where windows lie and cuts them, the same
way offline and live. The quality gate marks a window unusable, with
its reasons, when it overlaps an rTMS train, when too many EEG channels are flat, railing,
noisy or non-finite, or when too few fNIRS pairs couple to the scalp. fNIRS pairs with a poor
scalp coupling index are zeroed in the model input rather than failing the window.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from contract.settings import InvalidSettingError, setting
from models.features import window_features
from models.preprocessing import EegParams, NirsParams
from models.preprocessing.quality import (
    cardiac_peak_power,
    eeg_channel_flags,
    scalp_coupling_index,
)

EEG_SCALE_UV = 20.0
"""EEG model input is preprocessed uV divided by this (keeps absolute power, near unit scale)."""
HB_SCALE_UM = 1.0
"""fNIRS model input is HbO/HbR in uM divided by this."""


@dataclass(frozen=True)
class WindowParams:
    """Window geometry and quality gate (stored in every model bundle)."""

    window_s: float = setting(10.0, gt=0, doc="window length in seconds")
    hop_s: float = setting(2.0, gt=0, doc="live hop between window ends in seconds")
    warmup_s: float = setting(30.0, ge=0, doc="seconds at a session start never scored")
    rtms_guard_s: float = setting(0.5, ge=0, doc="seconds after a train still counted as train")
    max_bad_eeg_fraction: float = setting(0.25, ge=0, le=1)
    sci_threshold: float = setting(
        0.5, ge=-1, le=1, doc="pairs below this scalp coupling index are bad (intensity, OD)"
    )
    psp_threshold: float = setting(
        0.1, ge=0, le=1, doc="pairs below this cardiac peak power are bad (haemoglobin input)"
    )
    min_good_nirs_fraction: float = setting(0.5, ge=0, le=1)
    cue_s: float = setting(
        0.0,
        ge=0,
        doc="longest a cue lasts when no closing marker comes first (0: the median duration "
        "of the training data's cue events, stored in the bundle)",
    )

    def check(self) -> None:
        """A hop longer than a window would leave data unscored."""
        if self.hop_s > self.window_s:
            raise InvalidSettingError(
                "hop_s", f"a number <= window_s ({self.window_s:g})", self.hop_s
            )


@dataclass(frozen=True)
class SignalParams:
    """Everything that turns raw streams into model input."""

    eeg: EegParams = EegParams()
    nirs: NirsParams = NirsParams()
    windows: WindowParams = WindowParams()

    def eeg_samples(self) -> int:
        """EEG samples per window at the model rate."""
        return round(self.windows.window_s * self.eeg.target_sfreq)

    def nirs_samples(self) -> int:
        """fNIRS samples per window at the model rate."""
        return round(self.windows.window_s * self.nirs.target_sfreq)


@dataclass(frozen=True)
class WindowSignals:
    """The pieces of one window, cut from the preprocessed streams (offline or live)."""

    eeg: np.ndarray
    """``(eeg_samples, n_channels)`` preprocessed EEG at the model rate, in uV."""
    hb: np.ndarray
    """``(nirs_samples, 2 * n_pairs)`` band-passed HbO/HbR at the model rate, in uM."""
    raw_eeg: np.ndarray
    """``(n, n_channels)`` raw EEG at the source rate in uV, for the channel flags."""
    cardiac: np.ndarray
    """``(n, n_nirs_channels)`` cardiac band at the source rate: optical density, or HbO/HbR
    for haemoglobin streams."""
    nonfinite: bool
    """Whether any EEG input sample of the window was NaN or infinite."""
    tms_blanked: bool
    """Whether TMS pulses were blanked inside the window."""
    in_rtms_train: bool
    """Whether the window overlaps an rTMS train from the markers (guard included)."""
    context: np.ndarray
    """``(2, nirs_samples)`` drug and neutral cue regressors (see :mod:`models.context`)."""
    occupancy: np.ndarray
    """``(2,)`` fraction of the window spent in a drug and in a neutral cue."""
    nirs_lost: np.ndarray | None = None
    """``(n_nirs_channels,)`` True for an fNIRS channel saturated or lost in the window."""
    nirs_rate: float = 0.0
    """Source rate of the fNIRS stream (for the cardiac peak power)."""
    nirs_nonfinite: bool = False
    """Whether any fNIRS input sample of the window was NaN or infinite."""


@dataclass(frozen=True)
class Window:
    """One window as model input, with its gate result."""

    eeg: np.ndarray
    """``(n_channels, eeg_samples)`` float32 scaled model input."""
    nirs: np.ndarray
    """``(2 * n_pairs, nirs_samples)`` float32 scaled model input, bad pairs zeroed."""
    sci: np.ndarray
    """``(n_pairs,)`` coupling index of each scored (long) pair: the scalp coupling index,
    or the cardiac peak power for haemoglobin input (see ``coupling_index``)."""
    eeg_flags: dict[str, np.ndarray]
    """Per-channel booleans: ``nonfinite``, ``flat``, ``railing``, ``noisy``."""
    reasons: tuple[str, ...]
    """Why the window is unusable; empty when it is usable."""
    context: np.ndarray
    """``(2, nirs_samples)`` float32 cue regressors, model input."""
    features: np.ndarray
    """``(F,)`` float32 hand-crafted features (:mod:`models.features`), model input."""
    saturated: np.ndarray | None = None
    """``(n_pairs,)`` True for a pair with a saturated or lost channel in the window."""
    coupling_index: str = "sci"
    """``sci`` (scalp coupling index) or ``psp`` (cardiac peak power): what ``sci`` holds."""
    coupling_threshold: float = 0.5
    """Pairs whose ``sci`` is below this are bad."""

    @property
    def good_pairs(self) -> np.ndarray:
        """``(n_pairs,)`` True for a pair that enters the model."""
        return ~self.bad_pairs

    @property
    def bad_pairs(self) -> np.ndarray:
        """``(n_pairs,)`` True for a pair zeroed in the model input (poor coupling or lost)."""
        bad = self.sci < self.coupling_threshold
        return bad if self.saturated is None else bad | self.saturated

    @property
    def usable(self) -> bool:
        """Whether the gate lets the window be scored."""
        return not self.reasons

    @property
    def bad_eeg(self) -> np.ndarray:
        """``(n_channels,)`` True for a flagged EEG channel."""
        f = self.eeg_flags
        return f["nonfinite"] | f["flat"] | f["railing"] | f["noisy"]


def assemble_window(signals: WindowSignals, layout, params: SignalParams) -> Window:
    """Scale one window into model input, compute its features and apply the quality gate
    (offline and live).

    Only long pairs are scored (short-separation channels feed the regression, never the
    model). A pair is bad when its coupling index is below threshold (scalp coupling index
    for intensity and OD; cardiac peak power of HbO for haemoglobin) or when one of its
    channels was saturated or lost in the window; bad pairs are zeroed in the model input.

    Reasons, in order: ``rtms_train`` (overlaps a train), ``tms_pulse`` (pulses blanked
    inside), ``eeg_quality`` (too many EEG channels flagged), ``nirs_coupling`` (too few
    good pairs), ``nirs_saturated`` (with it, when saturated or lost channels are among the
    causes), ``nonfinite`` (NaN or infinite EEG samples, or fNIRS ones among the causes).
    """
    wp = params.windows
    long = ~layout.short_mask()
    pairs = layout.pairs()
    if layout.signal == "hb":
        hbo = signals.cardiac[:, layout.pair_columns[:, 0]]
        band = (
            params.nirs.cardiac_l_freq,
            min(params.nirs.cardiac_h_freq, 0.45 * signals.nirs_rate),
        )
        index, kind, threshold = (
            cardiac_peak_power(hbo, signals.nirs_rate, band),
            "psp",
            wp.psp_threshold,
        )
    else:
        index, kind, threshold = (
            scalp_coupling_index(signals.cardiac, layout),
            "sci",
            wp.sci_threshold,
        )
    index = index[long]
    saturated = np.zeros(len(pairs), bool)
    if signals.nirs_lost is not None:
        saturated = layout.any_per_pair(signals.nirs_lost)
        if params.nirs.short_channel_regression:  # a lost reference spoils the long pair
            saturated = saturated | [saturated[list(r)].any() for r in layout.short_references]
    saturated = saturated[long]
    bad_pairs = (index < threshold) | saturated
    hb = (signals.hb.T / HB_SCALE_UM).astype(np.float32)
    for k in np.flatnonzero(bad_pairs):
        hb[2 * k : 2 * k + 2] = 0.0
    flags = eeg_channel_flags(signals.raw_eeg)
    bad_eeg = flags["nonfinite"] | flags["flat"] | flags["railing"] | flags["noisy"]
    too_few_pairs = (~bad_pairs).mean() < wp.min_good_nirs_fraction if len(bad_pairs) else True
    why = []
    if signals.in_rtms_train:
        why.append("rtms_train")
    if signals.tms_blanked:
        why.append("tms_pulse")
    if bad_eeg.mean() > wp.max_bad_eeg_fraction:
        why.append("eeg_quality")
    if too_few_pairs:
        why.append("nirs_coupling")
        if saturated.any():
            why.append("nirs_saturated")
    if signals.nonfinite or (too_few_pairs and saturated.any() and signals.nirs_nonfinite):
        why.append("nonfinite")
    eeg = (signals.eeg.T / EEG_SCALE_UV).astype(np.float32)
    context = np.asarray(signals.context, np.float32)
    features = window_features(
        eeg[None], hb[None], context[None], signals.occupancy[None], params.eeg.target_sfreq
    )[0]
    return Window(
        eeg=eeg,
        nirs=hb,
        sci=index,
        eeg_flags=flags,
        reasons=tuple(why),
        context=context,
        features=features,
        saturated=saturated,
        coupling_index=kind,
        coupling_threshold=threshold,
    )


def nirs_out_names(layout) -> list[str]:
    """Model-input fNIRS channel names: ``S_D hbo, S_D hbr`` per long pair."""
    return [f"{name} {kind}" for name, _ in layout.long_pairs() for kind in ("hbo", "hbr")]
