"""Channel descriptions of LSL streams, shared by the XDF reader and the live LSL readers.

An LSL stream (and so an XDF stream) describes its channels in ``desc/channels/channel``
with ``label``, ``unit``, ``type`` and, for fNIRS, ``wavelength`` and ``distance``. This module
turns those entries into what the rest of the package needs: data labels (the ``counter``
channel taken out), a scale per EEG channel to uV, and the fNIRS layout.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

import numpy as np

from contract.errors import ChannelError
from models.signals import NirsLayout

CHANNEL_FIELDS = ("label", "unit", "type", "wavelength", "distance")
COUNTER_LABEL = "counter"
SCORE_STREAM_TYPE = "NeuroCLIPScore"
"""Type of the monitor's LSL score stream: recorded beside the signals, never a marker."""

EEG_UNIT_SCALE = {
    "uv": 1.0,
    "µv": 1.0,
    "microvolts": 1.0,
    "microvolt": 1.0,
    "mv": 1e3,
    "millivolts": 1e3,
    "v": 1e6,
    "volts": 1e6,
    "volt": 1e6,
}
"""Factor from a unit named in a stream's desc to uV (unknown or empty units: 1)."""


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
    """Unit per data column after scaling (``uV`` for EEG, as described otherwise)."""
    scales: np.ndarray
    """Factor per data column to the signal contract's unit (uV for EEG, 1 otherwise)."""
    nirs: NirsLayout | None


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
        out.append(
            {k: "" if entry is None else (entry.findtext(k) or "").strip() for k in CHANNEL_FIELDS}
        )
    return out


def _label_defaults(channels: list[dict[str, str]]) -> list[dict[str, str]]:
    for i, ch in enumerate(channels):
        ch["label"] = ch["label"] or f"ch{i}"
    return channels


def stream_layout(
    kind: str, channels: list[dict[str, str]], source: str, path: object = None
) -> StreamLayout:
    """Describe a signal stream of ``kind`` (``eeg``, ``nirs`` or other) from its channels.

    Raises
    ------
    ChannelError
        When an fNIRS stream's labels do not follow the contract (``S1_D1 760``,
        ``S1_D1 hbo``), naming ``source``.
    """
    channels = _label_defaults([dict(c) for c in channels])
    labels = [c["label"] for c in channels]
    counter = labels.index(COUNTER_LABEL) if COUNTER_LABEL in labels else None
    columns = tuple(i for i in range(len(channels)) if i != counter)
    data_channels = [channels[i] for i in columns]
    scales = np.ones(len(columns))
    layout = None
    if kind == "eeg":
        scales = np.array([EEG_UNIT_SCALE.get(c["unit"].lower(), 1.0) for c in data_channels])
    elif kind == "nirs":
        dist = np.array(
            [_distance_m(c["distance"]) for c in data_channels],
            dtype=float,
        )
        try:
            layout = NirsLayout.from_labels([c["label"] for c in data_channels], distances_m=dist)
        except ChannelError as exc:
            raise ChannelError(f"{source}: {exc.message}", fix=exc.fix, path=path) from None
    return StreamLayout(
        labels=tuple(c["label"] for c in data_channels),
        units=tuple("uV" if kind == "eeg" else c["unit"] for c in data_channels),
        data_columns=columns,
        counter_column=counter,
        scales=scales,
        nirs=layout,
    )


def _distance_m(text: str) -> float:
    try:
        return float(text) if text else np.nan
    except ValueError:
        return np.nan
