"""Channel descriptions of LSL streams, shared by the XDF reader and the live LSL readers.

An LSL stream (and so an XDF stream) describes its channels in ``desc/channels/channel``
with ``label``, ``unit``, ``type`` and, for fNIRS, ``wavelength`` and ``distance``. This module
turns those entries into what the rest of the package needs: data labels (the ``counter``
channel taken out), a scale per EEG channel to uV, and the fNIRS layout.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass

import numpy as np

from contract.errors import ChannelError
from models.signals import NirsLayout, SignalBlock, parse_nirs_label
from models.units import eeg_scale, nirs_signal

CHANNEL_FIELDS = ("label", "unit", "type", "wavelength", "distance")
LOCATION_AXES = ("X", "Y", "Z")
"""Children of a channel's ``location``: its position in metres (fNIRS: the midpoint of
source and detector), flattened by the readers into a ``location`` field ``"x y z"``."""
MAX_COORDINATE_M = 0.3
"""Head coordinates in metres stay within this; a larger one is a unit slip (mm)."""
COUNTER_LABEL = "counter"
SCORE_STREAM_TYPE = "NeuroCLIPScore"
"""Type of the monitor's LSL score stream: recorded beside the signals, never a marker."""

MAX_DISTANCE_M = 0.1
"""Source-detector distances are given in metres; one above this is a unit slip (mm)."""


@dataclass(frozen=True)
class StreamLayout:
    """What the columns of a signal stream hold."""

    labels: tuple[str, ...]
    """Labels of the data columns, without the counter."""
    data_columns: tuple[int, ...]
    """Column index in the stream of each data label."""
    counter_column: int | None
    """Column of the ``counter`` channel, when the stream has one."""
    units: tuple[str, ...]
    """Unit per data column after scaling: ``uV`` for EEG (``""`` where the stream gave no
    known unit: such a channel is refused when a model needs it), ``a.u.``, ``OD`` or ``uM``
    for fNIRS, as described otherwise."""
    scales: np.ndarray
    """Factor per data column to the signal contract's unit (uV, uM; 1 otherwise)."""
    nirs: NirsLayout | None
    found_units: tuple[str, ...] = ()
    """Unit per data column as the stream named it."""


