"""Configuration of ``neuroclip dashboard``: where to listen, which broker, who may look.

``configs/dashboard.yaml`` restates these defaults. Every key can be overridden with
``NEUROCLIP_DASHBOARD__<SECTION>__<KEY>``; the basic-auth password and the broker password
belong there (``NEUROCLIP_DASHBOARD__AUTH__PASSWORD``, ``NEUROCLIP_DASHBOARD__BROKER__PASSWORD``)
or in a file, never in a YAML under version control.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from contract.broker import BrokerConnection
from contract.errors import ConfigError
from contract.messages import valid_topic_root
from contract.settings import InvalidSettingError, read_secret, setting


@dataclass(frozen=True)
class HttpConfig:
    """Where the page is served."""

    host: str = setting("127.0.0.1", doc="address to bind; anything but loopback needs auth")
    port: int = setting(8050, ge=1, le=65535)
    threads: int = setting(8, ge=1, le=64, doc="request threads (one per open page is plenty)")


@dataclass(frozen=True)
class RefreshConfig:
    """How often open pages ask for news."""

    score_ms: int = setting(400, ge=100, le=10000, doc="score trace (extendData) period")
    panels_ms: int = setting(1000, ge=200, le=60000, doc="sessions, quality, health, summary")


@dataclass(frozen=True)
class BrokerConfig(BrokerConnection):
    """The MQTT broker the monitors publish to (see :class:`contract.broker.BrokerConnection`)."""

    password_env: ClassVar[str] = "NEUROCLIP_DASHBOARD__BROKER__PASSWORD"


@dataclass(frozen=True)
class AuthConfig:
    """Optional HTTP basic auth; on when a username is set."""

    username: str | None = setting(None, doc="NEUROCLIP_DASHBOARD__AUTH__USERNAME")
    password: str | None = setting(
        None, doc="from NEUROCLIP_DASHBOARD__AUTH__PASSWORD only", secret=True
    )
    password_file: Path | None = setting(None, doc="file holding the password")

    def credentials(self) -> tuple[str, str] | None:
        """``(username, password)`` or None when auth is off."""
        if self.username is None:
            return None
        secret = read_secret(
            self.password,
            self.password_file,
            key="auth.password_file",
            env_var="NEUROCLIP_DASHBOARD__AUTH__PASSWORD",
        )
        if not secret:
            raise ConfigError(
                f"auth.password_file {self.password_file} is empty.",
                key="auth.password_file",
                fix="write the password into the file, or set NEUROCLIP_DASHBOARD__AUTH__PASSWORD.",
            )
        return self.username, secret


@dataclass(frozen=True)
class DashboardConfig:
    """Everything ``neuroclip dashboard`` needs."""

    http: HttpConfig = HttpConfig()
    refresh: RefreshConfig = RefreshConfig()
    broker: BrokerConfig = BrokerConfig()
    auth: AuthConfig = AuthConfig()
    allow_open: bool = setting(
        False, doc="allow a non-loopback http.host without auth (a trusted network only)"
    )
    sessions_dir: Path | None = setting(
        None,
        doc="the monitors' session-log folder on this machine (their log.dir): finished "
        "sessions get a report link; null: no reports",
    )

    def check(self) -> None:
        """A page reachable from the network must ask for a password, unless told not to."""
        if not valid_topic_root(self.broker.topic_root):
            raise InvalidSettingError(
                "broker.topic_root", "a topic without wildcards or edge '/'", self.broker.topic_root
            )
        if self.auth.username is not None and not (self.auth.password or self.auth.password_file):
            raise InvalidSettingError(
                "auth.password",
                "a password with auth.username (NEUROCLIP_DASHBOARD__AUTH__PASSWORD or "
                "auth.password_file)",
                None,
            )
        if self.auth.username is None and not self.allow_open and not _is_loopback(self.http.host):
            raise InvalidSettingError(
                "http.host",
                "a loopback address (127.0.0.1, ::1, localhost) unless auth.username is set "
                "or allow_open is true",
                self.http.host,
            )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
