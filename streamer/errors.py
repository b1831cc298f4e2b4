"""Errors of the live path; all derive from :class:`contract.errors.NeuroclipError`.

::

    NeuroclipError
    └── StreamNotFoundError   a configured LSL stream did not appear in time (role, match)
"""

from __future__ import annotations

from contract.errors import NeuroclipError


class StreamNotFoundError(NeuroclipError):
    """No LSL stream matched the configuration within the resolve timeout.

    ``missing`` maps each role that did not appear (``eeg``, ``nirs``, ``markers``) to the
    match it was looked for with, so one refusal names every missing stream at once.
    """

    def __init__(self, missing: dict[str, str], timeout_s: float):
        self.missing = dict(missing)
        lines = [
            f"No LSL {role.upper()} stream matching {match} appeared within {timeout_s:g} s."
            for role, match in self.missing.items()
        ]
        sections = ", ".join(f"streams.{role}" for role in self.missing)
        super().__init__(
            " ".join(lines),
            fix=f"start the acquisition software (or 'neuroclip simulate --live'), check "
            f"{sections} in the monitor configuration, and check that LSL discovery "
            "reaches the device (LSLAPICFG, firewall, same network).",
        )
