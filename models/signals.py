"""The signal contract: how EEG, fNIRS and markers are held in memory by every part.

Readers (files, BIDS, XDF), the simulator, the live readers and the preprocessing all speak
these types, so a recording looks the same wherever it came from.

Canonical units
---------------
- EEG: microvolts (``uV``). MNE holds volts; readers convert.
- fNIRS raw continuous-wave intensity: arbitrary units (``a.u.``), strictly positive.
- fNIRS haemoglobin (HbO, HbR): micromolar (``uM``). MNE holds molar; readers convert.

fNIRS channel names follow MNE and the LSL contract of DESIGN.md: ``S<i>_D<j> <wavelength>``
for intensity or optical density (``S1_D1 760``) and ``S<i>_D<j> hbo|hbr`` for haemoglobin.
Sample arrays are ``(n_samples, n_channels)``, the layout LSL delivers chunks in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Literal

import numpy as np

from contract.errors import ChannelError

Kind = Literal["eeg", "nirs", "other"]
NirsSignal = Literal["intensity", "od", "hb"]

SHORT_SEPARATION_M = 0.015
"""Source-detector distances below this are short-separation channels: they see the scalp,
not the cortex (Brigadoi & Cooper, 2015), so they are never scored as ordinary pairs."""

_NIRS_LABEL = re.compile(r"^S(?P<s>\d+)_D(?P<d>\d+)[ _](?P<what>\d+(?:\.\d+)?|hbo|hbr)$", re.I)


@dataclass(frozen=True)
class NirsChannel:
    """One fNIRS channel: a source-detector pair at one wavelength or chromophore."""

    source: int
    detector: int
    wavelength: float | None
    chromophore: Literal["hbo", "hbr"] | None

    @property
    def pair(self) -> str:
        """The pair name, e.g. ``S1_D2``."""
        return f"S{self.source}_D{self.detector}"


def parse_nirs_label(label: str) -> NirsChannel:
    """Parse an fNIRS channel label such as ``S1_D1 760`` or ``S3_D2 hbo``.

    Raises
    ------
    ChannelError
        When the label does not follow the ``S<i>_D<j> <wavelength|hbo|hbr>`` convention.
    """
    match = _NIRS_LABEL.match(label.strip())
    if match is None:
        raise ChannelError(
            f"fNIRS channel label {label!r} does not follow the 'S<i>_D<j> <wavelength>' "
            "(e.g. 'S1_D1 760') or 'S<i>_D<j> hbo|hbr' convention.",
            fix="rename the channels in the device software or the file, or map them in "
            "the stream's desc as DESIGN.md's stream contract describes.",
        )
    what = match["what"].lower()
    if what in ("hbo", "hbr"):
        return NirsChannel(int(match["s"]), int(match["d"]), None, what)  # type: ignore[arg-type]
    return NirsChannel(int(match["s"]), int(match["d"]), float(what), None)


def _what(channel: NirsChannel) -> str:
    return channel.chromophore if channel.chromophore else f"{channel.wavelength:g}"


@dataclass(frozen=True)
class NirsLayout:
    """Which fNIRS channels belong together, and how far apart their optodes are.

    Attributes
    ----------
    channels
        One entry per data column, in column order.
    distances_m
        Source-detector distance per column, in metres (NaN where unknown).
    signal
        ``intensity`` (raw CW), ``od`` (optical density) or ``hb`` (HbO/HbR in uM).
    """

    channels: tuple[NirsChannel, ...]
    distances_m: np.ndarray
    signal: NirsSignal
    found_unit: str = ""
    """The unit the source gave, before conversion (``inspect`` reports it)."""
    midpoints_m: np.ndarray | None = None
    """``(n_channels, 3)`` each channel's source-detector midpoint in metres, in the
    recording's head coordinates (``None``: unknown). Pairs whose labels differ from a
    model's are matched by it (:func:`models.montage.fit_nirs`)."""

    @classmethod
    def from_labels(
        cls,
        labels: list[str] | tuple[str, ...],
        distances_m: np.ndarray | None = None,
        signal: NirsSignal | None = None,
        found_unit: str = "",
        midpoints_m: np.ndarray | None = None,
    ) -> NirsLayout:
        """Build a layout from channel labels; the signal kind is inferred when not given."""
        channels = tuple(parse_nirs_label(lab) for lab in labels)
        seen: set[NirsChannel] = set()
        for label, channel in zip(labels, channels, strict=True):
            if channel in seen:
                raise ChannelError(
                    f"fNIRS channel {label!r} is listed twice.",
                    fix="give every source-detector pair and wavelength one channel.",
                )
            seen.add(channel)
        is_hb = [c.chromophore is not None for c in channels]
        if any(is_hb) and not all(is_hb):
            raise ChannelError(
                "fNIRS channels mix wavelengths and haemoglobin labels: "
                f"{', '.join(labels[:4])}...",
                fix="send either raw intensity per wavelength or HbO/HbR, not both, in one stream.",
            )
        kind: NirsSignal = signal or ("hb" if all(is_hb) else "intensity")
        dist = (
            np.full(len(channels), np.nan)
            if distances_m is None
            else np.asarray(distances_m, float)
        )
        mids = None
        if midpoints_m is not None:
            mids = np.asarray(midpoints_m, float).reshape(len(channels), 3)
            if not np.isfinite(mids).all() or not np.abs(mids).any():
                mids = None  # all zero or partly unknown: as good as none
        layout = cls(
            channels=channels,
            distances_m=dist,
            signal=kind,
            found_unit=found_unit,
            midpoints_m=mids,
        )
        layout.pairs()  # validates that every pair is complete
        return layout

    @property
    def wavelengths(self) -> tuple[float, ...]:
        """The distinct wavelengths in nm, ascending (empty for haemoglobin data)."""
        return tuple(sorted({c.wavelength for c in self.channels if c.wavelength is not None}))

    def pair_distances(self) -> np.ndarray:
        """Source-detector distance per pair in metres, in :meth:`pairs` order (NaN: unknown)."""
        return np.array([self.distances_m[cols[0]] for _, cols in self.pairs()], float)

    def pair_midpoints(self) -> np.ndarray | None:
        """``(n_pairs, 3)`` midpoint per pair in :meth:`pairs` order, ``None`` if unknown."""
        if self.midpoints_m is None:
            return None
        return np.array([self.midpoints_m[cols[0]] for _, cols in self.pairs()])

    def select(self, columns: list[int]) -> NirsLayout:
        """The layout of the given columns, in that order."""
        return NirsLayout.from_labels(
            [f"{self.channels[c].pair} {_what(self.channels[c])}" for c in columns],
            distances_m=self.distances_m[columns],
            signal=self.signal,
            found_unit=self.found_unit,
            midpoints_m=None if self.midpoints_m is None else self.midpoints_m[columns],
        )

    def short_mask(self) -> np.ndarray:
        """Per pair in :meth:`pairs` order: a short-separation channel (under
        :data:`SHORT_SEPARATION_M`). Pairs of unknown distance count as long."""
        return self._short.copy()

    @cached_property
    def _short(self) -> np.ndarray:
        distances = self.pair_distances()
        with np.errstate(invalid="ignore"):
            return np.isfinite(distances) & (distances < SHORT_SEPARATION_M)

    @cached_property
    def short_references(self) -> tuple[tuple[int, ...], ...]:
        """Per pair in :meth:`pairs` order, the short-separation pairs its scalp share is
        estimated from: those on the same source (NIRx and Artinis place a short detector
        beside each source), else every short pair; ``()`` for short pairs themselves."""
        pairs, short = self.pairs(), self._short
        shorts = np.flatnonzero(short)
        source = [self.channels[cols[0]].source for _, cols in pairs]
        out = []
        for k in range(len(pairs)):
            if short[k] or not len(shorts):
                out.append(())
                continue
            same = tuple(int(j) for j in shorts if source[j] == source[k])
            out.append(same or tuple(int(j) for j in shorts))
        return tuple(out)

    @cached_property
    def pair_columns(self) -> np.ndarray:
        """``(n_pairs, members)`` the columns of each pair in :meth:`pairs` order (every pair
        has all its wavelengths or both chromophores: :meth:`pairs` checks it)."""
        if not self._pairs:
            return np.zeros((0, 0), int)
        return np.array([cols for _, cols in self._pairs], int)

    def any_per_pair(self, per_channel: np.ndarray) -> np.ndarray:
        """Per pair, whether any of its channels is set: ``(..., n_channels)`` booleans to
        ``(..., n_pairs)`` (the chain per chunk, the gate per window, ``inspect``)."""
        return per_channel[..., self.pair_columns].any(axis=-1)

    def long_pairs(self) -> list[tuple[str, tuple[int, ...]]]:
        """The pairs that see the cortex (not short-separation), in :meth:`pairs` order: the
        ones the model scores."""
        short = self.short_mask()
        return [p for p, s in zip(self.pairs(), short, strict=True) if not s]

    def pairs(self) -> list[tuple[str, tuple[int, ...]]]:
        """Source-detector pairs in first-seen order, with the column of each member.

        Members are ordered by ascending wavelength, or HbO then HbR.
        """
        return list(self._pairs)

    @cached_property
    def _pairs(self) -> tuple[tuple[str, tuple[int, ...]], ...]:
        """The pairs, grouped once (the window gate asks for them every window)."""
        groups: dict[str, list[tuple[float, int]]] = {}
        for col, ch in enumerate(self.channels):
            order = (
                ch.wavelength
                if ch.wavelength is not None
                else (0 if ch.chromophore == "hbo" else 1)
            )
            groups.setdefault(ch.pair, []).append((order, col))
        expected = len(self.wavelengths) if self.signal != "hb" else 2
        out = []
        for pair, members in groups.items():
            if len(members) != expected:
                raise ChannelError(
                    f"fNIRS pair {pair} has {len(members)} channel(s), expected {expected} "
                    f"(one per {'wavelength' if self.signal != 'hb' else 'chromophore'}).",
                    fix="make every source-detector pair carry all wavelengths, or drop the "
                    "incomplete pair.",
                )
            out.append((pair, tuple(col for _, col in sorted(members))))
        return tuple(out)


