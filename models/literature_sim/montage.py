"""Geometry: template positions, a head sphere, dipole lead fields and fNIRS pairs.

Positions are MNE's 10-05 template (head coordinates, metres). A sphere fitted to them by
least squares stands in for the head. Scalp potentials of a current dipole use the
infinite homogeneous conductor form ``V(r) ~ p . (r - r0) / |r - r0|**3`` (Nunez &
Srinivasan, 2006), with the distance regularised by a few centimetres to stand in for the
spatial low-pass of the skull; it gives smooth, overlapping channel topographies, so
neighbouring channels correlate the way volume conduction makes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from contract.errors import ChannelError
from models.literature_sim.config import LiteratureCohortConfig


@lru_cache(maxsize=1)
def template_positions() -> dict[str, np.ndarray]:
    """10-05 label -> position (head coordinates, metres) from MNE's template."""
    import mne

    builtin = mne.channels.get_builtin_montages()
    # colin27_1005 is the new name of standard_1005 (same positions) in recent MNE
    name = "colin27_1005" if "colin27_1005" in builtin else "standard_1005"
    montage = mne.channels.make_standard_montage(name)
    return {k: np.asarray(v, float) for k, v in montage.get_positions()["ch_pos"].items()}


def positions_of(labels: tuple[str, ...] | list[str]) -> np.ndarray:
    """``(n, 3)`` template positions of ``labels``.

    Raises
    ------
    ChannelError
        For a label that is not in the 10-05 template.
    """
    pos = template_positions()
    missing = [lab for lab in labels if lab not in pos]
    if missing:
        raise ChannelError(
            f"Label(s) {', '.join(missing)} are not 10-05 positions of MNE's template.",
            fix="use 10-05 labels such as Fp1, AF3, F5, FC1, T7 (case matters).",
        )
    return np.array([pos[lab] for lab in labels])


@lru_cache(maxsize=1)
def head_sphere() -> tuple[np.ndarray, float]:
    """Centre and radius of the sphere best fitting the template (linear least squares)."""
    xyz = np.array(list(template_positions().values()))
    design = np.c_[2 * xyz, np.ones(len(xyz))]
    sol = np.linalg.lstsq(design, (xyz**2).sum(axis=1), rcond=None)[0]
    centre = sol[:3]
    return centre, float(np.sqrt(sol[3] + centre @ centre))


@lru_cache(maxsize=1)
def _scalp_reference() -> np.ndarray:
    """Template positions above the sphere's equator, where lead fields are normalised."""
    centre, _ = head_sphere()
    xyz = np.array(list(template_positions().values()))
    return xyz[xyz[:, 2] > centre[2] - 0.02]


def dipole_under(label: str, depth: float) -> tuple[np.ndarray, np.ndarray]:
    """A radial dipole under the template position ``label`` at ``depth`` x radius from the
    centre: ``(position, unit moment)``."""
    centre, radius = head_sphere()
    direction = template_positions()[label] - centre
    direction /= np.linalg.norm(direction)
    return centre + depth * radius * direction, direction


def random_dipoles(rng: np.random.Generator, count: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` dipoles in the upper head with random orientation: ``(pos, moments)``."""
    centre, radius = head_sphere()
    direction = rng.standard_normal((count, 3))
    direction[:, 2] = np.abs(direction[:, 2]) + 0.3
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    pos = centre + rng.uniform(0.45, 0.8, (count, 1)) * radius * direction
    moment = rng.standard_normal((count, 3)) + 1.5 * direction  # mostly radial, as cortex
    moment /= np.linalg.norm(moment, axis=1, keepdims=True)
    return pos, moment


def lead_field(
    electrodes: np.ndarray, dipole_pos: np.ndarray, moments: np.ndarray, blur_m: float = 0.025
) -> np.ndarray:
    """``(n_electrodes, n_dipoles)`` potentials of unit dipoles, each column scaled so that
    its largest magnitude over the template scalp is 1 (amplitudes do not depend on which
    electrodes a montage happens to have). ``blur_m`` regularises the distance
    (``(|r - r0|**2 + blur**2)**1.5``), widening topographies as the skull does."""

    def field(at: np.ndarray) -> np.ndarray:
        diff = at[:, None, :] - dipole_pos[None, :, :]
        dist2 = (diff**2).sum(axis=2) + blur_m**2
        return np.einsum("edk,dk->ed", diff, moments) / dist2**1.5

    scale = np.abs(field(_scalp_reference())).max(axis=0)
    return field(electrodes) / scale


def proximity(electrodes: np.ndarray, points: np.ndarray, length_m: float) -> np.ndarray:
    """``(n_electrodes,)`` ``exp(-distance / length_m)`` to the nearest of ``points``."""
    dist = np.linalg.norm(electrodes[:, None, :] - points[None, :, :], axis=2).min(axis=1)
    return np.exp(-dist / length_m)


@dataclass(frozen=True)
class OptodePair:
    """One recorded source-detector pair (1-based indices as in SNIRF)."""

    source: int
    detector: int
    distance_m: float
    midpoint: tuple[float, float, float]


def optode_pairs(cfg: LiteratureCohortConfig) -> list[OptodePair]:
    """Every source-detector combination whose distance is within ``cfg.pair_mm``.

    Raises
    ------
    ChannelError
        When an optode label is unknown or no pair falls in the distance range.
    """
    src = positions_of(cfg.nirs_sources)
    det = positions_of(cfg.nirs_detectors)
    lo, hi = cfg.pair_mm[0] / 1000, cfg.pair_mm[1] / 1000
    pairs = []
    for i, s in enumerate(src, start=1):
        for j, d in enumerate(det, start=1):
            dist = float(np.linalg.norm(s - d))
            if lo <= dist <= hi:
                pairs.append(OptodePair(i, j, dist, tuple(float(v) for v in (s + d) / 2)))
    if not pairs:
        raise ChannelError(
            f"No fNIRS source-detector pair is {cfg.pair_mm[0]:g}-{cfg.pair_mm[1]:g} mm apart.",
            fix="move the optodes closer or widen pair_mm.",
        )
    return pairs
