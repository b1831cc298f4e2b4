"""Where results are written: never over something that is already there."""

from __future__ import annotations

from pathlib import Path

from models.errors import OutputError


def require_new_folder(path: str | Path, what: str) -> Path:
    """Return ``path`` if it does not exist or is an empty folder; else a clear refusal.

    Nothing is created or removed here, so a refused command leaves the folder untouched.
    """
    folder = Path(path)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise OutputError(
            f"{what} {folder} already exists and is not empty; nothing was written.",
            fix="choose a new folder with --out, or remove the old one first.",
            path=folder,
        )
    return folder


def require_new_file(path: str | Path, what: str) -> Path:
    """Return ``path`` if nothing is there yet and its folder exists; else a clear refusal."""
    target = Path(path)
    if target.exists():
        raise OutputError(
            f"{what} {target} already exists; nothing was written.",
            fix="choose a new file name with --out, or remove the old file first.",
            path=target,
        )
    if not target.parent.is_dir():
        raise OutputError(
            f"The folder of {what} {target} does not exist.",
            fix=f"create {target.parent} first, or choose another --out.",
            path=target,
        )
    return target
