"""Read one recording file of any supported format into a :class:`~models.signals.Recording`."""

from __future__ import annotations

import logging
from pathlib import Path

from contract.errors import RecordingFormatError, RecordingNotFoundError
from models.signals import Recording

logger = logging.getLogger(__name__)

MNE_READERS = {
    ".snirf": "read_raw_snirf",
    ".edf": "read_raw_edf",
    ".bdf": "read_raw_bdf",
    ".vhdr": "read_raw_brainvision",
    ".set": "read_raw_eeglab",
    ".fif": "read_raw_fif",
}
SUPPORTED = (*MNE_READERS, ".xdf", ".xdfz", "NIRx folder (with a .hdr file)")


def read_recording(path: str | Path) -> Recording:
    """Read an XDF file, a file MNE reads (SNIRF, EDF/BDF, BrainVision, EEGLAB, FIF) or a
    NIRx folder.

    Raises
    ------
    RecordingNotFoundError
        When ``path`` does not exist.
    RecordingFormatError
        When the format is unsupported or the file cannot be parsed.
    """
    path = Path(path)
    if not path.exists():
        raise RecordingNotFoundError(
            f"Recording {path} does not exist.",
            fix="check the path; relative paths are resolved from the current folder.",
            path=path,
        )
    suffix = "".join(path.suffixes[-1:]).lower()
    if suffix in (".xdf", ".xdfz"):
        from models.io.xdf import read_xdf

        return read_xdf(path)
    if path.is_dir():
        if not any(path.glob("*.hdr")):
            raise _unsupported(path)
        return _read_with_mne(path, "read_raw_nirx")
    if path.name.endswith(".fif.gz"):
        return _read_with_mne(path, "read_raw_fif")
    if suffix not in MNE_READERS:
        raise _unsupported(path)
    return _read_with_mne(path, MNE_READERS[suffix])


def _unsupported(path: Path) -> RecordingFormatError:
    return RecordingFormatError(
        f"{path}: unsupported recording format. Supported: {', '.join(SUPPORTED)}.",
        fix="convert the file to one of these formats (e.g. with MNE-Python), or open a BIDS "
        "dataset with 'neuroclip inspect --bids ROOT'.",
        path=path,
    )


def _read_with_mne(path: Path, reader_name: str) -> Recording:
    import mne

    from models.io.mne_raw import recording_from_raw

    reader = getattr(mne.io, reader_name)
    try:
        raw = reader(path, preload=True, verbose="error")
    except (OSError, ValueError, KeyError, RuntimeError, IndexError, TypeError) as exc:
        raise RecordingFormatError(
            f"{path}: MNE's {reader_name} could not read it: {type(exc).__name__}: {exc}",
            fix="check that the file is complete (companion files such as .fdt, .eeg and "
            ".vmrk beside it) and not truncated.",
            path=path,
        ) from exc
    logger.debug("read %s with mne.io.%s", path, reader_name)
    return recording_from_raw(raw, path)
