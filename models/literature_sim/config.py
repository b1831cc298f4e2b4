"""The knobs of the literature-based cohort generator, one frozen dataclass.

A benchmark varies these per cohort (design, rates, montage, effect size, modality leaning,
nuisance level) so that models are judged on a family of cohorts rather than one simulator.
Per-subject physiology (spectral exponents, alpha frequency, heart rate, haemodynamic
latency...) is drawn from fixed literature ranges in :mod:`models.literature_sim.subjects`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from contract.errors import ConfigError

EEG_10_20: tuple[str, ...] = (
    "Fp1",
    "Fp2",
    "F7",
    "F3",
    "Fz",
    "F4",
    "F8",
    "T7",
    "C3",
    "Cz",
    "C4",
    "T8",
    "P7",
    "P3",
    "Pz",
    "P4",
    "P8",
    "O1",
    "O2",
)
"""The classic 19-electrode 10-20 set (modern T7/T8/P7/P8 names)."""

NIRS_SOURCES: tuple[str, ...] = ("AFF1h", "AF5", "AFp3", "Fp1", "AFF2h", "AF6", "AFp4", "Fp2")
"""Eight prefrontal source positions (10-05 labels), mirror-symmetric."""

NIRS_DETECTORS: tuple[str, ...] = ("F5", "AF7", "AFp1", "F6", "AF8", "AFp2", "AFpz")
"""Seven prefrontal detector positions; with the sources, 20 pairs are 25-40 mm apart."""


@dataclass(frozen=True)
class LiteratureCohortConfig:
    """Everything that defines one synthetic cohort of the literature-based generator."""

    ma: int = 16
    """Number of methamphetamine-dependent subjects (two sessions each: pre, post)."""
    hc: int = 16
    """Number of healthy controls (one session: base)."""
    minutes: float = 5.0
    """Length of every session in minutes."""
    seed: int = 1
    """Seed of the whole cohort; the same config gives the same files."""
    effect: float = 1.0
    """Scale of every group effect: 0 none, 1 nominal, 2 strong."""
    leaning: float = 0.0
    """Fraction of MA subjects whose expression leans to one modality (EEG weight w ~
    Beta(0.5, 0.5), fNIRS weight 1 - w); the others express both fully."""
    nuisance: float = 1.0
    """Scale of artefacts and systemic physiology: 0 clean, 1 typical, 2 noisy."""
    design: Literal["event", "block"] = "event"
    """``event``: short picture cues with jittered gaps; ``block``: cue blocks with rest."""
    rest_markers: bool = True
    """Whether a ``rest`` marker (with the gap as duration) follows each cue or block."""
    baseline_s: float = 60.0
    """Resting baseline at the start, marked ``rest`` at 0 s."""
    cue_s: tuple[float, float] = (2.0, 3.0)
    """Event design: range of cue durations in seconds (uniform)."""
    isi_s: tuple[float, float] = (6.0, 14.0)
    """Event design: range of the gap from one cue's end to the next cue's onset."""
    block_s: tuple[float, float] = (15.0, 25.0)
    """Block design: range of cue block durations."""
    block_rest_s: tuple[float, float] = (12.0, 20.0)
    """Block design: range of rest between blocks."""
    eeg_sfreq: float = 512.0
    """EEG sampling rate in Hz."""
    nirs_sfreq: float = 7.8125
    """fNIRS sampling rate in Hz (non-integer rates are fine)."""
    eeg_channels: tuple[str, ...] = EEG_10_20
    """EEG electrode labels; each must be a 10-05 label of MNE's template."""
    nirs_sources: tuple[str, ...] = NIRS_SOURCES
    nirs_detectors: tuple[str, ...] = NIRS_DETECTORS
    nirs_wavelengths: tuple[float, float] = (760.0, 850.0)
    pair_mm: tuple[float, float] = (20.0, 40.0)
    """Source-detector pairs whose distance falls in this range (mm) are recorded."""
    line_freq: float = 50.0
    """Mains frequency in Hz."""
    rtms_response: tuple[float, float] = (0.2, 0.7)
    """Range of the fraction of severity an rTMS course removes (uniform per MA subject)."""

    @property
    def duration_s(self) -> float:
        """Length of every session in seconds."""
        return self.minutes * 60.0

    def check(self) -> None:
        """Refuse values the generator cannot honour, naming the field.

        Raises
        ------
        ConfigError
            For a count, rate, range or design outside what the generator supports.
        """

        def bad(key: str, expected: str, value: object) -> ConfigError:
            return ConfigError(
                f"Literature cohort setting {key} = {value!r}; expected {expected}.",
                key=key,
                fix=f"set {key} to {expected}.",
            )

        if self.ma < 0 or self.hc < 0 or self.ma + self.hc == 0:
            raise bad("ma", "non-negative counts with ma + hc > 0", (self.ma, self.hc))
        if self.design not in ("event", "block"):
            raise bad("design", "'event' or 'block'", self.design)
        for key in ("effect", "nuisance"):
            value = getattr(self, key)
            if not (math.isfinite(value) and value >= 0):
                raise bad(key, "a finite number >= 0", value)
        if not 0.0 <= self.leaning <= 1.0:
            raise bad("leaning", "a fraction in [0, 1]", self.leaning)
        if self.baseline_s < 0:
            raise bad("baseline_s", "a number >= 0", self.baseline_s)
        if self.duration_s < self.baseline_s + 30.0:
            raise bad(
                "minutes", f"at least ({self.baseline_s:g} s baseline + 30 s) / 60", self.minutes
            )
        for key in ("cue_s", "isi_s", "block_s", "block_rest_s", "pair_mm", "rtms_response"):
            lo, hi = getattr(self, key)
            if not (0 <= lo <= hi) or (key != "rtms_response" and hi <= 0):
                raise bad(key, "a range (lo, hi) with 0 <= lo <= hi and hi > 0", (lo, hi))
        if self.rtms_response[1] > 1:
            raise bad("rtms_response", "a range within [0, 1]", self.rtms_response)
        if self.eeg_sfreq < 128:
            raise bad("eeg_sfreq", "a rate >= 128 Hz (gamma up to 45 Hz)", self.eeg_sfreq)
        if self.nirs_sfreq < 3.5:
            raise bad("nirs_sfreq", "a rate >= 3.5 Hz (cardiac pulsation)", self.nirs_sfreq)
        if len(self.eeg_channels) < 4 or len(set(self.eeg_channels)) != len(self.eeg_channels):
            raise bad("eeg_channels", "at least 4 distinct labels", self.eeg_channels)
        if len(self.nirs_wavelengths) != 2:
            raise bad("nirs_wavelengths", "two wavelengths", self.nirs_wavelengths)
        if not self.line_freq > 0:
            raise bad("line_freq", "a positive frequency", self.line_freq)
