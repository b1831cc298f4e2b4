"""Readers: BIDS sessions, XDF recordings and single files MNE reads, into :mod:`models.signals`."""

from models.io.bids import BidsDataset, SessionInfo
from models.io.checks import require_channels, require_duration, require_finite
from models.io.files import read_recording

__all__ = [
    "BidsDataset",
    "SessionInfo",
    "read_recording",
    "require_channels",
    "require_duration",
    "require_finite",
]