def channels_from_xml(xml: str, count: int) -> list[dict[str, str]]:
    """Channel entries of a stream's XML header (``StreamInfo.as_xml()``), ``count`` long."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        root = None
    entries = [] if root is None else root.findall("./desc/channels/channel")
    out = []
    for i in range(count):
        entry = entries[i] if i < len(entries) else None
        fields = {
            k: "" if entry is None else (entry.findtext(k) or "").strip() for k in CHANNEL_FIELDS
        }
        location = None if entry is None else entry.find("location")
        fields["location"] = (
            ""
            if location is None
            else " ".join((location.findtext(a) or "").strip() for a in LOCATION_AXES)
        )
        out.append(fields)
    return out


def _label_defaults(channels: list[dict[str, str]]) -> list[dict[str, str]]:
    for i, ch in enumerate(channels):
        ch["label"] = ch["label"] or f"ch{i}"
    return channels


def stream_layout(
    kind: str, channels: list[dict[str, str]], source: str, path: object = None
) -> StreamLayout:
    """Describe a signal stream of ``kind`` (``eeg``, ``nirs`` or other) from its channels.

    EEG channels are scaled to uV from their unit; a channel without a known unit keeps
    its values and the unit ``""`` (see :func:`models.pipeline.compat.check_stream`).
    fNIRS channels are classified and scaled by :func:`models.units.nirs_signal`.

    Raises
    ------
    ChannelError
        Naming ``source`` and the channel: a label listed twice; for fNIRS a label off the
        contract (``S1_D1 760``, ``S1_D1 hbo``), a wavelength missing, a unit missing or
        unknown, kinds mixed, a distance missing or not in metres, a pair incomplete.
    """
    channels = _label_defaults([dict(c) for c in channels])
    labels = [c["label"] for c in channels]
    counter = labels.index(COUNTER_LABEL) if COUNTER_LABEL in labels else None
    columns = tuple(i for i in range(len(channels)) if i != counter)
    data_channels = [channels[i] for i in columns]
    if kind != "nirs":  # fNIRS labels are completed first (a wavelength field), then checked
        _refuse_duplicates([c["label"] for c in data_channels], source, path)
    found = tuple(c["unit"] for c in data_channels)
    if kind == "eeg":
        factors = [eeg_scale(u) for u in found]
        scales = np.array([1.0 if f is None else f for f in factors])
        units = tuple("" if f is None else "uV" for f in factors)
        layout = None
    elif kind == "nirs":
        try:
            scales, units, layout = _nirs_layout(data_channels, source)
        except ChannelError as exc:
            message = exc.message if exc.message.startswith(source) else f"{source}: {exc.message}"
            raise ChannelError(message, fix=exc.fix, path=path) from None
    else:
        scales, units, layout = np.ones(len(columns)), found, None
    return StreamLayout(
        labels=tuple(c["label"] for c in data_channels),
        units=units,
        data_columns=columns,
        counter_column=counter,
        scales=scales,
        nirs=layout,
        found_units=found,
    )


def _refuse_duplicates(labels: list[str], source: str, path: object) -> None:
    seen: set[str] = set()
    for label in labels:
        if label in seen:
            raise ChannelError(
                f"{source}: channel {label!r} is listed twice.",
                fix="give every channel a unique label in the device software or the "
                "stream's desc.",
                path=path,
            )
        seen.add(label)


def _nirs_label(channel: dict[str, str], source: str) -> str:
    """The channel's label in the contract's form: a ``wavelength`` child completes a bare
    ``S1_D1`` label."""
    label = channel["label"].strip()
    if re.fullmatch(r"S\d+_D\d+", label):
        wavelength = channel["wavelength"].strip()
        if not wavelength:
            chromophore = channel["type"].strip().lower()
            if chromophore in ("hbo", "hbr"):
                return f"{label} {chromophore}"
            raise ChannelError(
                f"{source}: fNIRS channel {label!r} names no wavelength (no "
                "'S<i>_D<j> <nm>' label and no wavelength field).",
                fix="give each channel its wavelength in nm (desc/channels/channel/wavelength) "
                "or label it 'S<i>_D<j> <nm>'.",
            )
        return f"{label} {wavelength}"
    return label


def _nirs_layout(
    data_channels: list[dict[str, str]], source: str
) -> tuple[np.ndarray, tuple[str, ...], NirsLayout]:
    labels = [_nirs_label(c, source) for c in data_channels]
    kinds, scales = [], []
    for label, c in zip(labels, data_channels, strict=True):
        parsed = parse_nirs_label(label)
        kind, scale = nirs_signal(
            source, label, c["unit"], c["type"], parsed.chromophore is not None
        )
        kinds.append(kind)
        scales.append(scale)
    if len(set(kinds)) > 1:
        first = {k: labels[kinds.index(k)] for k in kinds}
        raise ChannelError(
            f"{source}: fNIRS channels mix kinds: "
            + ", ".join(f"{lab!r} is {k}" for k, lab in first.items())
            + ".",
            fix="send one kind per stream: raw intensity, optical density or HbO/HbR.",
        )
    distances = np.array([_distance_m(c["distance"]) for c in data_channels], dtype=float)
    signal = kinds[0]
    _check_distances(labels, distances, signal, source)
    layout = NirsLayout.from_labels(
        labels,
        distances_m=distances,
        signal=signal,
        found_unit=data_channels[0]["unit"],
        midpoints_m=_midpoints(labels, data_channels, source),
    )
    units = {"intensity": "a.u.", "od": "OD", "hb": "uM"}[signal]
    return np.array(scales), (units,) * len(labels), layout


def _midpoints(labels: list[str], channels: list[dict[str, str]], source: str) -> np.ndarray | None:
    """Channel midpoints from ``location`` fields (metres), ``None`` unless every channel has
    one; a coordinate beyond a head's size is refused as a unit slip."""
    texts = [c.get("location", "").split() for c in channels]
    if not all(len(t) == 3 for t in texts):
        return None
    try:
        points = np.array([[float(v) for v in t] for t in texts])
    except ValueError:
        return None
    far = np.flatnonzero(np.abs(points).max(axis=1) > MAX_COORDINATE_M)
    if len(far):
        raise ChannelError(
            f"{source}: fNIRS channel {labels[far[0]]!r} is located at "
            f"{points[far[0]].tolist()}; expected metres within {MAX_COORDINATE_M:g} of the "
            "head's origin.",
            fix="give desc/channels/channel/location X, Y, Z in metres.",
        )
    return points


