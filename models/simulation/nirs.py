"""Streaming fNIRS generator: HbO/HbR from physiology and cues, turned into raw intensity."""

from __future__ import annotations

import numpy as np
from scipy import stats

from models.extinction import absorption_coefficients
from models.simulation.config import SimulationConfig
from models.simulation.montage import NIRS_SOURCES, NIRS_WAVELENGTHS, nirs_pairs, short_pairs
from models.simulation.noise import SlowNoise
from models.simulation.protocol import Event, indicator, intervals
from models.simulation.subject import HEART_HZ, SubjectParams
from models.simulation.timing import samples_before

SIMULATION_PPF = 6.0
"""Partial pathlength factor of the forward model; the same default as the analysis."""

_REGION_WEIGHT = {"DLPFC-L": 1.0, "DLPFC-R": 0.9, "OFC-L": 0.85, "OFC-R": 0.85, "FP": 0.75}


def highest_nirs_hz() -> float:
    """The fastest oscillation that must survive sampling: the cardiac second harmonic.

    The pulse shape carries its second harmonic (``0.4 sin(2 phase)``), up to twice the
    fastest heart rate drawn; the rate must exceed twice this.
    """
    return 2.0 * HEART_HZ[1]


def canonical_hrf(sfreq: float, length_s: float = 30.0) -> np.ndarray:
    """SPM's double-gamma haemodynamic response, peak scaled to 1.

    Sampled at ``k / sfreq`` for every ``k`` before ``length_s`` (counted exactly, as a
    float ``arange`` step may add or drop the last sample at a fractional rate).
    """
    t = np.arange(samples_before(length_s, sfreq)) * (1.0 / sfreq)
    h = stats.gamma.pdf(t, 6.0) - stats.gamma.pdf(t, 16.0) / 6.0
    return h / h.max()


