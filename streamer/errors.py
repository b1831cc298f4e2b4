"""Errors of the live path; all derive from :class:`models.errors.NeuroclipError`.

::

    NeuroclipError
    ├── StreamNotFoundError   a configured LSL stream did not appear in time (role, match)
    └── MonitorError          the monitor cannot go on (a reader failed, the log cannot open)
"""

from __future__ import annotations

from models.errors import NeuroclipError


class StreamNotFoundError(NeuroclipError):
    """No LSL stream matched the configuration within the resolve timeout."""

    def __init__(self, role: str, match: str, timeout_s: float):
        self.role = role
        self.match = match
        super().__init__(
            f"No LSL {role.upper()} stream matching {match} appeared within {timeout_s:g} s.",
            fix=f"start the acquisition software (or 'neuroclip simulate --live'), check "
            f"streams.{role} in the monitor configuration, and check that LSL discovery "
            "reaches the device (LSLAPICFG, firewall, same network).",
        )


class MonitorError(NeuroclipError):
    """The live path cannot continue."""
