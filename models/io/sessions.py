"""One session from one path: an XDF file, a file MNE reads, or a BIDS session folder.

``neuroclip replay`` and ``neuroclip score`` take the same argument; this module decides
what it is. A BIDS session is named by its folder (``ROOT/sub-01/ses-pre``) or, for a
dataset without sessions, by the subject folder (``ROOT/sub-01``); the dataset root is the
nearest parent holding ``dataset_description.json``.
"""

from __future__ import annotations

from pathlib import Path

from contract.errors import DatasetError
from models.io.files import read_recording
from models.signals import Recording


def _bids_parts(path: Path) -> tuple[Path, str, str | None] | None:
    """``(root, subject, session)`` when ``path`` is a subject or session folder."""
    if not path.is_dir():
        return None
    session = path.name[4:] if path.name.startswith("ses-") else None
    subject_dir = path.parent if session is not None else path
    if not subject_dir.name.startswith("sub-"):
        return None
    root = subject_dir.parent
    if not (root / "dataset_description.json").is_file():
        return None
    return root, subject_dir.name[4:], session


def read_session(path: str | Path, task: str = "cue", nirs_unit: str | None = None) -> Recording:
    """Read the recording at ``path`` (see the module docstring for what it may be).

    ``nirs_unit``: the haemoglobin unit of a file that declares none (see
    :func:`models.io.read_recording`).

    Raises
    ------
    RecordingNotFoundError, RecordingFormatError
        As :func:`models.io.read_recording`.
    DatasetError
        When a BIDS subject folder holds several sessions (name one of them).
    """
    path = Path(path)
    parts = _bids_parts(path)
    if parts is None:
        return read_recording(path, nirs_unit=nirs_unit)
    from models.io.bids import BidsDataset

    root, subject, session = parts
    dataset = BidsDataset(root, task=task, nirs_unit=nirs_unit)
    if session is None:
        sessions = [s.session for s in dataset.sessions(subject)]
        if len(sessions) != 1:
            raise DatasetError(
                f"{path} holds {len(sessions)} sessions ({', '.join(sessions) or 'none'}).",
                fix=f"name one session folder, e.g. {path / ('ses-' + sessions[0])}"
                if sessions
                else "add the session's EEG and NIRS files.",
                path=path,
            )
        session = sessions[0]
    return dataset.read(subject, session)


def contents(recording: Recording) -> str:
    """What a recording holds, for messages: its streams by kind, and the empty ones."""
    held = ", ".join(f"{b.name} ({b.kind}, {len(b.ch_names)} ch)" for b in recording.blocks)
    empty = recording.meta.get("empty_streams") or []
    text = f"it holds {held or 'no signal stream'}"
    return text + (f"; empty streams: {', '.join(map(str, empty))}" if empty else "")
