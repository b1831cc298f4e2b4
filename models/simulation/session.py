"""One simulated session: the timeline, the EEG and fNIRS generators, second by second."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.simulation.config import SimulationConfig
from models.simulation.eeg import EegGenerator
from models.simulation.montage import EEG_CHANNELS, nirs_channel_names, nirs_pairs
from models.simulation.nirs import NirsGenerator
from models.simulation.protocol import Event, build_timeline
from models.simulation.subject import SubjectParams


@dataclass(frozen=True)
class SimulatedChunk:
    """One stretch of a session; times count from the session start in seconds."""

    t0: float
    eeg: np.ndarray
    """``(n, 32)`` EEG in uV."""
    nirs: np.ndarray
    """``(m, 2 * n_pairs)`` raw intensity."""
    events: list[Event]
    """Markers with onsets in ``[t0, t0 + duration)``."""


class SessionSimulator:
    """Generate one session of one subject, one whole second at a time.

    Output depends only on the subject, the session label and the configuration: reading
    the session in any number of calls gives the same signals, because the generators
    always advance in one-second steps.
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
        self.nirs = NirsGenerator(
            subject, self.severity, cfg, self.events, motion, self.duration_s, rng
        )
        self.eeg_channels = EEG_CHANNELS
        self.nirs_channels = tuple(nirs_channel_names())
        self.nirs_distances = np.repeat([p.distance_m for p in nirs_pairs()], 2)
        self._second = 0

    def next_seconds(self, seconds: int = 1) -> SimulatedChunk:
        """The next ``seconds`` whole seconds of the session."""
        eeg_parts, nirs_parts = [], []
        t0 = float(self._second)
        n_eeg, n_nirs = int(self.cfg.eeg_sfreq), int(self.cfg.nirs_sfreq)
        for _ in range(seconds):
            t = float(self._second)
            eeg_parts.append(self.eeg(t, n_eeg))
            nirs_parts.append(self.nirs(t, n_nirs))
            self._second += 1
        t1 = float(self._second)
        events = [e for e in self.events if t0 <= e.onset < t1]
        return SimulatedChunk(t0, np.vstack(eeg_parts), np.vstack(nirs_parts), events)

    def generate_all(self) -> SimulatedChunk:
        """The whole session (rounded up to whole seconds) in one chunk."""
        return self.next_seconds(int(np.ceil(self.duration_s)) - self._second)