@dataclass(frozen=True)
class SignalBlock:
    """A regularly sampled multichannel signal with one timestamp per sample.

    Attributes
    ----------
    data
        ``(n_samples, n_channels)`` float64 in canonical units.
    times
        ``(n_samples,)`` seconds: LSL time for streams and XDF, file time for files.
    """

    name: str
    kind: Kind
    ch_names: tuple[str, ...]
    units: tuple[str, ...]
    sfreq: float
    data: np.ndarray
    times: np.ndarray
    nirs: NirsLayout | None = None
    counter: np.ndarray | None = None
    """The stream's sample-counter channel (labelled ``counter``), kept out of ``data``."""

    def __post_init__(self) -> None:
        if self.data.ndim != 2 or self.data.shape[1] != len(self.ch_names):
            raise ChannelError(
                f"Stream {self.name!r}: data has shape {self.data.shape} but "
                f"{len(self.ch_names)} channel names were given.",
                fix="give one name per data column.",
            )
        if self.times.shape != (self.data.shape[0],):
            raise ChannelError(
                f"Stream {self.name!r}: {self.times.shape[0]} timestamps for "
                f"{self.data.shape[0]} samples.",
                fix="give one timestamp per sample.",
            )

    @property
    def n_samples(self) -> int:
        """Number of samples."""
        return int(self.data.shape[0])

    @property
    def duration_s(self) -> float:
        """Duration in seconds, from the number of samples and the nominal rate."""
        return self.n_samples / self.sfreq if self.sfreq > 0 else 0.0


@dataclass(frozen=True)
class Markers:
    """String events with their onset times (same clock as the signals)."""

    times: np.ndarray
    labels: tuple[str, ...]
    durations: np.ndarray | None = None

    @classmethod
    def empty(cls) -> Markers:
        """No markers."""
        return cls(times=np.zeros(0), labels=())

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class Recording:
    """One session: its signal streams, its markers, and what is known about it."""

    source: Path
    blocks: tuple[SignalBlock, ...]
    markers: Markers = field(default_factory=Markers.empty)
    meta: dict[str, object] = field(default_factory=dict)

    def of_kind(self, kind: Kind) -> list[SignalBlock]:
        """Every stream of one kind, in file order."""
        return [b for b in self.blocks if b.kind == kind]

    @property
    def eeg(self) -> SignalBlock | None:
        """The first EEG stream, if any."""
        found = self.of_kind("eeg")
        return found[0] if found else None

    @property
    def nirs(self) -> SignalBlock | None:
        """The first fNIRS stream, if any."""
        found = self.of_kind("nirs")
        return found[0] if found else None
