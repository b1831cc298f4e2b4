"""The causal EEG chain: TMS-pulse blanking, re-reference, notch, band-pass, resampling."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from contract.settings import InvalidSettingError, setting
from models.preprocessing.filters import StatefulSos, bandpass_sos, notch_sos
from models.preprocessing.guard import FiniteGuard, hold_last
from models.preprocessing.resample import PolyphaseResampler, rational_ratio


@dataclass(frozen=True)
class EegParams:
    """Parameters of the EEG chain (stored in every model bundle)."""

    reference: Literal["average", "none"] = setting("average", doc="re-reference")
    line_freq: float = setting(50.0, gt=0, doc="mains frequency in Hz (50 or 60)")
    notch_harmonics: int = setting(2, ge=0, doc="number of line harmonics notched beyond f0")
    l_freq: float = setting(1.0, gt=0, doc="high-pass edge in Hz")
    h_freq: float = setting(45.0, gt=0, doc="low-pass edge in Hz")
    filter_order: int = setting(4, ge=1, le=8, doc="Butterworth order of the band-pass")
    target_sfreq: float = setting(125.0, gt=0, doc="model sampling rate in Hz")
    tms_jump_uv: float = setting(
        500.0, gt=0, doc="sample-to-sample jump in uV on any channel that marks a TMS pulse"
    )
    tms_blank_ms: float = setting(20.0, ge=0, doc="samples held after a detected TMS pulse")

    def check(self) -> None:
        """Cross-field rules."""
        if self.h_freq <= self.l_freq:
            raise InvalidSettingError("h_freq", f"a number > l_freq ({self.l_freq:g})", self.h_freq)
        if self.h_freq >= self.target_sfreq / 2:
            raise InvalidSettingError(
                "h_freq", f"a number < target_sfreq / 2 ({self.target_sfreq / 2:g})", self.h_freq
            )


class TmsBlanker:
    """Hold the last clean value over each TMS pulse artifact.

    A pulse is detected causally where any channel jumps by more than ``jump_uv`` between
    consecutive samples; from that sample on, ``blank_samples`` samples of every channel
    are replaced by the last sample before the jump. Detection runs on the raw data, before
    any filter, so no filter rings on the artifact.
    """

    def __init__(self, jump_uv: float, blank_samples: int):
        self.jump_uv = jump_uv
        self.blank_samples = int(blank_samples)
        self._prev: np.ndarray | None = None
        self._hold: np.ndarray | None = None
        self._remaining = 0
        self.n_pulses = 0

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(blanked, mask)``; ``mask`` is True on blanked samples."""
        n = x.shape[0]
        if n == 0 or self.blank_samples == 0:
            return x, np.zeros(n, dtype=bool)
        if self._prev is None:
            self._prev = x[0].copy()
            self._hold = x[0].copy()
        jumps = np.abs(np.diff(np.vstack([self._prev[None, :], x]), axis=0)).max(axis=1)
        onsets = np.flatnonzero(jumps > self.jump_uv)
        delta = np.zeros(n + 1, dtype=np.int64)
        if self._remaining:
            delta[0] += 1
            delta[min(n, self._remaining)] -= 1
        np.add.at(delta, onsets, 1)
        np.add.at(delta, np.minimum(n, onsets + self.blank_samples), -1)
        mask = np.cumsum(delta[:n]) > 0
        # a pulse starts a new blank run when the sample before it was not blanked
        before = np.concatenate([[self._remaining > 0], mask[:-1]])
        self.n_pulses += int(np.count_nonzero(~before[onsets]))
        tail = [self._remaining - n, *(onsets + self.blank_samples - n)]
        self._remaining = max(0, *tail)
        out = hold_last(x, mask, self._hold) if mask.any() else x
        self._prev = x[-1].copy()
        self._hold = out[-1].copy()
        return out, mask


@dataclass(frozen=True)
class EegOutput:
    """What the EEG chain gives for one chunk, at the model rate."""

    data: np.ndarray
    """``(n_out, n_channels)`` preprocessed EEG in uV."""
    bad_in: np.ndarray
    """``(n_in, n_channels)`` True where an input sample was NaN or infinite."""
    blanked_in: np.ndarray
    """``(n_in,)`` True where input samples were blanked for a TMS pulse."""


class EegChain:
    """Causal EEG preprocessing: guard, TMS blanking, reference, notch, band-pass, resample."""

    def __init__(self, params: EegParams, sfreq: float, n_channels: int):
        self.params = params
        self.sfreq = float(sfreq)
        self.n_channels = n_channels
        up, down = rational_ratio(self.sfreq, params.target_sfreq)
        harmonics = [params.line_freq * (k + 1) for k in range(params.notch_harmonics + 1)]
        self._guard = FiniteGuard()
        self._blanker = TmsBlanker(
            params.tms_jump_uv, round(params.tms_blank_ms * self.sfreq / 1000)
        )
        self._notch = StatefulSos(notch_sos(harmonics, self.sfreq))
        self._bandpass = StatefulSos(
            bandpass_sos(
                params.l_freq,
                min(params.h_freq, 0.45 * self.sfreq),
                self.sfreq,
                params.filter_order,
            )
        )
        self._resampler = PolyphaseResampler(up, down)

    @property
    def n_pulses(self) -> int:
        """TMS pulses detected so far."""
        return self._blanker.n_pulses

    def __call__(self, x: np.ndarray) -> EegOutput:
        """Process one chunk ``(n_samples, n_channels)`` of EEG in uV."""
        if x.ndim != 2 or x.shape[1] != self.n_channels:
            raise ValueError(f"EEG chunk must be (n, {self.n_channels}), got {x.shape}")
        clean, bad = self._guard(x)
        blanked, blank_mask = self._blanker(clean)
        if self.params.reference == "average":
            blanked = blanked - blanked.mean(axis=1, keepdims=True)
        filtered = self._bandpass(self._notch(blanked))
        return EegOutput(data=self._resampler(filtered), bad_in=bad, blanked_in=blank_mask)
