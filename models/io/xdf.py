"""Read XDF recordings (LabRecorder conventions, or ours) with clock synchronisation.

pyxdf applies the recorded clock offsets (``synchronize_clocks``), handles clock resets and
de-jitters regular streams, so every stream's timestamps are on the recording host's LSL
clock. Stream types map to kinds: ``EEG`` -> eeg, ``NIRS``/``fNIRS`` -> nirs, string streams
-> markers (merged; the monitor's own score stream, type ``NeuroCLIPScore``, is left out
and named in ``meta["score_streams"]``), anything else numeric -> other. Empty streams are
skipped and listed in ``Recording.meta['empty_streams']``. What pyxdf reports about a
damaged file (it skips a corrupt chunk and reads on) is collected into
``meta['xdf_problems']`` and logged as one warning, not as pyxdf's tracebacks.
"""

from __future__ import annotations

import contextlib
import logging
import struct
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from contract.errors import RecordingFormatError
from models.io.stream_desc import (
    CHANNEL_FIELDS,
    LOCATION_AXES,
    SCORE_STREAM_TYPE,
    stream_layout,
)
from models.signals import Markers, Recording, SignalBlock

logger = logging.getLogger(__name__)


class _Collect(logging.Handler):
    """Keep pyxdf's log records instead of printing them."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextlib.contextmanager
def _pyxdf_reports() -> Iterator[list[str]]:
    pyxdf_logger = logging.getLogger("pyxdf")
    handler = _Collect()
    propagate = pyxdf_logger.propagate
    pyxdf_logger.addHandler(handler)
    pyxdf_logger.propagate = False
    try:
        yield handler.messages
    finally:
        pyxdf_logger.removeHandler(handler)
        pyxdf_logger.propagate = propagate


def read_xdf(path: Path) -> Recording:
    """Read every stream of an XDF file; see the module docstring for the mapping."""
    import pyxdf

    if path.suffix.lower() == ".xdf":
        with path.open("rb") as handle:
            magic = handle.read(4)
        if magic != b"XDF:":
            raise RecordingFormatError(
                f"{path}: not an XDF file (it does not start with the 'XDF:' magic bytes).",
                fix="check that this is the file LabRecorder or 'neuroclip record' wrote.",
                path=path,
            )
    with _pyxdf_reports() as problems:
        streams = _load(pyxdf, path)
    if problems:
        logger.warning(
            "%s: %d problem(s) reading the file, e.g. %s", path, len(problems), problems[0]
        )
    blocks: list[SignalBlock] = []
    marker_times: list[float] = []
    marker_labels: list[str] = []
    empty: list[str] = []
    scores: list[str] = []
    for stream in streams:
        info = stream["info"]
        name = _first(info, "name", "unnamed")
        stype = _first(info, "type", "").lower()
        fmt = _first(info, "channel_format", "float32")
        stamps = np.asarray(stream["time_stamps"], float)
        if stamps.size == 0:
            empty.append(name)
            continue
        if fmt == "string" and stype == SCORE_STREAM_TYPE.lower():
            scores.append(name)  # the monitor's own output, not an event
            continue
        if fmt == "string":
            marker_times.extend(stamps.tolist())
            marker_labels.extend(str(row[0]) if len(row) else "" for row in stream["time_series"])
            continue
        blocks.append(_signal_block(path, name, stype, info, stamps, stream["time_series"]))
    if not blocks and not marker_labels:
        raise RecordingFormatError(
            f"{path}: no stream holds any sample (empty: {', '.join(empty) or 'none'}).",
            fix="check that the recorder saw the streams (LabRecorder lists them before "
            "recording starts).",
            path=path,
        )
    order = np.argsort(marker_times, kind="stable")
    markers = Markers(
        times=np.asarray(marker_times, float)[order],
        labels=tuple(marker_labels[i] for i in order),
    )
    meta: dict[str, object] = {
        "empty_streams": empty,
        "score_streams": scores,
        "xdf_problems": problems,
        "format": "xdf",
    }
    return Recording(source=path, blocks=tuple(blocks), markers=markers, meta=meta)


def _load(pyxdf, path: Path) -> list[dict[str, Any]]:
    """pyxdf's streams, or a clear error for a file it cannot read at all."""
    try:
        streams, _header = pyxdf.load_xdf(
            str(path),
            synchronize_clocks=True,
            dejitter_timestamps=True,
            handle_clock_resets=True,
            verbose=False,
        )
    except (
        OSError,
        ValueError,
        EOFError,
        RuntimeError,
        struct.error,
        KeyError,
        IndexError,
        UnicodeDecodeError,
        ET.ParseError,
    ) as exc:
        raise RecordingFormatError(
            f"{path}: not a readable XDF file ({type(exc).__name__}: {exc}).",
            fix="check that the file is complete; one cut short by a crash can be repaired "
            "with models.io.xdf_writer.truncate_to_last_chunk (see docs/replay.md).",
            path=path,
        ) from exc
    return streams


def _first(mapping: dict[str, Any], key: str, default: str) -> str:
    value = mapping.get(key)
    if isinstance(value, list) and value:
        value = value[0]
    return default if value in (None, "") else str(value)


def _channels(info: dict[str, Any], count: int) -> list[dict[str, str]]:
    desc = info.get("desc")
    try:
        entries = desc[0]["channels"][0]["channel"]
    except (TypeError, KeyError, IndexError):
        entries = []
    out = []
    for i in range(count):
        entry = entries[i] if i < len(entries) and isinstance(entries[i], dict) else {}
        fields = {k: _first(entry, k, "") for k in CHANNEL_FIELDS}
        location = entry.get("location")
        location = location[0] if isinstance(location, list) and location else None
        fields["location"] = (
            " ".join(_first(location, a, "") for a in LOCATION_AXES)
            if isinstance(location, dict)
            else ""
        )
        out.append(fields)
    return out


def _signal_block(
    path: Path, name: str, stype: str, info: dict[str, Any], stamps: np.ndarray, series: Any
) -> SignalBlock:
    data = np.asarray(series, dtype=float)
    if data.ndim == 1:
        data = data[:, None]
    sfreq = float(_first(info, "nominal_srate", "0"))
    kind = "eeg" if stype == "eeg" else "nirs" if stype in ("nirs", "fnirs") else "other"
    layout = stream_layout(
        kind, _channels(info, data.shape[1]), f"{path}: NIRS stream {name!r}", path
    )
    counter = None if layout.counter_column is None else data[:, layout.counter_column].copy()
    data = data[:, list(layout.data_columns)] * layout.scales
    return SignalBlock(
        name=name,
        kind=kind,
        ch_names=layout.labels,
        units=layout.units,
        sfreq=sfreq,
        data=data,
        times=stamps,
        nirs=layout.nirs,
        counter=counter,
    )
