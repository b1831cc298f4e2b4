"""The simulated montage: 32-channel 10-20 EEG and a prefrontal CW fNIRS probe.

Optode and electrode positions come from MNE's ``standard_1005`` template (head
coordinates, metres). fNIRS pairs are every source-detector combination 20-40 mm apart;
each pair is labelled with the region under its midpoint.

With short-separation channels (``short_channels.enabled``), each source gets one more
detector :data:`SHORT_DISTANCE_M` away on the scalp, numbered after the long ones as NIRx
does (``S1_D9``, ``S2_D10``...); its pair takes the region of its source. The short pairs
follow the long ones, so the long channels keep their columns.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

EEG_CHANNELS: tuple[str, ...] = (
    "Fp1",
    "Fp2",
    "F7",
    "F3",
    "Fz",
    "F4",
    "F8",
    "FC5",
    "FC1",
    "FC2",
    "FC6",
    "T7",
    "C3",
    "Cz",
    "C4",
    "T8",
    "TP9",
    "CP5",
    "CP1",
    "CP2",
    "CP6",
    "TP10",
    "P7",
    "P3",
    "Pz",
    "P4",
    "P8",
    "PO9",
    "O1",
    "Oz",
    "O2",
    "PO10",
)
NIRS_WAVELENGTHS: tuple[float, float] = (760.0, 850.0)
NIRS_SOURCES: tuple[str, ...] = ("AF7", "AF3", "AFz", "AF4", "AF8", "F5", "F1", "F2", "F6")
NIRS_DETECTORS: tuple[str, ...] = ("Fp1", "Fpz", "Fp2", "F7", "F3", "Fz", "F4", "F8")
SHORT_DISTANCE_M = 0.008
"""Source to short-separation detector distance (NIRx and Artinis use 8 mm)."""
# anchor labels of each region; a pair belongs to the region nearest its midpoint
_REGIONS = {
    "DLPFC-L": ("F3", "F5", "F1"),
    "DLPFC-R": ("F4", "F6", "F2"),
    "OFC-L": ("Fp1", "AF7"),
    "OFC-R": ("Fp2", "AF8"),
    "FP": ("Fpz", "AFz"),
}


@dataclass(frozen=True)
class NirsPair:
    """One simulated source-detector pair."""

    source: int
    detector: int
    distance_m: float
    region: str

    @property
    def name(self) -> str:
        """``S<i>_D<j>``."""
        return f"S{self.source}_D{self.detector}"


@lru_cache(maxsize=1)
def positions() -> dict[str, np.ndarray]:
    """Template positions (head coordinates, metres) of every 10-05 label."""
    import mne

    kinds = mne.channels.get_builtin_montages()
    name = "colin27_1005" if "colin27_1005" in kinds else "standard_1005"
    montage = mne.channels.make_standard_montage(name)
    return {k: np.asarray(v) for k, v in montage.get_positions()["ch_pos"].items()}


def _region(midpoint: np.ndarray) -> str:
    pos = positions()
    distances = {
        region: min(float(np.linalg.norm(pos[lab] - midpoint)) for lab in labels)
        for region, labels in _REGIONS.items()
    }
    return min(distances, key=distances.__getitem__)


@lru_cache(maxsize=1)
def nirs_pairs(min_mm: float = 20.0, max_mm: float = 40.0) -> tuple[NirsPair, ...]:
    """Every source-detector pair between ``min_mm`` and ``max_mm`` apart."""
    pos = positions()
    pairs = []
    for si, src in enumerate(NIRS_SOURCES, start=1):
        for di, det in enumerate(NIRS_DETECTORS, start=1):
            dist = float(np.linalg.norm(pos[src] - pos[det]))
            if min_mm / 1000 <= dist <= max_mm / 1000:
                pairs.append(NirsPair(si, di, dist, _region((pos[src] + pos[det]) / 2)))
    return tuple(pairs)


def short_detector_positions(distance_m: float = SHORT_DISTANCE_M) -> np.ndarray:
    """``(n_sources, 3)`` positions of the short detectors, one per source in source order.

    Each sits ``distance_m`` from its source along the scalp's tangent plane there (the
    normal taken from the head origin), towards the vertex: the straight-line
    source-detector distance is ``distance_m`` exactly.
    """
    pos = positions()
    out = []
    for src in NIRS_SOURCES:
        p = pos[src]
        normal = p / np.linalg.norm(p)
        up = np.array([0.0, 0.0, 1.0])
        tangent = up - (up @ normal) * normal
        out.append(p + distance_m * tangent / np.linalg.norm(tangent))
    return np.array(out)


@lru_cache(maxsize=4)
def short_pairs(distance_m: float = SHORT_DISTANCE_M) -> tuple[NirsPair, ...]:
    """One short-separation pair per source: ``S<i>_D<n_long_detectors + i>``."""
    pos = positions()
    detectors = short_detector_positions(distance_m)
    first = len(NIRS_DETECTORS) + 1
    return tuple(
        NirsPair(
            si,
            first + si - 1,
            float(np.linalg.norm(detectors[si - 1] - pos[src])),
            _region(pos[src]),
        )
        for si, src in enumerate(NIRS_SOURCES, start=1)
    )


def montage_pairs(
    short_channels: bool = False, distance_m: float = SHORT_DISTANCE_M
) -> tuple[NirsPair, ...]:
    """The simulated pairs: the long ones, then the short ones when ``short_channels``."""
    return nirs_pairs() + (short_pairs(distance_m) if short_channels else ())


def detector_positions(
    short_channels: bool = False, distance_m: float = SHORT_DISTANCE_M
) -> np.ndarray:
    """``(n_detectors, 3)`` detector positions in detector-number order (short ones last)."""
    pos = positions()
    long = np.array([pos[d] for d in NIRS_DETECTORS])
    if not short_channels:
        return long
    return np.vstack([long, short_detector_positions(distance_m)])


def nirs_channel_names(
    short_channels: bool = False, distance_m: float = SHORT_DISTANCE_M
) -> list[str]:
    """Intensity channel labels, both wavelengths of a pair side by side (MNE's order)."""
    return [
        f"{p.name} {wl:g}"
        for p in montage_pairs(short_channels, distance_m)
        for wl in NIRS_WAVELENGTHS
    ]


def eeg_topography(center: str | tuple[str, ...], width_m: float = 0.05) -> np.ndarray:
    """A smooth scalp map ``(32,)`` peaking at ``center`` (one label or several), max 1."""
    pos = positions()
    centers = (center,) if isinstance(center, str) else center
    coords = np.array([pos[ch] for ch in EEG_CHANNELS])
    out = np.zeros(len(EEG_CHANNELS))
    for c in centers:
        d = np.linalg.norm(coords - pos[c], axis=1)
        out = np.maximum(out, np.exp(-((d / width_m) ** 2)))
    return out


def eeg_mixing(length_m: float = 0.04) -> np.ndarray:
    """Spatial smoothing matrix ``(32, 32)``: volume conduction between electrodes."""
    pos = positions()
    coords = np.array([pos[ch] for ch in EEG_CHANNELS])
    d = np.linalg.norm(coords[:, None, :] - coords[None, :, :], axis=2)
    mix = np.exp(-d / length_m)
    return mix / np.sqrt((mix**2).sum(axis=1, keepdims=True))
