"""What the window pipeline is fed: a stream's description and chunks of its samples.

Plain data, no transport: the LSL layer, the XDF/BIDS readers and the tests all build these,
so the pipeline never learns where samples came from.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.io.stream_desc import StreamLayout


@dataclass(frozen=True)
class StreamDescription:
    """What a connected stream offers: identity, rate and channel layout."""

    name: str
    type: str
    source_id: str
    hostname: str
    nominal_rate: float
    channel_count: int
    string: bool
    layout: StreamLayout | None
    """``None`` for string (marker) streams."""


@dataclass(frozen=True)
class Chunk:
    """Samples pulled at once from one inlet, stamped on the local LSL clock."""

    role: str
    segment: int
    data: np.ndarray | list[str]
    """``(n, n_data_channels)`` float64 in the signal contract's units, or marker strings."""
    stamps: np.ndarray
    """``(n,)`` LSL timestamps, corrected to this machine's clock."""
    received: float
    """Local LSL clock when the chunk was pulled."""
    gap_before: int = 0
    """Samples missing between the previous chunk and this one (from the counter)."""
    duplicates: int = 0
    """Samples dropped from this chunk because the counter had already seen them."""