class NirsGenerator:
    """Raw CW intensity at 760 and 850 nm for every pair, produced in consecutive calls.

    HbO/HbR (uM) sum systemic physiology (cardiac, respiratory, Mayer waves), a slow drift,
    cue responses (the canonical HRF convolved with the cue blocks; drug cues add
    ``hbo_drug_um * severity``, HbR mirrors HbO by ``-hbr_ratio``) and a small DLPFC response
    to rTMS trains. The modified Beer-Lambert law (ppf 6, Prahl coefficients) turns them into
    optical density and intensity; motion dips the intensity, and poorly coupled pairs carry
    little physiology and much independent noise, so their scalp coupling index is low.

    With ``short_channels.enabled`` a :class:`ScalpSignal` adds the scalp's haemodynamics to
    every long pair from its source and gives the short pairs (columns after the long
    ones) that signal alone; it draws from ``scalp_rng`` and its own subject-level stream,
    never from ``rng``, so the long pairs' other components stay those of the session
    without short channels.
    """

    def __init__(
        self,
        subject: SubjectParams,
        severity: float,
        cfg: SimulationConfig,
        events: list[Event],
        motion_times: np.ndarray,
        duration_s: float,
        rng: np.random.Generator,
        scalp_rng: np.random.Generator | None = None,
    ):
        self.fs = cfg.nirs_sfreq
        self.rng = rng
        pairs = nirs_pairs()
        n_pairs = len(pairs)
        eff = cfg.effects
        self.subject = subject
        n_total = int(np.ceil((duration_s + 60.0) * self.fs))
        t_all = np.arange(n_total) / self.fs
        hrf = canonical_hrf(self.fs)
        drug = np.convolve(indicator(t_all, intervals(events, "cue/drug")), hrf)[:n_total] / self.fs
        neutral = (
            np.convolve(indicator(t_all, intervals(events, "cue/neutral")), hrf)[:n_total] / self.fs
        )
        trains = (
            np.convolve(indicator(t_all, intervals(events, "rtms/train_start")), hrf)[:n_total]
            / self.fs
        )
        # normalise so a 20 s block peaks near the configured amplitude
        norm = 1.0 / max(np.convolve(np.ones(round(20 * self.fs)), hrf).max() / self.fs, 1e-9)
        weights = np.array([_REGION_WEIGHT[p.region] for p in pairs]) * rng.lognormal(
            0, 0.15, n_pairs
        )
        self.task_hbo = norm * np.outer(
            eff.hbo_cue_um * (drug + neutral) + eff.hbo_drug_um * severity * drug, weights
        )
        tms_w = np.array([1.0 if p.region == "DLPFC-L" else 0.2 for p in pairs])
        self.task_hbo += norm * 0.2 * np.outer(trains, tms_w)
        self.hbr_ratio = eff.hbr_ratio
        self.phys_w = rng.uniform(0.7, 1.3, (3, n_pairs))
        self.bad = np.array([p.name in subject.bad_pairs for p in pairs])
        self.coupling = np.where(self.bad, 0.05, 1.0)
        self.phase = rng.uniform(0, 2 * np.pi, 3)
        self.rate_jitter = SlowNoise(0.02, self.fs, 3, rng)
        self.mayer_env = SlowNoise(0.05, self.fs, 1, rng)
        self.drift = SlowNoise(0.005, self.fs, 2 * n_pairs, rng)
        self.freqs = np.array([subject.heart_hz, subject.resp_hz, subject.mayer_hz])
        self.amps = np.array([0.25, 0.15, 0.35])  # HbO uM: cardiac, respiratory, Mayer
        abs_coef = absorption_coefficients(NIRS_WAVELENGTHS)  # (2 wl, 2 chromophores)
        # forward model per pair: OD = E d ppf @ Hb[M] * 1e3 = E d ppf @ Hb[uM] * 1e-3
        self.forward = np.stack([abs_coef * p.distance_m * SIMULATION_PPF * 1e-3 for p in pairs])
        self.i0 = rng.uniform(0.05, 1.0, (n_pairs, 2)) * np.where(self.bad, 0.2, 1.0)[:, None]
        self.noise_rel = np.where(self.bad, 0.03, 0.0015)[:, None] * np.ones((1, 2))
        self.motion = motion_times
        self.motion_depth = rng.uniform(0.05, 0.3, motion_times.size)
        self._k = 0
        self.scalp: ScalpSignal | None = None
        if cfg.short_channels.enabled:
            self.scalp = ScalpSignal(
                subject,
                cfg,
                norm * drug,
                norm * neutral,
                self.coupling,
                scalp_rng if scalp_rng is not None else np.random.default_rng([subject.seed, 1]),
            )

    def __call__(self, t0: float, n: int) -> np.ndarray:
        """``(n, 2 * n_pairs)`` intensity for the ``n`` samples ``t0 + j / fs`` that follow
        the previous call's; columns ``S_D 760, S_D 850`` per pair, long pairs first, then
        the short ones when the montage has them."""
        t = t0 + np.arange(n) / self.fs
        jitter = 1.0 + 0.04 * self.rate_jitter(n)
        phases = self.phase + 2 * np.pi * np.cumsum(self.freqs * jitter, axis=0) / self.fs
        self.phase = phases[-1] % (2 * np.pi)
        cardiac_shape = np.sin(phases[:, 0]) + 0.4 * np.sin(2 * phases[:, 0] + 0.5)
        mayer = np.sin(phases[:, 2]) * (1.0 + 0.5 * self.mayer_env(n)[:, 0])
        systemic = (
            self.amps[0] * cardiac_shape[:, None] * self.phys_w[0]
            + self.amps[1] * np.sin(phases[:, 1])[:, None] * self.phys_w[1]
            + self.amps[2] * mayer[:, None] * self.phys_w[2]
        )
        idx = np.clip(self._k + np.arange(n), 0, self.task_hbo.shape[0] - 1)
        self._k += n
        drift = self.drift(n) * 0.4
        n_pairs = self.i0.shape[0]
        hbo = (systemic + self.task_hbo[idx]) * self.coupling + drift[:, :n_pairs]
        hbr = (
            -0.25 * systemic - self.hbr_ratio * self.task_hbo[idx]
        ) * self.coupling + 0.5 * drift[:, n_pairs:]
        if self.scalp is not None:
            scalp_long, scalp_short = self.scalp(idx, phases, cardiac_shape, mayer)
            hbo = hbo + scalp_long[..., 0]
            hbr = hbr + scalp_long[..., 1]
        hb = np.stack([hbo, hbr], axis=2)  # (n, pairs, 2)
        od = np.einsum("pwc,npc->npw", self.forward, hb)
        motion = np.ones(n)
        for onset, depth in zip(self.motion, self.motion_depth, strict=False):
            if onset < t[-1] + 1 / self.fs and onset + 2.0 > t[0]:
                u = np.clip((t - onset) / 1.0, -1, 1)
                motion *= 1.0 - depth * 0.5 * (1 + np.cos(np.pi * u)) * (np.abs(t - onset) < 1.0)
        intensity = self.i0[None] * np.exp(-od) * motion[:, None, None]
        intensity *= 1.0 + self.noise_rel[None] * self.rng.standard_normal(intensity.shape)
        if self.scalp is not None:
            short = self.scalp.intensity(scalp_short, motion)
            return np.concatenate([intensity, short], axis=1).reshape(n, -1)
        return intensity.reshape(n, -1)


