"""Windows: the unit the encoder scores, cut the same way offline and live.

A window ending at ``t`` holds ``[t - window_s, t)`` of preprocessed EEG (at the EEG model
rate) and HbO/HbR (at the fNIRS model rate). The quality gate marks a window unusable, with
its reasons, when it overlaps an rTMS train, when too many EEG channels are flat, railing,
noisy or non-finite, or when too few fNIRS pairs couple to the scalp. fNIRS pairs with a poor
scalp coupling index are zeroed in the model input rather than failing the window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from models.context import MAX_CUE_S, CueLog, window_context
from models.errors import ChannelError, TooShortError
from models.features import window_features
from models.preprocessing import EegChain, EegParams, NirsChain, NirsParams
from models.preprocessing.quality import eeg_channel_flags, scalp_coupling_index
from models.settings import InvalidSettingError, setting
from models.signals import Recording

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
    sci_threshold: float = setting(0.5, ge=-1, le=1, doc="pairs below are bad")
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


@dataclass
class SessionWindows:
    """Every window of one session, as model input plus gate results."""

    eeg: np.ndarray
    """``(n, n_eeg_channels, eeg_samples)`` float32, scaled model input."""
    nirs: np.ndarray
    """``(n, 2 * n_pairs, nirs_samples)`` float32, scaled model input (bad pairs zeroed)."""
    t_end: np.ndarray
    usable: np.ndarray
    reasons: list[tuple[str, ...]]
    sci: np.ndarray
    """``(n, n_pairs)`` scalp coupling index per window."""
    context: np.ndarray
    """``(n, 2, nirs_samples)`` drug and neutral cue regressors (:mod:`models.context`)."""
    features: np.ndarray
    """``(n, F)`` hand-crafted features (:mod:`models.features`)."""
    meta: dict[str, object] = field(default_factory=dict)


def rtms_spans(recording: Recording, guard_s: float) -> np.ndarray:
    """``(n, 2)`` rTMS train intervals from the markers, extended by ``guard_s``."""
    starts = [
        t
        for t, lab in zip(recording.markers.times, recording.markers.labels, strict=True)
        if lab == "rtms/train_start"
    ]
    ends = [
        t
        for t, lab in zip(recording.markers.times, recording.markers.labels, strict=True)
        if lab == "rtms/train_end"
    ]
    spans = []
    for start in starts:
        after = [e for e in ends if e >= start]
        spans.append((start, (after[0] if after else start + 4.0) + guard_s))
    return np.asarray(spans, float).reshape(-1, 2)


def session_windows(
    recording: Recording,
    params: SignalParams,
    eeg_channels: tuple[str, ...],
    hop_s: float | None = None,
) -> SessionWindows:
    """Preprocess one session offline (the same objects as live) and cut its windows.

    Raises
    ------
    ChannelError
        When the recording lacks the EEG channels the model expects, or has no fNIRS.
    TooShortError
        When the session holds no complete window after the warm-up.
    """
    eeg, nirs = recording.eeg, recording.nirs
    if eeg is None or nirs is None:
        raise ChannelError(
            f"{recording.source}: a session needs both EEG and NIRS, found "
            f"{', '.join(b.kind for b in recording.blocks) or 'nothing'}.",
            fix="record EEG and fNIRS simultaneously, or train a unimodal model.",
            path=recording.source,
        )
    missing = [c for c in eeg_channels if c not in eeg.ch_names]
    if missing:
        raise ChannelError(
            f"{recording.source}: EEG lacks channel(s) {', '.join(missing[:6])} that the "
            f"model expects (it has {', '.join(eeg.ch_names[:6])}...).",
            fix="use recordings with the same montage for every subject, or rename channels.",
            path=recording.source,
        )
    picks = [eeg.ch_names.index(c) for c in eeg_channels]
    eeg_raw = eeg.data[:, picks]
    wp = params.windows
    eeg_out = EegChain(params.eeg, eeg.sfreq, len(picks))(eeg_raw)
    nirs_out = NirsChain(params.nirs, nirs.sfreq, nirs.nirs)(nirs.data)
    t0_eeg, t0_nirs = eeg.times[0], nirs.times[0]
    t_start = max(t0_eeg, t0_nirs) + wp.warmup_s + wp.window_s
    t_stop = min(
        t0_eeg + len(eeg_out.data) / params.eeg.target_sfreq,
        t0_nirs + len(nirs_out.hb) / params.nirs.target_sfreq,
    )
    hop = wp.hop_s if hop_s is None else hop_s
    ends = np.arange(t_start, t_stop + 1e-9, hop)
    if ends.size == 0:
        raise TooShortError(
            f"{recording.source}: the session lasts {t_stop - min(t0_eeg, t0_nirs):.1f} s, too "
            f"short for one {wp.window_s:g} s window after the {wp.warmup_s:g} s warm-up.",
            fix="use a longer recording.",
            path=recording.source,
        )
    n_e, n_n = params.eeg_samples(), params.nirs_samples()
    n_raw, n_c = round(wp.window_s * eeg.sfreq), round(wp.window_s * nirs.sfreq)
    layout = nirs.nirs
    spans = rtms_spans(recording, wp.rtms_guard_s)
    cues = CueLog.from_markers(
        recording.markers.times, recording.markers.labels, wp.cue_s or MAX_CUE_S
    ).spans()
    out_eeg = np.zeros((ends.size, len(picks), n_e), np.float32)
    out_nirs = np.zeros((ends.size, len(nirs_out_names(layout)), n_n), np.float32)
    sci_all = np.zeros((ends.size, len(layout.pairs())))
    out_context = np.zeros((ends.size, 2, n_n), np.float32)
    out_features: list[np.ndarray] = []
    usable = np.ones(ends.size, bool)
    reasons: list[tuple[str, ...]] = []
    eeg_bad = eeg_out.bad_in.any(axis=1)
    nirs_bad = nirs_out.bad_in.any(axis=1)
    for i, t_end in enumerate(ends):
        t_begin = t_end - wp.window_s
        r0 = round((t_begin - t0_eeg) * eeg.sfreq)
        c0 = round((t_begin - t0_nirs) * nirs.sfreq)
        e0 = model_index(r0, params.eeg.target_sfreq / eeg.sfreq)
        n0 = model_index(c0, params.nirs.target_sfreq / nirs.sfreq)
        context, occupancy = window_context(
            cues, t_begin, wp.window_s, params.nirs.target_sfreq, n_n
        )
        window = assemble_window(
            WindowSignals(
                eeg=eeg_out.data[e0 : e0 + n_e],
                hb=nirs_out.hb[n0 : n0 + n_n],
                raw_eeg=eeg_raw[r0 : r0 + n_raw],
                cardiac=None if nirs_out.cardiac is None else nirs_out.cardiac[c0 : c0 + n_c],
                nonfinite=bool(eeg_bad[r0 : r0 + n_raw].any() or nirs_bad[c0 : c0 + n_c].any()),
                tms_blanked=bool(eeg_out.blanked_in[r0 : r0 + n_raw].any()),
                in_rtms_train=overlaps(spans, t_begin, t_end),
                context=context,
                occupancy=occupancy,
            ),
            layout,
            params,
        )
        out_eeg[i], out_nirs[i], sci_all[i] = window.eeg, window.nirs, window.sci
        out_context[i] = window.context
        out_features.append(window.features)
        usable[i] = window.usable
        reasons.append(window.reasons)
    return SessionWindows(
        out_eeg,
        out_nirs,
        ends,
        usable,
        reasons,
        sci_all,
        out_context,
        np.stack(out_features),
        meta={**recording.meta, "cues": len(cues)},
    )


def model_index(raw_index: int, ratio: float) -> int:
    """The model-rate sample where raw sample ``raw_index`` falls (``ratio`` = model rate /
    raw rate), halves rounded up.

    Derived from the integer raw index, never from a time, so that a window starting halfway
    between two model-rate samples picks the same one offline and live, where timestamps
    carry a few microseconds of clock-correction noise.
    """
    return math.floor(raw_index * ratio + 0.5)


def overlaps(spans: np.ndarray, t_begin: float, t_end: float) -> bool:
    """Whether any ``(n, 2)`` interval overlaps ``[t_begin, t_end)``."""
    return bool(spans.size and np.any((spans[:, 0] < t_end) & (spans[:, 1] > t_begin)))


@dataclass(frozen=True)
class WindowSignals:
    """The pieces of one window, cut from the preprocessed streams (offline or live)."""

    eeg: np.ndarray
    """``(eeg_samples, n_channels)`` preprocessed EEG at the model rate, in uV."""
    hb: np.ndarray
    """``(nirs_samples, 2 * n_pairs)`` band-passed HbO/HbR at the model rate, in uM."""
    raw_eeg: np.ndarray
    """``(n, n_channels)`` raw EEG at the source rate in uV, for the channel flags."""
    cardiac: np.ndarray | None
    """``(n, n_nirs_channels)`` cardiac-band optical density, ``None`` for Hb streams."""
    nonfinite: bool
    """Whether any input sample of the window was NaN or infinite."""
    tms_blanked: bool
    """Whether TMS pulses were blanked inside the window."""
    in_rtms_train: bool
    """Whether the window overlaps an rTMS train from the markers (guard included)."""
    context: np.ndarray
    """``(2, nirs_samples)`` drug and neutral cue regressors (see :mod:`models.context`)."""
    occupancy: np.ndarray
    """``(2,)`` fraction of the window spent in a drug and in a neutral cue."""


@dataclass(frozen=True)
class Window:
    """One window as model input, with its gate result."""

    eeg: np.ndarray
    """``(n_channels, eeg_samples)`` float32 scaled model input."""
    nirs: np.ndarray
    """``(2 * n_pairs, nirs_samples)`` float32 scaled model input, bad pairs zeroed."""
    sci: np.ndarray
    """``(n_pairs,)`` scalp coupling index."""
    eeg_flags: dict[str, np.ndarray]
    """Per-channel booleans: ``nonfinite``, ``flat``, ``railing``, ``noisy``."""
    reasons: tuple[str, ...]
    """Why the window is unusable; empty when it is usable."""
    context: np.ndarray
    """``(2, nirs_samples)`` float32 cue regressors, model input."""
    features: np.ndarray
    """``(F,)`` float32 hand-crafted features (:mod:`models.features`), model input."""

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

    Reasons, in order: ``rtms_train`` (overlaps a train), ``tms_pulse`` (pulses blanked
    inside), ``eeg_quality`` (too many EEG channels flagged), ``nirs_coupling`` (too few
    pairs with a good scalp coupling index), ``nonfinite`` (NaN or infinite input samples).
    """
    wp = params.windows
    pair_count = len(layout.pairs())
    sci = (
        scalp_coupling_index(signals.cardiac, layout)
        if signals.cardiac is not None
        else np.ones(pair_count)
    )
    bad_pairs = sci < wp.sci_threshold
    hb = (signals.hb.T / HB_SCALE_UM).astype(np.float32)
    for k in np.flatnonzero(bad_pairs):
        hb[2 * k : 2 * k + 2] = 0.0
    flags = eeg_channel_flags(signals.raw_eeg)
    bad_eeg = flags["nonfinite"] | flags["flat"] | flags["railing"] | flags["noisy"]
    why = []
    if signals.in_rtms_train:
        why.append("rtms_train")
    if signals.tms_blanked:
        why.append("tms_pulse")
    if bad_eeg.mean() > wp.max_bad_eeg_fraction:
        why.append("eeg_quality")
    if (~bad_pairs).mean() < wp.min_good_nirs_fraction:
        why.append("nirs_coupling")
    if signals.nonfinite:
        why.append("nonfinite")
    eeg = (signals.eeg.T / EEG_SCALE_UV).astype(np.float32)
    context = np.asarray(signals.context, np.float32)
    features = window_features(
        eeg[None], hb[None], context[None], signals.occupancy[None], params.eeg.target_sfreq
    )[0]
    return Window(
        eeg=eeg,
        nirs=hb,
        sci=sci,
        eeg_flags=flags,
        reasons=tuple(why),
        context=context,
        features=features,
    )


def nirs_out_names(layout) -> list[str]:
    """Model-input fNIRS channel names: ``S_D hbo, S_D hbr`` per pair."""
    return [f"{name} {kind}" for name, _ in layout.pairs() for kind in ("hbo", "hbr")]
