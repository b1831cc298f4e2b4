"""How a program reaches the MQTT broker: one set of connection settings for every client.

The monitor (``mqtt`` section of its configuration) and the dashboard (``broker`` section)
both subclass :class:`BrokerConnection`, so host, port, credentials, TLS and the topic root
mean the same thing, are checked the same way and open the same kind of TLS context.
Passwords come from the environment or a file, never from a YAML under version control.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from contract.messages import TOPIC_ROOT, valid_topic_root
from contract.settings import InvalidSettingError, read_secret, setting


@dataclass(frozen=True)
class BrokerConnection:
    """Where the broker is and how to log in."""

    section: ClassVar[str] = "broker"
    """The configuration section these settings live in (for messages)."""
    password_env: ClassVar[str] = "NEUROCLIP_BROKER_PASSWORD"
    """The environment variable that carries the password."""

    host: str = setting("127.0.0.1")
    port: int = setting(1883, ge=1, le=65535)
    username: str | None = setting(None)
    password: str | None = setting(None, doc="from the environment only", secret=True)
    password_file: Path | None = setting(None, doc="file holding the password")
    tls: bool = setting(False, doc="connect with TLS")
    ca_file: Path | None = setting(None, doc="CA certificate for TLS (none = system store)")
    topic_root: str = setting(TOPIC_ROOT)
    reconnect_max_s: float = setting(5.0, gt=0, le=300, doc="ceiling of the reconnect backoff")

    def check(self) -> None:
        """The topic root must be a plain topic (no wildcards, no leading or trailing '/')."""
        if not valid_topic_root(self.topic_root):
            raise InvalidSettingError(
                "topic_root", "a topic without wildcards or edge '/'", self.topic_root
            )

    def url(self) -> str:
        """``mqtt://host:port`` (or ``mqtts://``), for messages; never the credentials."""
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"

    def secret(self) -> str | None:
        """The password from ``password`` or ``password_file`` (never logged)."""
        return read_secret(
            self.password,
            self.password_file,
            key=f"{self.section}.password_file",
            env_var=self.password_env,
        )

    def tls_context(self) -> ssl.SSLContext | None:
        """A verifying TLS context (the configured CA, else the system's), or ``None``."""
        if not self.tls:
            return None
        return ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