class ScalpSignal:
    """The superficial (scalp) haemodynamics seen by short-separation channels.

    One signal per source, in uM of HbO: the systemic waves of the session (Mayer, the
    respiratory and the cardiac oscillation: the generator's own phases, so they are the
    same physiology the long pairs already carry), a slow fluctuation shared by the whole
    scalp, a slow local one per source (corners 0.03 and 0.02 Hz) and a task-evoked scalp
    response to every cue block (skin blood flow; the cortical HRF's shape). Its size per
    cue kind is ``scalp_cue_um`` times a lognormal factor (sd 0.5) drawn per subject,
    independently of group and severity, so drug and neutral cues differ on the scalp by an
    amount unrelated to dependence. HbR is -0.2 times HbO. Everything is scaled by
    ``superficial_gain``.

    A long pair gets its source's signal times a coupling drawn per pair (0.8-1.2, and the
    pair's poor coupling where it has one); a short pair gets it alone (no cortex), through
    the same Beer-Lambert forward model at its distance, with a third of a long pair's
    relative instrument noise (a short pair receives more light).
    """

    AMPS = (0.4, 0.15, 0.3)
    """HbO uM at gain 1: Mayer, respiratory, cardiac."""
    SLOW_UM = (0.2, 0.25)
    """HbO uM at gain 1: slow fluctuation shared by the scalp, local one per source."""
    HBR_RATIO = 0.2

    def __init__(
        self,
        subject: SubjectParams,
        cfg: SimulationConfig,
        drug: np.ndarray,
        neutral: np.ndarray,
        coupling: np.ndarray,
        rng: np.random.Generator,
    ):
        sc = cfg.short_channels
        fs = cfg.nirs_sfreq
        n_sources = len(NIRS_SOURCES)
        long = nirs_pairs()
        shorts = short_pairs(sc.distance_mm / 1000.0)
        self.gain = sc.superficial_gain
        # the person: how strongly each source's scalp shows each wave and the cues
        person = np.random.default_rng([subject.seed, 0x5CA1])
        self.weights = person.uniform(0.7, 1.3, (3, n_sources))
        self.cue_weights = person.uniform(0.7, 1.3, n_sources)
        self.cue_gain = sc.scalp_cue_um * person.lognormal(0.0, 0.5, 2)  # drug, neutral
        self.cue = self.cue_gain[0] * drug + self.cue_gain[1] * neutral
        """``(n_total,)`` the scalp cue response at gain 1 and source weight 1, in uM."""
        # the session
        self.rng = rng
        self.shared = SlowNoise(0.03, fs, 1, rng)
        self.local = SlowNoise(0.02, fs, n_sources, rng)
        source_of = np.array([p.source for p in long]) - 1
        self.long_map = source_of
        self.long_coupling = rng.uniform(0.8, 1.2, len(long)) * coupling
        abs_coef = absorption_coefficients(NIRS_WAVELENGTHS)
        self.forward = np.stack([abs_coef * p.distance_m * SIMULATION_PPF * 1e-3 for p in shorts])
        # brighter than long pairs (less tissue), so less relative noise
        self.i0 = rng.uniform(0.5, 2.0, (len(shorts), 2))
        self.noise_rel = 0.0005

    def __call__(
        self, idx: np.ndarray, phases: np.ndarray, cardiac: np.ndarray, mayer: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(n, n_long, 2)`` and ``(n, n_sources, 2)`` HbO/HbR in uM: the scalp's share of
        each long pair and each short pair's whole signal."""
        n = idx.size
        waves = (
            self.AMPS[0] * mayer[:, None] * self.weights[0]
            + self.AMPS[1] * np.sin(phases[:, 1])[:, None] * self.weights[1]
            + self.AMPS[2] * cardiac[:, None] * self.weights[2]
        )
        slow = self.SLOW_UM[0] * self.shared(n) + self.SLOW_UM[1] * self.local(n)
        hbo = self.gain * (waves + slow + self.cue[idx][:, None] * self.cue_weights)
        scalp = np.stack([hbo, -self.HBR_RATIO * hbo], axis=2)  # (n, sources, 2)
        return scalp[:, self.long_map] * self.long_coupling[None, :, None], scalp

    def intensity(self, hb: np.ndarray, motion: np.ndarray) -> np.ndarray:
        """``(n, n_short, 2)`` raw intensity of the short pairs from their HbO/HbR."""
        od = np.einsum("pwc,npc->npw", self.forward, hb)
        out = self.i0[None] * np.exp(-od) * motion[:, None, None]
        return out * (1.0 + self.noise_rel * self.rng.standard_normal(out.shape))
