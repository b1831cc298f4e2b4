"""The one exceptions module of NeuroCLIP Monitor.

Every error a user can cause derives from :class:`NeuroclipError`, so the CLI can turn it
into one clear message and an exit code instead of a traceback::

    NeuroclipError                 anything the user can fix
    ├── ConfigError                a configuration value is missing, unknown or invalid
    ├── InputDataError             a recording or dataset cannot be used as given
    │   ├── RecordingNotFoundError the file or folder does not exist
    │   ├── RecordingFormatError   the file exists but cannot be read as a recording
    │   ├── ChannelError           channels are unknown, missing or lack metadata
    │   ├── SignalValueError       samples are NaN, infinite or otherwise unusable
    │   ├── TooShortError          a recording is shorter than what is asked of it
    │   └── DatasetError           a BIDS dataset lacks what the contract requires
    ├── TrainingFailedError        training produced a constant model
    ├── BundleError                a model bundle is missing, tampered with or does not fit
    └── OutputError                a result cannot be written where it was asked

Each exception carries the message plus structured fields (``path``, ``key``...) so that
callers and logs can use them without parsing the text.
"""

from __future__ import annotations

from pathlib import Path


class NeuroclipError(Exception):
    """Base class: an error the user can act on.

    Parameters
    ----------
    message
        What went wrong, what was expected and what was found.
    fix
        What to do about it; appended to the message as ``Fix: ...``.
    path
        The file or folder concerned, when there is one.
    """

    exit_code = 2

    def __init__(self, message: str, *, fix: str | None = None, path: str | Path | None = None):
        self.message = message
        self.fix = fix
        self.path = None if path is None else Path(path)
        text = message if fix is None else f"{message}\nFix: {fix}"
        super().__init__(text)


class ConfigError(NeuroclipError):
    """A configuration value is missing, unknown or out of range."""

    def __init__(
        self,
        message: str,
        *,
        key: str,
        fix: str | None = None,
        path: str | Path | None = None,
    ):
        self.key = key
        super().__init__(message, fix=fix, path=path)


class InputDataError(NeuroclipError):
    """A recording or dataset cannot be used as given."""


class RecordingNotFoundError(InputDataError):
    """The recording file or dataset folder does not exist."""


class RecordingFormatError(InputDataError):
    """The file exists but cannot be read as a recording of a supported format."""


class ChannelError(InputDataError):
    """Channels are unknown, missing, or lack metadata such as fNIRS wavelengths."""


class SignalValueError(InputDataError):
    """Samples are NaN, infinite, or otherwise unusable where finite values are required."""


class TooShortError(InputDataError):
    """A recording is shorter than the window or the duration asked of it."""


class DatasetError(InputDataError):
    """A BIDS dataset does not follow the dataset contract of DESIGN.md."""


class TrainingFailedError(NeuroclipError):
    """Training produced a model that carries no evidence (a constant output)."""


class BundleError(NeuroclipError):
    """A model bundle is missing, tampered with, or does not fit the data or streams."""

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        fix: str | None = None,
        path: str | Path | None = None,
    ):
        self.field = field
        super().__init__(message, fix=fix, path=path)


class OutputError(NeuroclipError):
    """A result cannot be written where it was asked (exists, not writable, disk full)."""
