"""The simulation's configuration schema (``configs/simulate.yaml`` restates its defaults)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from contract.settings import InvalidSettingError, setting


@dataclass(frozen=True)
class CohortConfig:
    """Who is simulated, and for how long."""

    ma: int = setting(16, ge=0, doc="methamphetamine-dependent subjects (pre and post rTMS)")
    hc: int = setting(16, ge=0, doc="healthy controls (one session)")
    minutes: float = setting(6.0, gt=0, doc="length of each session in minutes")
    seed: int = setting(20250101, ge=0, doc="seed of the whole cohort")
    rtms_in_sessions: bool = setting(
        False, doc="include an rTMS block (with pulse artifacts) in every recorded session"
    )

    def check(self) -> None:
        """At least one subject."""
        if self.ma + self.hc < 1:
            raise InvalidSettingError("ma", "ma + hc >= 1", self.ma)


@dataclass(frozen=True)
class ProtocolConfig:
    """The cue-reactivity protocol, with an optional rTMS block.

    The defaults are the recorded cohort's (and ``neuroclip simulate --live``'s) protocol;
    :data:`COMPRESSED_PROTOCOL` is the shorter one ``neuroclip demo`` streams.
    """

    baseline_s: float = setting(60.0, gt=0, doc="resting baseline at the start (at most)")
    cue_block_s: float = setting(20.0, gt=0, doc="one block of drug or neutral pictures")
    rest_s: float = setting(15.0, gt=0, doc="rest after each cue block")
    rtms_trains: int = setting(6, ge=1, doc="trains in an rTMS block")
    rtms_train_s: float = setting(4.0, gt=0, doc="train length (10 Hz pulses)")
    rtms_iti_s: float = setting(26.0, gt=0, doc="inter-train interval")
    rtms_freq_hz: float = setting(10.0, gt=0, doc="pulse rate within a train")
    cue_blocks_before_rtms: int | None = setting(
        None,
        ge=0,
        doc="cue blocks before the rTMS block, drug and neutral balanced on each side of it "
        "(null: half of the session's blocks, in one shuffled order)",
    )


COMPRESSED_PROTOCOL = ProtocolConfig(
    baseline_s=60.0,
    cue_block_s=20.0,
    rest_s=10.0,
    rtms_trains=3,
    rtms_train_s=4.0,
    rtms_iti_s=16.0,
    cue_blocks_before_rtms=2,
)
"""The demo's protocol: every phase in :data:`COMPRESSED_SESSION_S` (4 minutes).

