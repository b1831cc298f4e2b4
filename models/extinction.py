"""Haemoglobin absorption for the modified Beer-Lambert law, as MNE-Python computes it.

The table (``models/data/extinction_prahl.csv``) is Scott Prahl's compilation of molar
extinction coefficients, the one MNE ships; values are interpolated linearly between its
2 nm steps, and converted to absorption coefficients with MNE's factor 0.2303 (ln(10)/10),
so that our optical density to haemoglobin conversion equals ``mne.preprocessing.nirs.
beer_lambert_law`` for the same wavelengths, distances and partial pathlength factor.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from contract.errors import ChannelError

_TABLE = Path(__file__).with_name("data") / "extinction_prahl.csv"


@lru_cache(maxsize=1)
def _table() -> np.ndarray:
    return np.loadtxt(_TABLE, delimiter=",", comments="#", skiprows=4)


def absorption_coefficients(wavelengths_nm: tuple[float, ...] | list[float]) -> np.ndarray:
    """``(n_wavelengths, 2)`` absorption coefficients ``[HbO2, HbR]`` per wavelength.

    Raises
    ------
    ChannelError
        For a wavelength outside the table (600-1000 nm).
    """
    table = _table()
    lo, hi = table[0, 0], table[-1, 0]
    out = np.zeros((len(wavelengths_nm), 2))
    for i, wl in enumerate(wavelengths_nm):
        if not lo <= wl <= hi:
            raise ChannelError(
                f"fNIRS wavelength {wl:g} nm is outside the extinction table ({lo:g}-{hi:g} nm).",
                fix="check the wavelengths in the channel names or the file's metadata.",
            )
        out[i, 0] = np.interp(wl, table[:, 0], table[:, 1])
        out[i, 1] = np.interp(wl, table[:, 0], table[:, 2])
    return out * 0.2303
