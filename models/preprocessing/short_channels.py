"""Short-channel regression: take the scalp's share out of the long fNIRS channels, causally.

Light between a source and a detector under 15 mm apart never reaches the cortex, so a
short channel records what the scalp and systemic physiology add to every channel (Gagnon
et al., 2011; Brigadoi & Cooper, 2015). Each long pair's HbO (and HbR) is regressed on its
short reference and the fitted part removed:

    clean_t = long_t - beta_t * short_t,  beta_t = <long * short>_t / <short * short>_t

with ``< >_t`` exponentially weighted means over the samples up to ``t`` (time constant
``tau_s``), so the fit follows slow changes of coupling and uses no future sample: offline
and live give the same numbers in any chunking. A long pair's reference is the mean of the
short channels that share its source, or of every short channel when none does
(:attr:`models.signals.NirsLayout.short_references`). While a reference is saturated or
lost the fit is held, and the window gate flags the long pairs that use it.

The output holds the long pairs only: short channels are never scored as ordinary pairs.
"""

from __future__ import annotations

import numpy as np
from scipy import signal as sps

from models.preprocessing.rows import RowWeightedSum
from models.signals import NirsLayout


class ShortChannelRegression:
    """Regress long-pair HbO/HbR on short-channel references, chunk by chunk.

    Parameters
    ----------
    layout
        The stream's fNIRS layout (pairs, distances).
    sfreq
        Sampling rate of the haemoglobin signals fed in.
    tau_s
        Time constant of the running moments in seconds.
    enabled
        ``False`` only drops the short channels (no regression).
    """

    def __init__(self, layout: NirsLayout, sfreq: float, tau_s: float, enabled: bool = True):
        short = layout.short_mask()
        self.long = np.flatnonzero(~short)
        self.short = np.flatnonzero(short)
        self.columns = np.ravel([[2 * k, 2 * k + 1] for k in self.long]).astype(int)
        self.active = bool(enabled and len(self.short) and len(self.long))
        self._mix = None
        if self.active:
            position = {int(j): i for i, j in enumerate(self.short)}
            weights = np.zeros((len(self.long), len(self.short)))
            for i, k in enumerate(self.long):
                refs = layout.short_references[k]
                weights[i, [position[j] for j in refs]] = 1.0 / len(refs)
            self._mix = RowWeightedSum(weights)
        alpha = 1.0 - np.exp(-1.0 / (tau_s * sfreq))
        self._b, self._a = np.array([alpha]), np.array([1.0, alpha - 1.0])
        self._state: np.ndarray | None = None

    def __call__(self, hb: np.ndarray, lost_pairs: np.ndarray | None = None) -> np.ndarray:
        """``(n, 2 * n_long)`` cleaned long pairs from ``(n, 2 * n_pairs)`` HbO/HbR.

        ``lost_pairs`` ``(n, n_pairs)`` marks samples of saturated or lost pairs: while a
        long pair's reference is lost, its running fit is not updated (both moments only
        decay, so the fitted ratio holds), and the window gate flags the long pair too.
        """
        long = hb[:, self.columns]
        if not self.active or hb.shape[0] == 0:
            return long
        short_hbo, short_hbr = hb[:, 2 * self.short], hb[:, 2 * self.short + 1]
        ref = np.empty_like(long)
        ref[:, 0::2] = self._mix(short_hbo)
        ref[:, 1::2] = self._mix(short_hbr)
        moments = np.concatenate([long * ref, ref * ref], axis=1)
        if lost_pairs is not None:
            lost_ref = self._mix(lost_pairs[:, self.short].astype(float)) > 0
            keep = np.repeat(~lost_ref, 2, axis=1)
            moments *= np.concatenate([keep, keep], axis=1)
        if self._state is None:
            self._state = np.zeros((1, moments.shape[1]))
        smoothed, self._state = sps.lfilter(self._b, self._a, moments, axis=0, zi=self._state)
        width = long.shape[1]
        cross, power = smoothed[:, :width], smoothed[:, width:]
        tiny = np.finfo(float).tiny
        beta = np.divide(cross, power, out=np.zeros_like(cross), where=power > tiny)
        return long - beta * ref
