"""Where results are written: never over something that is already there."""

from __future__ import annotations

import csv
from pathlib import Path

from contract.errors import OutputError


def write_tsv(path: Path, rows: list[dict[str, str]]) -> None:
    """Write ``rows`` as a BIDS tab-separated file with a header (the first row's keys)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(
            handle, fieldnames=list(rows[0]), delimiter="\t", lineterminator="\n"
        )
        writer.writeheader()
        writer.writerows(rows)


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


def write_participant_groups(root: Path, groups: dict[str, str], levels: dict[str, str]) -> None:
    """Add ``group`` to the ``participants.tsv`` MNE-BIDS wrote, keeping its columns.

    ``groups`` maps ``sub-XX`` to ``MA`` or ``HC``; ``levels`` describes each level in
    ``participants.json``.
    """
    import json

    path = root / "participants.tsv"
    written: dict[str, dict[str, str]] = {}
    if path.is_file():  # MNE-BIDS wrote one with age/sex/hand columns as n/a
        with path.open(encoding="utf-8", newline="") as handle:
            written = {r["participant_id"]: r for r in csv.DictReader(handle, delimiter="\t")}
    rows = []
    for pid, group in groups.items():
        row = dict(written.get(pid, {"participant_id": pid}))
        row["group"] = group
        rows.append(row)
    write_tsv(path, rows)
    sidecar = root / "participants.json"
    meta = json.loads(sidecar.read_text()) if sidecar.is_file() else {}
    meta["group"] = {"Description": "Diagnostic group", "Levels": levels}
    sidecar.write_text(json.dumps(meta, indent=2))
