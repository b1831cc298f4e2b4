"""Streaming EEG generator: background, severity-driven rhythms and real-world artifacts."""

from __future__ import annotations

import numpy as np
from scipy import signal

from models.simulation.config import SimulationConfig
from models.simulation.montage import EEG_CHANNELS, eeg_mixing, eeg_topography
from models.simulation.noise import BandNoise, PinkNoise, SlowNoise
from models.simulation.protocol import Event, indicator, intervals
from models.simulation.subject import SubjectParams

GAMMA_BAND_HZ = (32.0, 44.0)
"""Band of the frontal gamma rhythm, the fastest rhythm simulated."""


def highest_eeg_hz(line_freq: float) -> float:
    """The fastest oscillation that must survive sampling: gamma's top or the mains.

    The rate must exceed twice this. Line-noise harmonics above the Nyquist frequency are
    left out (an amplifier's anti-aliasing filter removes them), and broadband content
    (1/f background, muscle, TMS pulses) is generated at whatever rate is asked.
    """
    return max(GAMMA_BAND_HZ[1], line_freq)


class EegGenerator:
    """32-channel EEG in uV for one session, produced in consecutive calls.

    Severity ``s`` scales resting theta by ``1 + theta_gain*s``, alpha by
    ``1 - alpha_loss*s``, beta by ``1 + beta_gain*s`` and frontal gamma during drug cues by
    ``1 + gamma_cue_gain*s``. Nuisance: 1/f background mixed by volume conduction,
    individual alpha frequency, per-subject and per-channel gains, blinks, line noise,
    muscle bursts, drift, motion transients and TMS pulse artifacts at the marker times.
    """

    def __init__(
        self,
        subject: SubjectParams,
        severity: float,
        cfg: SimulationConfig,
        events: list[Event],
        motion_times: np.ndarray,
        rng: np.random.Generator,
    ):
        self.fs = cfg.eeg_sfreq
        self.rng = rng
        n_ch = len(EEG_CHANNELS)
        eff, nui = cfg.effects, cfg.nuisance
        self.gains = subject.eeg_gain * np.asarray(subject.channel_gains)
        self.mix = eeg_mixing()
        self.pink = PinkNoise(self.fs, n_ch, rng)
        self.pink_uv = subject.pink_uv
        iaf = subject.iaf_hz
        self.rhythms = [
            # (noise, topography, amplitude uV, modulated by drug cue?)
            (
                BandNoise(subject.theta_hz - 1.0, subject.theta_hz + 1.0, self.fs, n_ch, rng),
                eeg_topography(("Fz", "FC1", "FC2"), 0.06),
                3.5 * (1 + eff.theta_gain * severity),
                False,
            ),
            (
                BandNoise(iaf - 1.0, iaf + 1.0, self.fs, n_ch, rng),
                eeg_topography(("O1", "Oz", "O2", "Pz"), 0.07),
                9.0 * (1 - eff.alpha_loss * severity),
                False,
            ),
            (
                BandNoise(15.0, 25.0, self.fs, n_ch, rng),
                eeg_topography(("C3", "Cz", "C4", "FC1", "FC2"), 0.06),
                2.5 * (1 + eff.beta_gain * severity),
                False,
            ),
            (
                BandNoise(*GAMMA_BAND_HZ, self.fs, n_ch, rng),
                eeg_topography(("Fp1", "Fp2", "F3", "Fz", "F4"), 0.06),
                0.8,
                True,
            ),
        ]
        self.gamma_drug_gain = 0.1 + eff.gamma_cue_gain * severity
        self.envelope = SlowNoise(0.3, self.fs, len(self.rhythms), rng)
        self.drift = SlowNoise(0.05, self.fs, n_ch, rng)
        self.drift_uv = nui.drift_uv
        self.line_amp = nui.line_uv * rng.lognormal(0.0, 0.5, n_ch)
        self.line_phase = rng.uniform(0, 2 * np.pi, n_ch)
        self.line_freq = nui.line_freq
        self.drug = intervals(events, "cue/drug")
        self.cues = np.vstack([self.drug, intervals(events, "cue/neutral")])
        self.pulses = np.array([e.onset for e in events if e.label == "rtms/pulse"])
        self.tms_topo = eeg_topography("F3", 0.07) * nui.tms_artifact_uv
        self.tms_sign = np.sign(rng.standard_normal(n_ch))
        duration = events[-1].onset + events[-1].duration + 60.0 if events else 3600.0
        self.blinks = self._poisson(nui.blinks_per_min, duration)
        self.blink_amp = rng.uniform(80.0, 200.0, self.blinks.size)
        self.blink_topo = eeg_topography(("Fp1", "Fp2"), 0.05)
        self.muscle = self._poisson(nui.muscle_bursts_per_min, duration)
        self.muscle_len = rng.uniform(0.3, 1.5, self.muscle.size)
        self.muscle_side = rng.integers(0, 2, self.muscle.size)
        self.muscle_seed = rng.integers(0, 2**31 - 1, self.muscle.size)
        self.muscle_topo = [
            eeg_topography(("T7", "TP9", "F7"), 0.05),
            eeg_topography(("T8", "TP10", "F8"), 0.05),
        ]
        self.motion = motion_times
        self.motion_amp = rng.uniform(50.0, 150.0, (motion_times.size, n_ch)) * np.sign(
            rng.standard_normal((motion_times.size, n_ch))
        )
        self._hp = signal.butter(4, 20.0 / (self.fs / 2), btype="highpass", output="sos")

    def _poisson(self, per_min: float, duration: float) -> np.ndarray:
        n = self.rng.poisson(per_min * duration / 60.0)
        return np.sort(self.rng.uniform(0.0, duration, n))

    def __call__(self, t0: float, n: int) -> np.ndarray:
        """``(n, 32)`` EEG in uV for the ``n`` samples ``t0 + j / fs`` (``t0`` a sample time)."""
        t = t0 + np.arange(n) / self.fs
        x = self.pink(n) @ self.mix.T * self.pink_uv
        env = 1.0 + 0.35 * self.envelope(n)
        cue = indicator(t, self.cues)
        drug = indicator(t, self.drug)
        for k, (noise, topo, amp, drug_mod) in enumerate(self.rhythms):
            src = noise(n)
            shared = src[:, :1]
            gain = amp * env[:, k : k + 1]
            if k == 1:  # alpha blocks while looking at pictures
                gain = gain * (1.0 - 0.35 * cue[:, None])
            if drug_mod:
                gain = gain * (1.0 + self.gamma_drug_gain * drug[:, None])
            x += (0.8 * shared + 0.6 * src) * topo * gain
        x += self.drift(n) * self.drift_uv
        x += self.line_amp * self._mains(t)
        x = x * self.gains
        self._add_transients(x, t)
        return x

    def _mains(self, t: np.ndarray) -> np.ndarray:
        """``(n, 32)`` unit line noise: the mains and, below Nyquist, its third harmonic.

        A harmonic above Nyquist would alias into the EEG band (150 Hz shows at 100 Hz when
        sampling at 250 Hz); a real amplifier filters it out before sampling, so it is left
        out here.
        """
        wave = np.sin(2 * np.pi * self.line_freq * t[:, None] + self.line_phase)
        if 3 * self.line_freq < self.fs / 2:
            wave = wave + 0.3 * np.sin(
                2 * np.pi * 3 * self.line_freq * t[:, None] + self.line_phase
            )
        return wave

    def _add_transients(self, x: np.ndarray, t: np.ndarray) -> None:
        t_start, t_end = t[0], t[-1] + 1.0 / self.fs
        for onset, amp in zip(self.blinks, self.blink_amp, strict=False):
            if onset - 0.3 < t_end and onset + 0.3 > t_start:
                u = np.clip((t - onset) / 0.3, -1, 1)
                x += (amp * 0.5 * (1 + np.cos(np.pi * u)))[:, None] * self.blink_topo
        for onset, length, side, seed in zip(
            self.muscle, self.muscle_len, self.muscle_side, self.muscle_seed, strict=False
        ):
            if onset < t_end and onset + length > t_start:
                burst_n = int(length * self.fs)
                burst = signal.sosfiltfilt(
                    self._hp, np.random.default_rng(seed).standard_normal(burst_n)
                )
                idx = np.round((t - onset) * self.fs).astype(int)
                inside = (idx >= 0) & (idx < burst_n)
                x[inside] += 15.0 * burst[idx[inside], None] * self.muscle_topo[side]
        for onset, amp in zip(self.motion, self.motion_amp, strict=False):
            if onset < t_end and onset + 1.5 > t_start:
                dt = t - onset
                shape = np.where(dt >= 0, np.exp(-np.clip(dt, 0, None) / 0.3), 0.0)
                x += shape[:, None] * amp
        for onset in self.pulses[(self.pulses < t_end) & (self.pulses + 0.1 > t_start)]:
            dt = t - onset
            after = dt >= 0
            shape = np.where(
                after,
                np.exp(-np.clip(dt, 0, None) / 0.003) + 0.05 * np.exp(-np.clip(dt, 0, None) / 0.02),
                0.0,
            )
            x += shape[:, None] * self.tms_topo * self.tms_sign
