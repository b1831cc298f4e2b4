"""A small, crash-safe XDF 1.0 writer (what ``neuroclip record`` writes LSL streams with).

File layout (https://github.com/sccn/xdf/wiki/Specifications): the magic ``XDF:``, then
chunks ``[NumLengthBytes (1, 4 or 8)][Length][Tag: uint16][Content]``, all little-endian,
where ``Length`` counts the tag and the content. Tags: 1 FileHeader, 2 StreamHeader,
3 Samples, 4 ClockOffset, 5 Boundary, 6 StreamFooter. Every sample is written with its
8-byte timestamp; values are little-endian in the stream's ``channel_format``, strings as
a variable-length byte count plus UTF-8 bytes.

Crash safety is the point of this module: a recorder killed by SIGKILL, Ctrl-C or a full
disk must leave a file that ``pyxdf.load_xdf`` opens, holding every chunk written before.

* Each chunk is built completely in memory and handed to the kernel with a single
  ``os.write`` on a descriptor opened with ``O_APPEND`` (looping only on a short write).
  Nothing is buffered in the process, so a dying process loses at most the chunk it was
  building and never leaves half of one. If a write fails or is interrupted half-way
  (disk full, Ctrl-C between two parts of a short write), the file is cut back to the end
  of the last whole chunk before the error propagates.
* The file is created with ``O_EXCL``: an existing file is never overwritten.
* Every ``boundary_every_s`` seconds of samples of any stream, or every
  ``boundary_every_chunks`` chunks, a Boundary chunk is written so a reader meeting a
  damaged chunk can scan forward to the next boundary and read on.
* ``close()`` (also run when a ``with`` block ends by an exception, Ctrl-C included)
  writes one StreamFooter per stream. Footers are optional to readers: a file without
  them (the writer was killed) is still complete up to its last chunk.
* The kernel has the data once ``os.write`` returns, but the disk may not: after a power
  loss the tail of the file can be cut or zero-filled. ``fsync=True`` flushes each chunk
  to disk (slower), and :func:`truncate_to_last_chunk` repairs such a tail.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Self

import numpy as np

from contract.errors import OutputError, RecordingFormatError

MAGIC = b"XDF:"
TAG_FILE_HEADER, TAG_STREAM_HEADER, TAG_SAMPLES = 1, 2, 3
TAG_CLOCK_OFFSET, TAG_BOUNDARY, TAG_STREAM_FOOTER = 4, 5, 6
BOUNDARY_UUID = bytes.fromhex("43A546DCCBF5410FB30ED5467383CBE4")
"""Content of a Boundary chunk, fixed by the XDF specification."""

NUMERIC_DTYPES = {
    "float32": "<f4",
    "double64": "<f8",
    "int8": "<i1",
    "int16": "<i2",
    "int32": "<i4",
    "int64": "<i8",
}
CHANNEL_FORMATS = (*NUMERIC_DTYPES, "string")
MAX_CHUNK_BYTES = 64 * 1024
"""Samples chunks are split near this size: small writes, little lost to a damaged chunk."""

_XML_DECL = '<?xml version="1.0"?>'


def _varlen(n: int) -> bytes:
    """XDF variable-length integer: a byte giving the width (1, 4 or 8), then the value."""
    if n < 0x100:
        return struct.pack("<BB", 1, n)
    if n < 0x1_0000_0000:
        return struct.pack("<BI", 4, n)
    return struct.pack("<BQ", 8, n)


def _chunk(tag: int, content: bytes) -> bytes:
    return _varlen(len(content) + 2) + struct.pack("<H", tag) + content


def _xml(root: ET.Element) -> bytes:
    return (_XML_DECL + ET.tostring(root, encoding="unicode")).encode("utf-8")


def _element(tag: str, children: Sequence[tuple[str, str]] = ()) -> ET.Element:
    root = ET.Element(tag)
    for name, text in children:
        ET.SubElement(root, name).text = text
    return root


def channel_desc(
    labels: Sequence[str],
    units: Sequence[str] | None = None,
    types: Sequence[str] | None = None,
) -> str:
    """A ``<desc>`` with ``channels/channel/{label,unit,type}``, as LSL streams describe them."""
    desc = ET.Element("desc")
    channels = ET.SubElement(desc, "channels")
    for i, label in enumerate(labels):
        fields = [("label", label)]
        fields += [("unit", units[i])] if units is not None else []
        fields += [("type", types[i])] if types is not None else []
        channels.append(_element("channel", fields))
    return ET.tostring(desc, encoding="unicode")


@dataclass
class _Stream:
    """What the footer of one stream needs, kept while recording."""

    channel_count: int
    channel_format: str
    first_timestamp: float | None = None
    last_timestamp: float | None = None
    sample_count: int = 0
    clock_offsets: list[tuple[float, float]] = field(default_factory=list)


class XdfWriter:
    """Write an XDF 1.0 file chunk by chunk; see the module docstring for crash safety.

    Parameters
    ----------
    path
        The new file; it must not exist yet (:class:`~contract.errors.OutputError` if it does).
    fsync
        Flush every chunk to disk before returning (survives power loss; slower).
    boundary_every_s, boundary_every_chunks
        Write a Boundary chunk once any stream has this many seconds of samples since the
        last one, or after this many chunks, whichever comes first.

    Safe to call from several threads (one per LSL inlet): chunks are written under a lock.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        fsync: bool = False,
        boundary_every_s: float = 10.0,
        boundary_every_chunks: int = 500,
    ) -> None:
        self.path = Path(path)
        self._fsync = fsync
        self._boundary_every_s = boundary_every_s
        self._boundary_every_chunks = boundary_every_chunks
        self._streams: dict[int, _Stream] = {}
        self._boundary_start: dict[int, float] = {}
        self._chunks_since_boundary = 0
        self._lock = threading.Lock()
        self._size = 0
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | getattr(os, "O_BINARY", 0)
        try:
            self._fd: int | None = os.open(self.path, flags, 0o644)
        except FileExistsError as exc:
            raise OutputError(
                f"{self.path} already exists; expected a new XDF file name. Nothing was written.",
                fix="choose another output file, or move the old recording away first.",
                path=self.path,
            ) from exc
        except OSError as exc:
            raise OutputError(
                f"{self.path}: cannot create the XDF file ({exc.strerror}).",
                fix="check that the folder exists and is writable.",
                path=self.path,
            ) from exc
        if fsync and hasattr(os, "O_DIRECTORY"):  # make the new directory entry durable too
            dir_fd = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        when = datetime.now().astimezone().isoformat(timespec="seconds")
        header = _xml(_element("info", [("version", "1.0"), ("datetime", when)]))
        try:  # magic and header in one write: no file is ever just "XDF:"
            self._write(MAGIC + _chunk(TAG_FILE_HEADER, header))
        except BaseException:
            os.close(self._fd)
            self._fd = None
            raise

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has run."""
        return self._fd is None

    def add_stream(
        self,
        name: str,
        type: str,
        channel_count: int,
        nominal_srate: float,
        channel_format: str,
        source_id: str = "",
        desc_xml: str = "",
    ) -> int:
        """Declare a stream (its StreamHeader is written now) and return its stream id.

        ``desc_xml`` is empty, a ``<desc>`` element (see :func:`channel_desc`), or a whole
        ``<info>`` document such as ``pylsl.StreamInfo.as_xml()``, whose other fields (uid,
        created_at, hostname, desc...) are kept. The arguments always win for the fields
        that decide how samples are encoded, so header and samples cannot disagree.
        """
        if channel_format not in CHANNEL_FORMATS:
            raise ValueError(f"channel_format {channel_format!r} is not one of {CHANNEL_FORMATS}")
        if channel_count < 1:
            raise ValueError(f"channel_count must be at least 1, got {channel_count}")
        given = ET.fromstring(desc_xml) if desc_xml.strip() else ET.Element("desc")
        if given.tag == "info":
            info = given
        elif given.tag == "desc":
            info = _element(
                "info",
                [
                    ("version", "1.1"),
                    ("created_at", repr(time.monotonic())),
                    ("uid", str(uuid.uuid4())),
                    ("hostname", socket.gethostname()),
                ],
            )
            info.append(given)
        else:
            raise ValueError(f"desc_xml must be a <desc> or <info> element, not <{given.tag}>")
        fields = {
            "name": name,
            "type": type,
            "channel_count": str(int(channel_count)),
            "nominal_srate": repr(float(nominal_srate)),
            "channel_format": channel_format,
        }
        if source_id or info.find("source_id") is None:
            fields["source_id"] = source_id
        for position, (key, text) in enumerate(fields.items()):
            node = info.find(key)
            if node is None:
                node = ET.Element(key)
                info.insert(position, node)
            node.text = text
        with self._lock:
            stream_id = len(self._streams) + 1
            self._streams[stream_id] = _Stream(int(channel_count), channel_format)
            header = struct.pack("<I", stream_id) + _xml(info)
            self._write(_chunk(TAG_STREAM_HEADER, header))
        return stream_id

    def write_samples(
        self,
        stream_id: int,
        timestamps: Sequence[float] | np.ndarray,
        values: np.ndarray | Sequence[Sequence[str]],
    ) -> None:
        """Append samples: ``values`` is ``(n, channel_count)`` numbers (cast to the stream's
        format), or ``n`` lists of ``channel_count`` strings for a string stream.

        Large calls are split into chunks of about :data:`MAX_CHUNK_BYTES`.
        """
        stream = self._stream(stream_id)
        stamps = np.asarray(timestamps, dtype="<f8").reshape(-1)
        n = stamps.size
        if stream.channel_format == "string":
            rows = [list(row) for row in values]
            if len(rows) != n or any(len(row) != stream.channel_count for row in rows):
                raise ValueError(
                    f"stream {stream_id}: expected {n} samples of {stream.channel_count} "
                    "strings, one per timestamp"
                )
            encoded = [_string_sample(t, row) for t, row in zip(stamps, rows, strict=True)]
        else:
            array = np.asarray(values)
            if array.ndim == 1 and stream.channel_count == 1:
                array = array[:, None]
            if array.shape != (n, stream.channel_count):
                raise ValueError(
                    f"stream {stream_id}: values of shape {array.shape}, expected "
                    f"({n}, {stream.channel_count}) to match {n} timestamps"
                )
            encoded = _numeric_samples(stamps, array, NUMERIC_DTYPES[stream.channel_format])
        start = 0
        with self._lock:
            while start < n:
                stop, size = start + 1, len(encoded[start])
                while stop < n and size + len(encoded[stop]) <= MAX_CHUNK_BYTES:
                    size += len(encoded[stop])
                    stop += 1
                content = struct.pack("<I", stream_id) + _varlen(stop - start)
                self._write(_chunk(TAG_SAMPLES, content + b"".join(encoded[start:stop])))
                stream.sample_count += stop - start
                if stream.first_timestamp is None:
                    stream.first_timestamp = float(stamps[start])
                stream.last_timestamp = float(stamps[stop - 1])
                self._after_samples(stream_id, float(stamps[start]), float(stamps[stop - 1]))
                start = stop

    def write_clock_offset(self, stream_id: int, collection_time: float, offset: float) -> None:
        """Record a clock offset: add ``offset`` to the stream's timestamps near
        ``collection_time`` to get the recording host's clock (``inlet.time_correction()``).
        """
        stream = self._stream(stream_id)
        content = struct.pack("<Idd", stream_id, collection_time, offset)
        with self._lock:
            self._write(_chunk(TAG_CLOCK_OFFSET, content))
            stream.clock_offsets.append((float(collection_time), float(offset)))

    def write_boundary(self) -> None:
        """Write a Boundary chunk, where a reader can resume after a damaged chunk."""
        with self._lock:
            self._write_boundary()

    def close(self) -> None:
        """Write a StreamFooter per stream, flush to disk and close; a second call does nothing."""
        with self._lock:
            if self._fd is None:
                return
            try:
                for stream_id, stream in self._streams.items():
                    footer = struct.pack("<I", stream_id) + _xml(_footer(stream))
                    self._write(_chunk(TAG_STREAM_FOOTER, footer))
                os.fsync(self._fd)
            finally:
                os.close(self._fd)
                self._fd = None

    def _stream(self, stream_id: int) -> _Stream:
        if self._fd is None:
            raise ValueError(f"{self.path}: the XDF writer is closed")
        if stream_id not in self._streams:
            raise ValueError(f"unknown stream id {stream_id}; use the id add_stream returned")
        return self._streams[stream_id]

    def _after_samples(self, stream_id: int, first: float, last: float) -> None:
        start = self._boundary_start.setdefault(stream_id, first)
        if (
            last - start >= self._boundary_every_s
            or self._chunks_since_boundary >= self._boundary_every_chunks
        ):
            self._write_boundary()

    def _write_boundary(self) -> None:
        self._write(_chunk(TAG_BOUNDARY, BOUNDARY_UUID))
        self._boundary_start.clear()
        self._chunks_since_boundary = 0

    def _write(self, data: bytes) -> None:
        """Append one whole chunk with one ``os.write``, or leave the file as it was."""
        if self._fd is None:
            raise ValueError(f"{self.path}: the XDF writer is closed")
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._fd, view) :]
            if self._fsync:
                os.fsync(self._fd)
        except BaseException as exc:
            if view.nbytes != len(data):  # part of the chunk is in the file: take it back
                with contextlib.suppress(OSError):  # else truncate_to_last_chunk repairs it
                    os.ftruncate(self._fd, self._size)
            if isinstance(exc, OSError):
                raise OutputError(
                    f"{self.path}: cannot write to the XDF file ({exc.strerror}); it holds "
                    "every chunk written before.",
                    fix="free disk space or check the drive, then record to a new file.",
                    path=self.path,
                ) from exc
            raise
        self._size += len(data)
        self._chunks_since_boundary += 1


def _numeric_samples(stamps: np.ndarray, values: np.ndarray, dtype: str) -> list[bytes]:
    """Each sample as ``[8][float64 timestamp][values]``, encoded by one numpy pass."""
    channels = values.shape[1]
    layout = np.dtype([("nbytes", "u1"), ("stamp", "<f8"), ("values", dtype, (channels,))])
    records = np.empty(stamps.size, dtype=layout)
    records["nbytes"] = 8
    records["stamp"] = stamps
    records["values"] = values.astype(dtype, copy=False)
    raw = records.tobytes()
    return [raw[i : i + layout.itemsize] for i in range(0, len(raw), layout.itemsize)]


def _string_sample(stamp: float, row: Sequence[str]) -> bytes:
    parts = [struct.pack("<Bd", 8, stamp)]
    for value in row:
        data = str(value).encode("utf-8")
        parts += [_varlen(len(data)), data]
    return b"".join(parts)


def _footer(stream: _Stream) -> ET.Element:
    def text(value: float | None) -> str:
        return "" if value is None else repr(value)

    info = _element(
        "info",
        [
            ("first_timestamp", text(stream.first_timestamp)),
            ("last_timestamp", text(stream.last_timestamp)),
            ("sample_count", str(stream.sample_count)),
        ],
    )
    offsets = ET.SubElement(info, "clock_offsets")
    for when, value in stream.clock_offsets:
        offsets.append(_element("offset", [("time", repr(when)), ("value", repr(value))]))
    return info


def truncate_to_last_chunk(path: str | Path) -> int:
    """Cut a damaged XDF file after its last sound chunk; return the number of bytes removed.

    For the tail a power loss leaves: a chunk cut short, zero bytes where data never reached
    the disk, or a last chunk pyxdf would stop at or drop (unparsable header or footer XML,
    short ClockOffset, unknown stream id). Damage followed by intact data is refused rather
    than cut: pyxdf skips a damaged Samples chunk by itself, scanning to the next Boundary.
    """
    path = Path(path)
    with path.open("r+b") as f:
        data = f.read()
        if not data.startswith(MAGIC):
            raise RecordingFormatError(
                f"{path}: not an XDF file (expected the 'XDF:' magic bytes at its start).",
                fix="check that this is the file LabRecorder or 'neuroclip record' wrote.",
                path=path,
            )
        good = _end_of_last_chunk(data, path)
        removed = len(data) - good
        if removed:
            f.truncate(good)
            f.flush()
            os.fsync(f.fileno())
    return removed


_WIDTHS = {1: "<B", 4: "<I", 8: "<Q"}


def _end_of_last_chunk(data: bytes, path: Path) -> int:
    """Offset just after the last chunk that is complete and that pyxdf can read."""
    pos = len(MAGIC)
    streams: set[int] = set()
    while pos < len(data):
        width = data[pos]
        if width not in _WIDTHS:
            end = None
        else:
            head = pos + 1 + width
            if head + 2 > len(data):
                return pos  # cut inside the chunk header
            (length,) = struct.unpack_from(_WIDTHS[width], data, pos + 1)
            end = head + length
            if end > len(data):
                return pos  # cut inside the chunk content
            (tag,) = struct.unpack_from("<H", data, head)
            if _chunk_ok(tag, data[head + 2 : end], streams):
                pos = end
                continue
        if not data[pos if end is None else end :].strip(b"\x00"):
            return pos  # the damage is the end of the file (zeros at most after it)
        raise RecordingFormatError(
            f"{path}: damaged chunk at byte {pos} with intact data after it; not truncated.",
            fix="read it with pyxdf, which skips damaged sample chunks up to the next "
            "boundary chunk.",
            path=path,
        )
    return pos


def _chunk_ok(tag: int, content: bytes, streams: set[int]) -> bool:
    """Whether pyxdf reads this whole chunk as meant; records the declared stream ids."""
    if tag == TAG_BOUNDARY:
        return content == BOUNDARY_UUID
    if tag == TAG_FILE_HEADER:
        return _parses(content)
    if tag not in (TAG_STREAM_HEADER, TAG_SAMPLES, TAG_CLOCK_OFFSET, TAG_STREAM_FOOTER):
        return False
    if len(content) < 4:
        return False
    (stream_id,) = struct.unpack_from("<I", content)
    if tag == TAG_STREAM_HEADER:
        streams.add(stream_id)
        return _parses(content[4:])
    if tag == TAG_CLOCK_OFFSET:
        return stream_id in streams and len(content) == 20
    if tag == TAG_STREAM_FOOTER:
        return stream_id in streams and _parses(content[4:])
    return stream_id in streams


def _parses(xml: bytes) -> bool:
    try:
        ET.fromstring(xml)
    except ET.ParseError:
        return False
    return True
