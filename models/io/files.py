"""Read one recording file of any supported format into a :class:`~models.signals.Recording`."""

from __future__ import annotations

import logging
from pathlib import Path

from contract.errors import ChannelError, RecordingFormatError, RecordingNotFoundError
from models.signals import Recording
from models.units import HB_TO_UM

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


def read_recording(path: str | Path, nirs_unit: str | None = None) -> Recording:
    """Read an XDF file, a file MNE reads (SNIRF, EDF/BDF, BrainVision, EEGLAB, FIF) or a
    NIRx folder.

    ``nirs_unit`` names the unit of a SNIRF file's haemoglobin data when the file declares
    none (``--nirs-unit uM``); a file that declares another unit is refused.

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
    return _read_with_mne(path, MNE_READERS[suffix], nirs_unit)


def _unsupported(path: Path) -> RecordingFormatError:
    return RecordingFormatError(
        f"{path}: unsupported recording format. Supported: {', '.join(SUPPORTED)}.",
        fix="convert the file to one of these formats (e.g. with MNE-Python), or open a BIDS "
        "dataset with 'neuroclip inspect --bids ROOT'.",
        path=path,
    )


def _read_with_mne(path: Path, reader_name: str, nirs_unit: str | None = None) -> Recording:
    import mne

    from models.io.mne_raw import recording_from_raw

    reader = getattr(mne.io, reader_name)
    try:
        options = {"saturated": "nan"} if reader_name == "read_raw_nirx" else {}
        raw = reader(path, preload=True, verbose="error", **options)
    except (OSError, ValueError, KeyError, RuntimeError, IndexError, TypeError) as exc:
        raise RecordingFormatError(
            f"{path}: MNE's {reader_name} could not read it: {type(exc).__name__}: {exc}",
            fix="check that the file is complete (companion files such as .fdt, .eeg and "
            ".vmrk beside it) and not truncated.",
            path=path,
        ) from exc
    logger.debug("read %s with mne.io.%s", path, reader_name)
    hb_unit, hb_to_um = haemoglobin_unit(path, nirs_unit) if path.suffix == ".snirf" else ("M", 1e6)
    return recording_from_raw(raw, path, hb_unit=hb_unit, hb_to_um=hb_to_um)


def haemoglobin_unit(path: Path, nirs_unit: str | None = None) -> tuple[str, float | None]:
    """The unit of a SNIRF file's HbO/HbR and the factor from MNE's numbers to uM.

    MNE scales a declared ``dataUnit`` to molar (factor 1e6); a file that declares none
    is read as molar without a word, so its numbers are in ``nirs_unit`` when given, and
    the factor is ``None`` (refused by :func:`models.io.mne_raw.recording_from_raw`) when
    not. Used for single files and for SNIRF files inside BIDS datasets alike.
    """
    declared = snirf_data_unit(path)
    unit = _declared_or_given(path, declared, nirs_unit)
    if declared:
        return unit, 1e6
    return unit, HB_TO_UM.get(unit)


def _declared_or_given(path: Path, declared: str, given: str | None) -> str:
    """The haemoglobin unit to use: the file's own, or the one given when it has none."""
    if given is None:
        return declared
    if given not in HB_TO_UM:
        raise ChannelError(
            f"--nirs-unit {given!r} is not a concentration unit; accepted: "
            f"{', '.join(k for k in HB_TO_UM if '/' not in k)}.",
            fix="give the unit the device exported, e.g. --nirs-unit uM.",
            path=path,
        )
    if declared and HB_TO_UM.get(declared) != HB_TO_UM[given]:
        raise ChannelError(
            f"{path} declares its haemoglobin unit as {declared!r}, but --nirs-unit says "
            f"{given!r}.",
            fix="drop --nirs-unit: the file's own unit is used.",
            path=path,
        )
    return given


def snirf_data_unit(path: Path) -> str:
    """The ``dataUnit`` a SNIRF file declares for its first channel (``""`` when none; MNE
    assumes one unit for all channels too)."""
    import h5py

    with h5py.File(path, "r") as f:
        value = f.get("nirs/data1/measurementList1/dataUnit")
        if value is None:
            return ""
        raw = value[()]
    if hasattr(raw, "item"):
        raw = raw.item()
    return raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
