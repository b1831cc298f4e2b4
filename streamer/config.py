"""Configuration of ``neuroclip monitor``: streams, model, outputs, validated at start-up.

``configs/monitor.yaml`` restates these defaults. Every key can be overridden with
``NEUROCLIP_MONITOR__<SECTION>__<KEY>`` (``NEUROCLIP_MONITOR__MQTT__PASSWORD`` for the broker
password, which never belongs in a file under version control) and by the CLI's flags.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

from contract.broker import BrokerConnection
from contract.messages import ID_RULE, valid_id
from contract.settings import InvalidSettingError, setting


@dataclass(frozen=True)
class StreamMatch:
    """Which LSL stream to read: every given field must match (unset fields are ignored)."""

    name: str | None = setting(None, doc="stream name")
    type: str | None = setting(None, doc="stream type (EEG, NIRS, Markers)")
    source_id: str | None = setting(None, doc="source_id of the outlet")

    def predicate(self) -> str:
        """The XPath predicate pylsl's ``resolve_bypred`` takes."""
        parts = [
            f"{key}='{value}'"
            for key, value in (
                ("name", self.name),
                ("type", self.type),
                ("source_id", self.source_id),
            )
            if value
        ]
        return " and ".join(parts)

    def describe(self) -> str:
        """``name='X' and type='EEG'``, for messages."""
        return self.predicate() or "any stream"

    def check(self) -> None:
        """At least one field, and no quote that would break the XPath predicate."""
        if not (self.name or self.type or self.source_id):
            raise InvalidSettingError("name", "at least one of name, type or source_id", None)
        for key in ("name", "type", "source_id"):
            if "'" in (getattr(self, key) or ""):
                raise InvalidSettingError(key, "text without single quotes", getattr(self, key))


@dataclass(frozen=True)
class StreamsConfig:
    """The three input streams and how long to look for them."""

    eeg: StreamMatch = StreamMatch(name="NeuroCLIP-Sim-EEG", type="EEG")
    nirs: StreamMatch = StreamMatch(name="NeuroCLIP-Sim-NIRS", type="NIRS")
    markers: StreamMatch = StreamMatch(name="NeuroCLIP-Sim-Markers", type="Markers")
    markers_required: bool = setting(
        False, doc="refuse to start without the marker stream (otherwise phase is 'unknown')"
    )
    resolve_timeout_s: float = setting(
        30.0, gt=0, doc="how long to wait at start for the EEG and NIRS streams"
    )
    stale_after_s: float = setting(
        2.0, gt=0, doc="a stream with no sample for this long is reported stale"
    )
    clock_sync_interval_s: float = setting(
        5.0, gt=0, doc="how often LSL time_correction is re-measured"
    )
    max_buffered_s: float = setting(
        360.0, gt=0, doc="samples LSL keeps for the monitor while it is busy"
    )
    pull_interval_s: float = setting(
        0.1,
        ge=0,
        le=1.0,
        doc="EEG and fNIRS are pulled this often while the next window does not need their "
        "data yet, and as it comes near a window's end (0: always as it comes)",
    )


@dataclass(frozen=True)
class ModelConfig:
    """Which bundle runs, and where."""

    bundle: Path | None = setting(None, doc="model bundle folder; none = the default model")
    providers: Literal["auto", "cpu", "cuda"] = setting(
        "auto", doc="ONNX Runtime provider: CUDA when present (auto), or forced"
    )
    threads: int = setting(1, ge=0, doc="ONNX Runtime intra-op threads (0 = its default)")


@dataclass(frozen=True)
class WindowOverrides:
    """Live overrides of the bundle's window settings (none = the bundle's)."""

    hop_s: float | None = setting(None, gt=0, doc="seconds between window ends")
    warmup_s: float | None = setting(None, ge=0, doc="seconds after a stream (re)start not scored")
    max_wait_s: float = setting(
        3.0, gt=0, doc="a window whose data is this late is published as unusable"
    )
    smoothing_windows: int = setting(
        5, ge=1, doc="span of the exponential moving average of usable scores"
    )
    phase_s: float | None = setting(
        None,
        ge=0,
        doc="window ends at whole hops plus this (s, below the hop); none = 0, or in a rooms "
        "file each room's share of the hop, so that rooms' windows do not fall due together",
    )


@dataclass(frozen=True)
class MqttConfig(BrokerConnection):
    """The MQTT broker the scores go to (see :class:`contract.broker.BrokerConnection`)."""

    section: ClassVar[str] = "mqtt"
    password_env: ClassVar[str] = "NEUROCLIP_MONITOR__MQTT__PASSWORD"

    enabled: bool = setting(True)
    reconnect_max_s: float = setting(10.0, gt=0, doc="ceiling of the reconnect backoff")
    keepalive_s: int = setting(
        10, ge=2, le=3600, doc="MQTT keepalive; the last will fires after 1.5x"
    )
    queue_max: int = setting(10000, ge=1, doc="scores held while the broker is unreachable")


@dataclass(frozen=True)
class LslOutConfig:
    """The LSL score stream (JSON score messages, stamped with the window end)."""

    enabled: bool = setting(True)
    name: str = setting("NeuroCLIP-Scores", doc="stream name; the session id is appended")


@dataclass(frozen=True)
class LogConfig:
    """The session log: the record of truth, one JSON line per score."""

    dir: Path = setting(Path("sessions"), doc="folder of the session logs")
    fsync: bool = setting(False, doc="fsync after every line (slower; survives power loss)")


@dataclass(frozen=True)
class MonitorConfig:
    """Everything ``neuroclip monitor`` needs."""

    site: str = setting("site1", doc="site or room name (a topic level)")
    session: str = setting("S001", doc="pseudonymous session id; never a patient name")
    duration_s: float | None = setting(None, gt=0, doc="stop after this long (none = until Ctrl-C)")
    status_interval_s: float = setting(5.0, gt=0, doc="status message and health log period")
    streams: StreamsConfig = StreamsConfig()
    model: ModelConfig = ModelConfig()
    windows: WindowOverrides = WindowOverrides()
    mqtt: MqttConfig = MqttConfig()
    lsl_out: LslOutConfig = LslOutConfig()
    log: LogConfig = LogConfig()

    def check(self) -> None:
        """Site and session become topic levels and file names: keep them plain."""
        for key in ("site", "session"):
            value = getattr(self, key)
            if not valid_id(value):
                raise InvalidSettingError(key, ID_RULE, value)
