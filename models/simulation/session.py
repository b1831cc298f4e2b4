"""One simulated session: the timeline, the EEG and fNIRS generators, second by second."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from models.simulation.config import SimulationConfig
from models.simulation.eeg import EegGenerator
from models.simulation.montage import EEG_CHANNELS, montage_pairs, nirs_channel_names
from models.simulation.nirs import NirsGenerator
from models.simulation.protocol import Event, build_timeline
from models.simulation.subject import SubjectParams
from models.simulation.timing import sample_count, sample_times, samples_before


@dataclass(frozen=True)
class SimulatedChunk:
    """One stretch of a session; times count from the session start in seconds."""

    t0: float
    eeg: np.ndarray
    """``(n, 32)`` EEG in uV."""
    nirs: np.ndarray
    """``(m, 2 * n_pairs)`` raw intensity (long pairs, then any short-separation pairs)."""
    events: list[Event]
    """Markers with onsets in ``[t0, t0 + duration)``."""
    eeg_times: np.ndarray
    """``(n,)`` time of each EEG sample, ``k / eeg_sfreq`` for sample ``k`` of the session."""
    nirs_times: np.ndarray
    """``(m,)`` time of each fNIRS sample, ``k / nirs_sfreq``."""

    def head(self, n_eeg: int, n_nirs: int) -> SimulatedChunk:
        """The first ``n_eeg`` EEG and ``n_nirs`` fNIRS samples, with the same markers."""
        return replace(
            self,
            eeg=self.eeg[:n_eeg],
            nirs=self.nirs[:n_nirs],
            eeg_times=self.eeg_times[:n_eeg],
            nirs_times=self.nirs_times[:n_nirs],
        )


class SessionSimulator:
    """Generate one session of one subject, one whole second at a time.

    Output depends only on the subject, the session label and the configuration: reading
    the session in any number of calls gives the same signals, because the generators
    always advance in one-second steps. Each second holds the samples whose times
    ``k / rate`` fall in it (:mod:`models.simulation.timing`), so any rate works, 7.8125 Hz
    as well as 500 Hz; at a whole-numbered rate every second holds ``rate`` samples.
    """

    def __init__(
        self,
        subject: SubjectParams,
        rtms: str,
        duration_s: float,
        cfg: SimulationConfig,
        with_rtms_block: bool,
        session_index: int = 0,
    ):
        self.subject = subject
        self.rtms = rtms
        self.cfg = cfg
        self.duration_s = float(duration_s)
        self.severity = subject.severity_at(rtms)
        rng = np.random.default_rng([subject.seed, session_index])
        self.events = build_timeline(self.duration_s, cfg.protocol, rng, with_rtms_block)
        n_motion = rng.poisson(cfg.nuisance.motion_per_min * self.duration_s / 60.0)
        motion = np.sort(rng.uniform(5.0, max(self.duration_s, 6.0), n_motion))
        self.eeg = EegGenerator(subject, self.severity, cfg, self.events, motion, rng)
        short = cfg.short_channels
        # the scalp signal has its own stream, so that switching short channels on leaves
        # every other signal of the session as it was
        scalp_rng = np.random.default_rng([subject.seed, session_index, 0x5CA1])
        self.nirs = NirsGenerator(
            subject, self.severity, cfg, self.events, motion, self.duration_s, rng, scalp_rng
        )
        self.eeg_channels = EEG_CHANNELS
        self.nirs_pairs = montage_pairs(short.enabled, short.distance_mm / 1000.0)
        """The fNIRS pairs in column order: the long ones, then any short ones."""
        self.nirs_channels = tuple(nirs_channel_names(short.enabled, short.distance_mm / 1000.0))
        self.nirs_distances = np.repeat([p.distance_m for p in self.nirs_pairs], 2)
        self._second = 0

    def next_seconds(self, seconds: int = 1) -> SimulatedChunk:
        """The next ``seconds`` whole seconds of the session."""
        t0 = float(self._second)
        eeg_rate, nirs_rate = self.cfg.eeg_sfreq, self.cfg.nirs_sfreq
        eeg_first = samples_before(self._second, eeg_rate)
        nirs_first = samples_before(self._second, nirs_rate)
        eeg_parts, nirs_parts = [], []
        for _ in range(seconds):
            eeg_parts.append(self._one_second(self.eeg, eeg_rate))
            nirs_parts.append(self._one_second(self.nirs, nirs_rate))
            self._second += 1
        t1 = float(self._second)
        events = [e for e in self.events if t0 <= e.onset < t1]
        eeg, nirs = np.vstack(eeg_parts), np.vstack(nirs_parts)
        return SimulatedChunk(
            t0,
            eeg,
            nirs,
            events,
            sample_times(eeg_first, len(eeg), eeg_rate),
            sample_times(nirs_first, len(nirs), nirs_rate),
        )

    def _one_second(self, generator: Callable[[float, int], np.ndarray], rate: float) -> np.ndarray:
        """One stream's samples of the current second.

        The generator gets the first sample's time ``k0 / rate`` (the whole second itself at
        a whole-numbered rate, exactly as before rates could be fractional, so such output
        is unchanged) and how many samples the second holds.
        """
        first = samples_before(self._second, rate)
        n = samples_before(self._second + 1, rate) - first
        return generator(first / rate, n)

    def generate_all(self) -> SimulatedChunk:
        """The rest of the session: ``round(duration_s * rate)`` samples of each stream in all.

        Whole seconds are generated (so the signals are those of :meth:`next_seconds`) and
        the samples past the end of the session are dropped.
        """
        first_second = self._second
        chunk = self.next_seconds(int(np.ceil(self.duration_s)) - first_second)
        return chunk.head(
            self._samples_left(self.cfg.eeg_sfreq, first_second),
            self._samples_left(self.cfg.nirs_sfreq, first_second),
        )

    def _samples_left(self, rate: float, from_second: int) -> int:
        """Samples of one stream from second ``from_second`` to the end of the session."""
        return sample_count(self.duration_s, rate) - samples_before(from_second, rate)
