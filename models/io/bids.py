"""Read BIDS datasets that follow the dataset contract of DESIGN.md, through MNE-BIDS.

``participants.tsv`` has ``group`` in {MA, HC}; ``sub-XX/sub-XX_sessions.tsv`` has
``session_id``, ``craving`` (VAS 0-100) and ``rtms`` in {pre, post, none}; task ``cue``; EEG
and NIRS of one session are simultaneous and ``events.tsv`` holds the marker names.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path

from contract.errors import DatasetError, RecordingNotFoundError
from models.signals import Recording

logger = logging.getLogger(__name__)

GROUPS = ("MA", "HC")
RTMS_STATES = ("pre", "post", "none")
_DATA_EXTENSIONS = (".vhdr", ".edf", ".bdf", ".set", ".fif", ".snirf")


@dataclass(frozen=True)
class SessionInfo:
    """What ``sessions.tsv`` and ``participants.tsv`` say about one session."""

    subject: str
    session: str
    group: str
    craving: float | None
    rtms: str


def _read_tsv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


class BidsDataset:
    """A BIDS dataset with EEG and NIRS per session, validated on opening."""

    def __init__(self, root: str | Path, task: str = "cue", nirs_unit: str | None = None):
        self.root = Path(root)
        self.task = task
        self.nirs_unit = nirs_unit
        """The HbO/HbR unit of SNIRF files that declare none (``--nirs-unit``)."""
        if not self.root.is_dir():
            raise RecordingNotFoundError(
                f"BIDS dataset folder {self.root} does not exist.",
                fix="pass the dataset root (the folder holding dataset_description.json).",
                path=self.root,
            )
        participants = self.root / "participants.tsv"
        if not participants.is_file():
            raise DatasetError(
                f"{participants} is missing.",
                fix="add participants.tsv with columns participant_id and group (MA or HC).",
                path=participants,
            )
        rows = _read_tsv(participants)
        if not rows or "group" not in rows[0]:
            raise DatasetError(
                f"{participants} has no 'group' column (columns: "
                f"{', '.join(rows[0]) if rows else 'none'}).",
                fix="add a 'group' column with MA or HC for every participant.",
                path=participants,
            )
        self._groups: dict[str, str] = {}
        for row in rows:
            sub = row["participant_id"].removeprefix("sub-")
            group = (row.get("group") or "").strip()
            if group not in GROUPS:
                raise DatasetError(
                    f"{participants}: participant sub-{sub} has group {group!r}; "
                    f"expected one of {', '.join(GROUPS)}.",
                    fix="set group to MA or HC for every participant.",
                    path=participants,
                )
            self._groups[sub] = group

    @property
    def subjects(self) -> list[str]:
        """Subject labels without the ``sub-`` prefix, in participants.tsv order."""
        return list(self._groups)

    def group(self, subject: str) -> str:
        """``MA`` or ``HC``."""
        return self._groups[subject]

    def sessions(self, subject: str) -> list[SessionInfo]:
        """The sessions of one subject, from its ``sessions.tsv``."""
        path = self.root / f"sub-{subject}" / f"sub-{subject}_sessions.tsv"
        if not path.is_file():
            raise DatasetError(
                f"{path} is missing.",
                fix="add sessions.tsv with columns session_id, craving and rtms.",
                path=path,
            )
        out = []
        for row in _read_tsv(path):
            rtms = (row.get("rtms") or "none").strip()
            if rtms not in RTMS_STATES:
                raise DatasetError(
                    f"{path}: session {row.get('session_id')} has rtms {rtms!r}; expected "
                    f"one of {', '.join(RTMS_STATES)}.",
                    fix="set rtms to pre, post or none.",
                    path=path,
                )
            craving_text = (row.get("craving") or "").strip()
            craving = None if craving_text in ("", "n/a") else float(craving_text)
            out.append(
                SessionInfo(
                    subject,
                    row["session_id"].removeprefix("ses-"),
                    self._groups[subject],
                    craving,
                    rtms,
                )
            )
        return out

    def read(self, subject: str, session: str) -> Recording:
        """Read the EEG and NIRS of one session, with the events as markers."""
        import mne
        import mne_bids

        from models.io.files import haemoglobin_unit
        from models.io.mne_raw import recording_from_raw

        blocks = []
        markers = None
        info = next((s for s in self.sessions(subject) if s.session == session), None)
        for datatype in ("eeg", "nirs"):
            bids_path = mne_bids.BIDSPath(
                root=self.root,
                subject=subject,
                session=session,
                task=self.task,
                datatype=datatype,
                suffix=datatype,
            )
            matches = [m for m in bids_path.match() if m.extension in _DATA_EXTENSIONS]
            if not matches:
                continue
            with mne.utils.use_log_level("error"):
                raw = mne_bids.read_raw_bids(bids_path=matches[0], verbose="error")
            path = Path(matches[0].fpath)
            hb_unit, hb_to_um = (
                haemoglobin_unit(path, self.nirs_unit) if path.suffix == ".snirf" else ("M", 1e6)
            )
            recording = recording_from_raw(raw, path, hb_unit=hb_unit, hb_to_um=hb_to_um)
            blocks.extend(recording.blocks)
            if markers is None or not len(markers):
                markers = recording.markers
        if not blocks:
            raise DatasetError(
                f"{self.root}: sub-{subject} ses-{session} task-{self.task} has neither EEG "
                "nor NIRS data.",
                fix="check the file names against BIDS (sub-X_ses-Y_task-cue_eeg.*).",
                path=self.root,
            )
        meta = {"subject": subject, "session": session, "group": self.group(subject)}
        if info is not None:
            meta.update(craving=info.craving, rtms=info.rtms)
        return Recording(source=self.root, blocks=tuple(blocks), markers=markers, meta=meta)