60 s resting baseline (longer than the monitor's 30 s warm-up plus its first 10 s window),
one drug and one neutral block (20 s, 10 s rest each), three 4 s trains of 10 Hz pulses
16 s apart, then one drug and one neutral block after the trains (the ``post`` phase)."""

COMPRESSED_SESSION_S = 240.0
"""Length of a session on :data:`COMPRESSED_PROTOCOL`: 60 + 2 x 30 + 3 x 20 + 2 x 30 s."""


@dataclass(frozen=True)
class EffectConfig:
    """How strongly latent severity shows in each modality (relative changes at severity 1)."""

    theta_gain: float = setting(0.45, ge=0, doc="resting theta amplitude, +x at severity 1")
    alpha_loss: float = setting(0.35, ge=0, lt=1, doc="resting alpha amplitude, -x at severity 1")
    beta_gain: float = setting(0.35, ge=0, doc="resting beta amplitude, +x at severity 1")
    gamma_cue_gain: float = setting(1.2, ge=0, doc="drug-cue frontal gamma, +x at severity 1")
    hbo_cue_um: float = setting(0.4, ge=0, doc="HbO response to any cue block, uM")
    hbo_drug_um: float = setting(0.8, ge=0, doc="extra drug-cue HbO response at severity 1, uM")
    hbr_ratio: float = setting(0.3, ge=0, le=1, doc="HbR response as a fraction of -HbO")


@dataclass(frozen=True)
class NuisanceConfig:
    """Artifacts and physiology unrelated to severity."""

    line_freq: float = setting(50.0, gt=0, doc="mains frequency in Hz")
    line_uv: float = setting(4.0, ge=0, doc="typical line-noise amplitude in uV")
    blinks_per_min: float = setting(12.0, ge=0)
    muscle_bursts_per_min: float = setting(2.0, ge=0)
    motion_per_min: float = setting(0.5, ge=0, doc="motion spikes affecting EEG and fNIRS")
    drift_uv: float = setting(5.0, ge=0, doc="EEG slow drift scale in uV")
    bad_nirs_pairs: int = setting(2, ge=0, doc="poorly coupled source-detector pairs per subject")
    tms_artifact_uv: float = setting(3000.0, ge=0, doc="TMS pulse artifact peak at the target")


@dataclass(frozen=True)
class ShortChannelConfig:
    """Short-separation fNIRS channels and the scalp signal they record (off by default).

    When enabled, each source gets a detector ``distance_mm`` away (``S1_D9``...), and a
    superficial haemodynamic signal per source (systemic Mayer, respiratory and cardiac
    waves, slow local scalp fluctuations and a task-evoked scalp response to every cue
    block) is added to the short channel of that source and to every long channel from it;
    short channels carry no cortical signal. Off, the output is bit for bit what it was
    before this option existed.
    """

    enabled: bool = setting(False, doc="add one short-separation detector beside each source")
    distance_mm: float = setting(
        8.0, gt=0, lt=15, doc="source to short-detector distance in mm (short: under 15 mm)"
    )
    superficial_gain: float = setting(
        1.0, ge=0, doc="scale of the whole scalp signal (0: short channels see only noise)"
    )
    scalp_cue_um: float = setting(
        0.3,
        ge=0,
        doc="scalp HbO response to a cue block in uM (skin blood flow), scaled per subject "
        "and cue kind, independent of group",
    )


@dataclass(frozen=True)
class FaultConfig:
    """One injected fault of ``neuroclip simulate --live``, for rehearsals and the fault suite.

    Data faults replace the samples of ``[start_s, start_s + duration_s)`` (simulated time) in
    ``channels`` (labels; empty means every channel): ``nan`` and ``inf`` bursts, ``flat`` (held
    at ``value``, default 0), ``rail`` (stuck at ``value``, default 200000 uV, an amplifier's
    rail) and ``saturate`` (fNIRS intensity stuck at ``value``, default 4x the channel's level,
    a saturated detector). ``clock_jump`` adds ``value`` seconds to every timestamp of the
    stream from ``start_s`` on, as a device whose clock is reset.
    """

    kind: Literal["nan", "inf", "flat", "rail", "saturate", "clock_jump"] = setting("nan")
    stream: Literal["eeg", "nirs"] = setting("eeg")
    start_s: float = setting(30.0, ge=0, doc="simulated second the fault starts")
    duration_s: float = setting(2.0, ge=0, doc="how long a data fault lasts")
    channels: tuple[str, ...] = setting((), doc="labels of the faulty channels (empty: all)")
    value: float | None = setting(None, doc="level, or the jump in seconds (clock_jump)")

    def check(self) -> None:
        """A clock jump needs its size; saturation is an fNIRS fault."""
        if self.kind == "clock_jump" and not self.value:
            raise InvalidSettingError("value", "a jump in seconds for clock_jump", self.value)
        if self.kind == "saturate" and self.stream != "nirs":
            raise InvalidSettingError("stream", "nirs for a saturate fault", self.stream)
        from models.simulation.montage import EEG_CHANNELS, nirs_channel_names

        # short-channel labels are known here; SimulationConfig refuses them when the
        # montage has no short channels
        known = EEG_CHANNELS if self.stream == "eeg" else tuple(nirs_channel_names(True))
        unknown = [c for c in self.channels if c not in known]
        if unknown:
            raise InvalidSettingError(
                "channels", f"labels of the {self.stream} stream ({', '.join(known)})", unknown
            )


@dataclass(frozen=True)
class LiveConfig:
    """The LSL outlets of ``neuroclip simulate --live``."""

    eeg_name: str = setting("NeuroCLIP-Sim-EEG")
    nirs_name: str = setting("NeuroCLIP-Sim-NIRS")
    markers_name: str = setting("NeuroCLIP-Sim-Markers")
    source_prefix: str = setting("neuroclip-sim", doc="source_id prefix of the three outlets")
    group: Literal["MA", "HC"] = setting("MA", doc="group of the streamed subject")
    severity: float = setting(0.7, ge=0, le=1, doc="latent severity of the streamed subject")
    rtms: bool = setting(True, doc="include an rTMS block")
    stage: Literal["pre", "post"] = setting(
        "pre",
        doc="treatment stage of the streamed session: post is the same subject after the "
        "rTMS course (severity shrunk by its response), with another cue order",
    )
    chunk_ms: float = setting(20.0, gt=0, le=1000, doc="push interval of the outlets")
    duration_s: float = setting(600.0, gt=0, doc="how long to stream")
    wait_for_consumer_s: float = setting(
        0.0, ge=0, doc="wait up to this long for a reader of every outlet before starting"
    )
    seed: int = setting(7, ge=0)
    speed: float = setting(
        1.0, gt=0, le=100, doc="simulated seconds per real second (stamped on a virtual clock)"
    )
    eeg_clock_ppm: float = setting(
        0.0, ge=-1000, le=1000, doc="EEG device clock error: samples come this much faster"
    )
    nirs_clock_ppm: float = setting(
        0.0, ge=-1000, le=1000, doc="fNIRS device clock error: samples come this much faster"
    )
    faults: tuple[FaultConfig, ...] = setting((), doc="faults to inject (see FaultConfig)")


@dataclass(frozen=True)
class SimulationConfig:
    """Everything ``neuroclip simulate`` needs."""

    eeg_sfreq: float = setting(500.0, gt=0, doc="EEG sampling rate in Hz")
    nirs_sfreq: float = setting(10.0, gt=0, doc="fNIRS sampling rate in Hz")
    cohort: CohortConfig = CohortConfig()
    protocol: ProtocolConfig = ProtocolConfig()
    effects: EffectConfig = EffectConfig()
    nuisance: NuisanceConfig = NuisanceConfig()
    short_channels: ShortChannelConfig = ShortChannelConfig()
    live: LiveConfig = LiveConfig()

    def check(self) -> None:
        """Each rate, whole-numbered or not (7.8125, 10.1725 Hz...), must carry its signal.

        A rate must be finite and above twice the fastest oscillation its generator
        produces, or that oscillation would alias: EEG gamma (44 Hz) and the mains, the
        fNIRS cardiac second harmonic (2.7 Hz).
        """
        from models.simulation.eeg import highest_eeg_hz
        from models.simulation.nirs import highest_nirs_hz

        _check_rate("eeg_sfreq", self.eeg_sfreq, highest_eeg_hz(self.nuisance.line_freq), "EEG")
        _check_rate("nirs_sfreq", self.nirs_sfreq, highest_nirs_hz(), "fNIRS")
        if not self.short_channels.enabled:
            from models.simulation.montage import nirs_channel_names

            long = set(nirs_channel_names())
            short = [
                c
                for f in self.live.faults
                if f.stream == "nirs"
                for c in f.channels
                if c not in long
            ]
            if short:
                raise InvalidSettingError(
                    "live.faults",
                    "fNIRS channels of the montage (short-separation ones need "
                    "short_channels.enabled)",
                    short,
                )


def _check_rate(key: str, rate: float, highest_hz: float, what: str) -> None:
    """Refuse a rate that is not finite or not above twice ``highest_hz`` (Nyquist)."""
    if not (math.isfinite(rate) and rate > 2.0 * highest_hz):
        raise InvalidSettingError(
            key,
            f"a finite rate above {2.0 * highest_hz:g} Hz (twice the fastest {what} "
            f"oscillation simulated, {highest_hz:g} Hz; fractional rates are fine)",
            rate,
        )
