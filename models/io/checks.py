"""Checks on recordings that turn unusable input into one clear error."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from contract.errors import ChannelError, SignalValueError, TooShortError
from models.signals import SignalBlock


def require_finite(block: SignalBlock, source: str | Path) -> None:
    """Raise :class:`SignalValueError` when ``block`` holds NaN or infinite samples."""
    bad = ~np.isfinite(block.data)
    if not bad.any():
        return
    rows, cols = np.nonzero(bad)
    names = sorted({block.ch_names[c] for c in cols})
    raise SignalValueError(
        f"{source}: stream {block.name!r} has {bad.sum()} NaN or infinite sample(s) in "
        f"channel(s) {', '.join(names[:6])}{'...' if len(names) > 6 else ''}, the first at "
        f"t={block.times[rows[0]]:.3f} s.",
        fix="mark those channels bad or crop the segment before use; the live path flags "
        "such windows instead of stopping.",
        path=source,
    )


def require_duration(block: SignalBlock, seconds: float, source: str | Path) -> None:
    """Raise :class:`TooShortError` when ``block`` is shorter than ``seconds``."""
    if block.duration_s < seconds:
        raise TooShortError(
            f"{source}: stream {block.name!r} lasts {block.duration_s:.2f} s, shorter than "
            f"one window of {seconds:g} s.",
            fix="use a longer recording, or a model with a shorter window.",
            path=source,
        )


def require_channels(block: SignalBlock, expected: Sequence[str], source: str | Path) -> None:
    """Raise :class:`ChannelError` unless every expected channel name is present."""
    present = set(block.ch_names)
    missing = [name for name in expected if name not in present]
    if missing:
        unknown = [name for name in block.ch_names if name not in set(expected)]
        raise ChannelError(
            f"{source}: stream {block.name!r} lacks channel(s) {', '.join(missing[:8])}"
            f"{'...' if len(missing) > 8 else ''}; it has unknown channel(s) "
            f"{', '.join(unknown[:8]) or 'none'}.",
            fix="rename the channels to the montage's 10-20 / S<i>_D<j> names, or use a "
            "model trained on this montage.",
            path=source,
        )
