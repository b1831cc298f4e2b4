"""``--broker mqtt://host:port`` (or ``mqtts://``) as configuration overrides."""

from __future__ import annotations

from urllib.parse import urlsplit

from contract.errors import ConfigError


def broker_overrides(url: str, section: str) -> dict[str, object]:
    """The host, port and TLS keys of configuration ``section`` (``mqtt``, ``broker``)."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise ConfigError(
            f"--broker {url!r} is not a broker URL.",
            key=f"{section}.host",
            fix="write it as mqtt://HOST:PORT (or mqtts://HOST:PORT for TLS).",
        )
    if parts.username or parts.password:
        raise ConfigError(
            f"--broker {parts.scheme}://{parts.hostname}... carries credentials.",
            key=f"{section}.username",
            fix=f"pass them with NEUROCLIP_<COMMAND>__{section.upper()}__USERNAME and "
            "__PASSWORD (or a password file): a command line is visible to every user.",
        )
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(
            f"--broker {url!r} has an invalid port.",
            key=f"{section}.port",
            fix="write it as mqtt://HOST:PORT with PORT between 1 and 65535.",
        ) from None
    tls = parts.scheme == "mqtts"
    return {
        f"{section}.host": parts.hostname,
        f"{section}.port": port or (8883 if tls else 1883),
        f"{section}.tls": tls,
    }