def _check_distances(labels: list[str], distances: np.ndarray, signal: str, source: str) -> None:
    """Intensity and optical density need every distance (the Beer-Lambert law scales by
    it); haemoglobin streams may omit them (then no pair counts as short)."""
    for label, d in zip(labels, distances, strict=True):
        if np.isfinite(d) and not 0 < d <= MAX_DISTANCE_M:
            raise ChannelError(
                f"{source}: fNIRS channel {label!r} gives a source-detector distance of {d:g}; "
                f"expected metres, between 0 and {MAX_DISTANCE_M:g}.",
                fix="give desc/channels/channel/distance in metres (30 mm is 0.03).",
            )
        if signal != "hb" and not np.isfinite(d):
            raise ChannelError(
                f"{source}: fNIRS channel {label!r} gives no source-detector distance; the "
                "Beer-Lambert law needs it.",
                fix="give desc/channels/channel/distance in metres for every channel, or "
                "stream HbO/HbR computed by the device.",
            )


def _distance_m(text: str) -> float:
    try:
        return float(text) if text else np.nan
    except ValueError:
        return np.nan


NIRS_CHANNEL_TYPES = {"intensity": "nirs_cw_amplitude", "od": "fnirs_od"}
"""The ``type`` an outlet writes for fNIRS channels of each kind (haemoglobin: HbO/HbR)."""


def channel_entries(block: SignalBlock, labels: list[str] | None = None) -> list[dict[str, str]]:
    """The ``desc/channels/channel`` entries an outlet sends for ``block``: the inverse of
    :func:`stream_layout`, so what goes out is read back as the same kind, unit and layout.

    EEG is described in microvolts; fNIRS by kind (``a.u.``, ``OD`` or ``uM``), wavelength
    and source-detector distance in metres (full precision: the Beer-Lambert law and the
    short-channel rule use it). ``labels`` renames the channels (tests of montage matching).
    """
    names = list(labels or block.ch_names)
    if block.kind == "eeg":
        return [{"label": n, "unit": "microvolts", "type": "EEG"} for n in names]
    layout = block.nirs
    if layout is None:
        raise ChannelError(
            f"Stream {block.name!r}: fNIRS channels without a layout cannot be described.",
            fix="read the recording through models.io, which labels its fNIRS channels.",
        )
    unit = {"intensity": "a.u.", "od": "OD", "hb": "uM"}[layout.signal]
    entries = []
    for name, ch, d in zip(names, layout.channels, layout.distances_m, strict=True):
        entry: dict = {
            "label": name,
            "unit": unit,
            "distance": "" if np.isnan(d) else repr(float(d)),
        }
        if ch.wavelength is not None:
            entry.update(type=NIRS_CHANNEL_TYPES[layout.signal], wavelength=f"{ch.wavelength:g}")
        else:
            entry.update(type="HbO" if ch.chromophore == "hbo" else "HbR")
        entries.append(entry)
    if layout.midpoints_m is not None:
        for entry, point in zip(entries, layout.midpoints_m, strict=True):
            entry["location"] = {
                a: repr(float(v)) for a, v in zip(LOCATION_AXES, point, strict=True)
            }
    return entries
