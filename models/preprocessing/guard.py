"""Keep non-finite samples out of filter state, and remember where they were."""

from __future__ import annotations

import numpy as np


def hold_last(x: np.ndarray, replace: np.ndarray, carry: np.ndarray) -> np.ndarray:
    """Replace flagged samples by the last unflagged value of their channel.

    Parameters
    ----------
    x
        ``(n_samples, n_channels)`` samples.
    replace
        ``(n_samples, n_channels)`` or ``(n_samples,)`` True where a sample is replaced.
    carry
        ``(n_channels,)`` the value to hold when a chunk starts with flagged samples.
    """
    n = x.shape[0]
    mask = replace if replace.ndim == 2 else np.broadcast_to(replace[:, None], x.shape)
    idx = np.where(mask, -1, np.arange(n)[:, None])
    np.maximum.accumulate(idx, axis=0, out=idx)
    padded = np.vstack([carry[None, :], x])
    return np.take_along_axis(padded, idx + 1, axis=0)


class FiniteGuard:
    """Replace NaN and infinite samples by the channel's last finite value.

    IIR filters never recover from one NaN in their state, so the chains put this first.
    The returned mask says which samples were replaced, for the quality gate to flag the
    windows that contain them. Before any finite value has been seen a channel holds 0.
    """

    def __init__(self) -> None:
        self._last: np.ndarray | None = None

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(clean, bad)`` for ``x`` of shape ``(n_samples, n_channels)``."""
        x = np.asarray(x, dtype=float)
        if self._last is None:
            self._last = np.zeros(x.shape[1])
        bad = ~np.isfinite(x)
        clean = hold_last(x, bad, self._last) if bad.any() else x
        if x.shape[0]:
            self._last = clean[-1].copy()
        return clean, bad
