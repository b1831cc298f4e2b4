"""Turn one recorded session (an XDF from ``neuroclip record`` or LabRecorder) into a session
of a BIDS dataset that ``neuroclip train`` and ``evaluate`` read (docs/datasets.md).

EEG goes to BrainVision and fNIRS (raw intensity) to SNIRF through MNE-BIDS, both cropped
to the span both streams cover, so that sample 0 of each file is the same instant (the
dataset contract: simultaneous EEG and NIRS). Markers become the annotations and stimuli of
both files. ``participants.tsv`` gets the subject's ``group``, ``sub-XX_sessions.tsv`` the
session's ``craving`` and ``rtms``. SNIRF needs optode positions, which an LSL stream does
not carry: they come from an optode table, or from the simulator's montage when the pairs
and distances are that montage's.

A conversion is all or nothing, so that a refused or failed one can simply be run again:
every check runs before anything is written; then the session's files and copies of the
dataset-level files it changes (``participants.tsv``/``.json``, ``dataset_description.json``,
``README``, the subject's sessions file) are written into a staging folder
``ROOT/.convert-<random>`` (the same filesystem, so moves are renames), and only when all of
them exist are they moved into place: the new session (or subject) folder by one rename,
each changed file by ``os.replace``. A refusal or an error leaves ``ROOT`` byte for byte as
it was, and a ``ROOT`` that did not exist before does not exist after.
"""

from __future__ import annotations

import csv
import filecmp
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from contract.errors import ChannelError, DatasetError, NeuroclipError, OutputError
from models.io.bids import GROUPS, RTMS_STATES
from models.signals import Markers, NirsLayout, Recording, SignalBlock
from models.units import EEG_UNIT_FIX, KIND_NAMES, eeg_unit_refusal

if TYPE_CHECKING:
    import mne
    import mne_bids

logger = logging.getLogger(__name__)

TASK = "cue"
STAGING_PREFIX = ".convert-"
_PAIR = re.compile(r"^S(\d+)_D(\d+)$")
_ID = re.compile(r"^[A-Za-z0-9]+$")


def read_optodes(path: Path) -> dict[str, np.ndarray]:
    """An optode table: tab-separated ``name x y z`` (metres, head coordinates), names
    ``S1``... and ``D1``..."""
    table: dict[str, np.ndarray] = {}
    with Path(path).open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            try:
                table[row["name"]] = np.array([float(row[k]) for k in ("x", "y", "z")])
            except (KeyError, TypeError, ValueError):
                raise DatasetError(
                    f"{path}: row {row} is not 'name x y z' in metres.",
                    fix="write a tab-separated table with the header: name x y z",
                    path=path,
                ) from None
    return table


def _simulator_optodes(pairs: list[tuple[int, int]], distances: np.ndarray) -> dict | None:
    """The simulator's optode positions, if these pairs and distances are its montage's."""
    from models.simulation.montage import NIRS_DETECTORS, NIRS_SOURCES, nirs_pairs, positions

    known = {(p.source, p.detector): p.distance_m for p in nirs_pairs()}
    if not all(
        pair in known and abs(known[pair] - d) < 0.005
        for pair, d in zip(pairs, distances, strict=True)
    ):
        return None
    pos = positions()
    table = {f"S{i + 1}": pos[name] for i, name in enumerate(NIRS_SOURCES)}
    table.update({f"D{i + 1}": pos[name] for i, name in enumerate(NIRS_DETECTORS)})
    return table


@dataclass(frozen=True)
class _Span:
    """The span both streams cover: its first sample and length in each stream, and the
    time of the first EEG sample (the zero of the events)."""

    e0: int
    n_eeg: int
    n0: int
    n_nirs: int
    start: float


@dataclass(frozen=True)
class _Montage:
    """What SNIRF needs of the fNIRS layout: the source-detector pairs, the wavelengths, the
    optode positions and the column order (pair by pair, wavelengths ascending)."""

    pairs: list[tuple[int, int]]
    wavelengths: list[float]
    sources: np.ndarray
    detectors: np.ndarray
    order: list[int]


@dataclass(frozen=True)
class _Conversion:
    """Everything the session's files are made of, checked and computed before any file is
    written (so that a refusal comes before a write)."""

    subject: str
    session: str
    eeg: mne.io.BaseRaw
    nirs_data: np.ndarray
    nirs_sfreq: float
    montage: _Montage
    stimuli: dict[str, np.ndarray]
    when: datetime
    participant: dict[str, str]
    session_row: dict[str, str]

    @property
    def subject_dir(self) -> str:
        """The subject's folder name, ``sub-<subject>``."""
        return f"sub-{self.subject}"


@dataclass(frozen=True)
class _Move:
    """One rename of the commit: ``source`` (staged) onto ``target`` (in the dataset);
    ``backup`` is a copy of what ``target`` held before, or None where it did not exist."""

    source: Path
    target: Path
    backup: Path | None


class _UndoFailedError(OutputError):
    """Moving the staged files into place failed and could not be fully undone: the one case
    in which the dataset may be partly written (and the message must not say otherwise)."""


def convert_session(
    recording: Recording,
    root: Path,
    subject: str,
    session: str,
    *,
    group: str,
    rtms: str = "none",
    craving: float | None = None,
    optodes: dict[str, np.ndarray] | None = None,
    line_freq: float = 50.0,
) -> Path:
    """Write ``recording`` as ``root/sub-<subject>/ses-<session>``; returns that folder.

    All or nothing (see the module docstring): a refusal or an error leaves ``root`` as it
    was, and its message ends with ``Nothing was written to <root>.``; an I/O error becomes
    an :class:`OutputError` that says so too.
    """
    root = Path(root)
    try:
        conversion = _prepare(
            recording,
            root,
            subject,
            session,
            group=group,
            rtms=rtms,
            craving=craving,
            optodes=optodes,
            line_freq=line_freq,
        )
        with _staging(root) as temp:
            stage = _write_session(conversion, root, temp)
            _commit(_plan(stage, root, temp / "backup", conversion.subject_dir), root)
    except _UndoFailedError:
        raise
    except NeuroclipError as exc:
        _say_nothing_written(exc, root)
        raise
    except OSError as exc:
        raise OutputError(
            f"could not write the session into {root}: {exc}. Nothing was written to {root}.",
            fix="check that the dataset folder is writable and has free space, then convert again.",
            path=root,
        ) from exc
    except Exception as exc:
        exc.add_note(f"Nothing was written to {root}.")
        raise
    return root / conversion.subject_dir / f"ses-{session}"


def _say_nothing_written(exc: NeuroclipError, root: Path) -> None:
    """Append ``Nothing was written to <root>.`` to a refusal's message, so the user knows
    there is nothing to clean up before running the conversion again."""
    note = f"Nothing was written to {root}."
    NeuroclipError.__init__(exc, f"{exc.message} {note}", fix=exc.fix, path=exc.path)


# --- checks and computations: nothing is written here ---------------------------------------


def _prepare(
    recording: Recording,
    root: Path,
    subject: str,
    session: str,
    *,
    group: str,
    rtms: str,
    craving: float | None,
    optodes: dict[str, np.ndarray] | None,
    line_freq: float,
) -> _Conversion:
    """Run every check of the conversion and compute the content of its files."""
    _check_labels(subject, session, group, rtms)
    eeg, nirs = _check_streams(recording)
    _check_new_session(root, subject, session)
    span = _common_span(recording, eeg, nirs)
    montage = _nirs_montage(recording, nirs.nirs, optodes)
    onsets, labels = _events(recording.markers, span.start, span.n_eeg / eeg.sfreq)
    when = datetime.now(UTC).replace(microsecond=0)
    return _Conversion(
        subject=subject,
        session=session,
        eeg=_eeg_raw(eeg, span, onsets, labels, when, line_freq),
        nirs_data=nirs.data[span.n0 : span.n0 + span.n_nirs][:, montage.order],
        nirs_sfreq=nirs.sfreq,
        montage=montage,
        stimuli=_stimuli(onsets, labels),
        when=when,
        participant={"group": group},
        session_row={"craving": "n/a" if craving is None else f"{craving:g}", "rtms": rtms},
    )


def _check_labels(subject: str, session: str, group: str, rtms: str) -> None:
    """Refuse labels that are not BIDS labels (a name, say) and unknown group or rTMS."""
    for name, value in (("subject", subject), ("session", session)):
        if not _ID.match(value):
            raise DatasetError(
                f"BIDS {name} label {value!r} must be letters and digits only.",
                fix=f"pass a pseudonymous {name} label such as 01 or pre (never a name).",
            )
    if group not in GROUPS or rtms not in RTMS_STATES:
        raise DatasetError(
            f"group must be one of {', '.join(GROUPS)} and rtms one of {', '.join(RTMS_STATES)}; "
            f"got {group!r} and {rtms!r}.",
            fix="pass --group MA|HC and --rtms pre|post|none.",
        )


def _check_streams(recording: Recording) -> tuple[SignalBlock, SignalBlock]:
    """The EEG and NIRS streams; refused unless both exist and the NIRS is raw intensity."""
    eeg, nirs = recording.eeg, recording.nirs
    if eeg is None or nirs is None:
        raise DatasetError(
            f"{recording.source}: a NeuroCLIP session needs an EEG and an NIRS stream.",
            fix="record both streams (neuroclip record) and convert that file.",
            path=recording.source,
        )
    if nirs.nirs is None or nirs.nirs.signal != "intensity":
        raise ChannelError(
            f"{recording.source}: the NIRS stream holds "
            f"{KIND_NAMES.get(getattr(nirs.nirs, 'signal', ''), 'unknown')} data; only raw "
            "intensity is converted to SNIRF here.",
            fix="record the device's raw intensity stream.",
            path=recording.source,
        )
    unknown = [name for name, unit in zip(eeg.ch_names, eeg.units, strict=True) if unit != "uV"]
    if unknown:
        raise ChannelError(
            eeg_unit_refusal(str(recording.source), unknown[0], "")
            + f" ({len(unknown)} channel(s) without a known unit)",
            fix=EEG_UNIT_FIX,
            path=recording.source,
        )
    return eeg, nirs


def _check_new_session(root: Path, subject: str, session: str) -> None:
    """Refuse a session that exists: a converted session is never overwritten."""
    _refuse_existing(root / f"sub-{subject}" / f"ses-{session}")


def _common_span(recording: Recording, eeg: SignalBlock, nirs: SignalBlock) -> _Span:
    """The span both streams cover (at least 30 s), so both files start at the same instant."""
    t0 = max(eeg.times[0], nirs.times[0])
    t1 = min(eeg.times[-1] + 1 / eeg.sfreq, nirs.times[-1] + 1 / nirs.sfreq)  # span ends
    if t1 - t0 < 30.0:
        raise DatasetError(
            f"{recording.source}: EEG and NIRS overlap for {max(t1 - t0, 0):.1f} s only.",
            fix="convert a session in which both streams ran together for at least 30 s.",
            path=recording.source,
        )
    e0 = int(np.searchsorted(eeg.times, t0 - 0.5 / eeg.sfreq))
    n0 = int(np.searchsorted(nirs.times, t0 - 0.5 / nirs.sfreq))
    n_eeg = min(round((t1 - eeg.times[e0]) * eeg.sfreq), eeg.n_samples - e0)
    n_nirs = min(round((t1 - nirs.times[n0]) * nirs.sfreq), nirs.n_samples - n0)
    return _Span(e0=e0, n_eeg=n_eeg, n0=n0, n_nirs=n_nirs, start=float(eeg.times[e0]))


def _nirs_montage(
    recording: Recording, layout: NirsLayout, optodes: dict[str, np.ndarray] | None
) -> _Montage:
    """The pairs, wavelengths and optode positions SNIRF needs; refused when the pairs are
    not named ``S<n>_D<m>`` or a position is unknown."""
    pairs = []
    for name, _ in layout.pairs():
        match = _PAIR.match(name)
        if match is None:
            raise ChannelError(
                f"{recording.source}: fNIRS pair {name!r} is not named S<n>_D<m>.",
                fix="label the stream's channels '<S>_<D> <wavelength>', e.g. 'S1_D1 760'.",
                path=recording.source,
            )
        pairs.append((int(match[1]), int(match[2])))
    distances = np.array([layout.distances_m[cols[0]] for _, cols in layout.pairs()])
    table = optodes or _simulator_optodes(pairs, distances)
    if table is None:
        raise DatasetError(
            f"{recording.source}: SNIRF needs the optode positions, which the stream lacks.",
            fix="pass --optodes FILE (tab-separated name x y z in metres: S1.., D1..).",
            path=recording.source,
        )
    sources = [f"S{i}" for i in range(1, max(s for s, _ in pairs) + 1)]
    detectors = [f"D{i}" for i in range(1, max(d for _, d in pairs) + 1)]
    missing = [n for n in sources + detectors if n not in table]
    if missing:
        raise DatasetError(
            f"the optode table has no position for {', '.join(missing)}.",
            fix="add a row per source and detector to the optode table.",
        )
    order = [
        c
        for _, cols in layout.pairs()
        for c in sorted(cols, key=lambda c: layout.channels[c].wavelength)
    ]
    return _Montage(
        pairs=pairs,
        wavelengths=sorted({c.wavelength for c in layout.channels}),
        sources=np.array([table[n] for n in sources]),
        detectors=np.array([table[n] for n in detectors]),
        order=order,
    )


def _events(markers: Markers, start: float, duration: float) -> tuple[np.ndarray, list[str]]:
    """Onsets (s from ``start``) and labels of the markers within the converted span."""
    keep = (markers.times >= start) & (markers.times < start + duration)
    labels = [str(x) for x in np.asarray(markers.labels, dtype=object)[keep]]
    return markers.times[keep] - start, labels


def _stimuli(onsets: np.ndarray, labels: list[str]) -> dict[str, np.ndarray]:
    """SNIRF stimuli: per label, rows of ``onset duration amplitude``."""
    return {
        lab: np.array([[o, 0.0, 1.0] for o, x in zip(onsets, labels, strict=True) if x == lab])
        for lab in sorted(set(labels))
    }


def _eeg_raw(
    eeg: SignalBlock,
    span: _Span,
    onsets: np.ndarray,
    labels: list[str],
    when: datetime,
    line_freq: float,
) -> mne.io.BaseRaw:
    """The cropped EEG in volts with the 10-05 positions and the markers as annotations."""
    import mne

    info = mne.create_info(list(eeg.ch_names), eeg.sfreq, "eeg")
    data = eeg.data[span.e0 : span.e0 + span.n_eeg].T * 1e-6
    raw = mne.io.RawArray(data, info, verbose="error")
    montage = mne.channels.make_standard_montage("standard_1005")
    raw.set_montage(montage, on_missing="ignore", verbose="error")
    raw.set_meas_date(when)
    raw.info["line_freq"] = line_freq
    raw.set_annotations(mne.Annotations(onsets, np.zeros(len(onsets)), labels, orig_time=when))
    return raw


# --- writing into the staging folder ---------------------------------------------------------


@contextmanager
def _staging(root: Path) -> Iterator[Path]:
    """A fresh folder ``root/.convert-<random>`` to write into, removed on the way out
    whatever happens; ``root`` (and parents) created for it are removed again if they are
    still empty then (a refused conversion into a new dataset leaves no dataset behind)."""
    created = _make_folders(root)
    try:
        temp = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=root))
        try:
            yield temp
        finally:
            _remove_tree(temp)
    finally:
        _remove_if_empty(created)


def _make_folders(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents; returns those created, deepest first."""
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    for path in reversed(missing):
        path.mkdir()
    return missing


def _remove_tree(folder: Path) -> None:
    """Remove the staging folder; a failure is logged, not raised, so that it does not hide
    the error that ended the conversion (the folder is hidden and named ``.convert-*``)."""
    try:
        shutil.rmtree(folder)
    except OSError as exc:
        logger.warning(
            "could not remove the staging folder %s (remove it by hand): %s", folder, exc
        )


def _remove_if_empty(folders: list[Path]) -> None:
    """Remove each of ``folders`` (deepest first) that exists and is empty; a failure is
    logged, not raised, for the reason of :func:`_remove_tree`."""
    for folder in folders:
        try:
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        except OSError as exc:
            logger.warning("could not remove the folder %s created for convert: %s", folder, exc)


def _write_session(conversion: _Conversion, root: Path, temp: Path) -> Path:
    """Write the session into ``temp/bids`` as if it were ``root``: copies of the dataset's
    and subject's own files first, which MNE-BIDS and the tables then update there."""
    stage = temp / "bids"
    _seed(stage, root, conversion.subject_dir)
    _write_eeg(conversion, stage)
    _write_nirs(conversion, stage, temp / "work")
    _upsert(
        stage / "participants.tsv",
        "participant_id",
        conversion.subject_dir,
        conversion.participant,
    )
    _upsert(
        stage / conversion.subject_dir / f"{conversion.subject_dir}_sessions.tsv",
        "session_id",
        f"ses-{conversion.session}",
        conversion.session_row,
    )
    return stage


def _seed(stage: Path, root: Path, subject_dir: str) -> None:
    """Copy the files (not folders) at the top of ``root`` and of its subject folder into the
    stage, with their dates: what MNE-BIDS and the tables read, update or leave alone."""
    for source, target in ((root, stage), (root / subject_dir, stage / subject_dir)):
        target.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            for path in source.iterdir():
                if path.is_file():
                    shutil.copy2(path, target / path.name)


def _bids_path(conversion: _Conversion, stage: Path, datatype: str) -> mne_bids.BIDSPath:
    """The BIDS path of the session's ``datatype`` file under the stage."""
    import mne_bids

    return mne_bids.BIDSPath(
        subject=conversion.subject,
        session=conversion.session,
        task=TASK,
        root=stage,
        datatype=datatype,
    )


def _write_eeg(conversion: _Conversion, stage: Path) -> None:
    """The EEG as BrainVision with its sidecars, through MNE-BIDS."""
    import mne_bids

    mne_bids.write_raw_bids(
        conversion.eeg,
        _bids_path(conversion, stage, "eeg"),
        format="BrainVision",
        allow_preload=True,
        overwrite=False,
        verbose="error",
    )


def _write_nirs(conversion: _Conversion, stage: Path, work: Path) -> None:
    """The fNIRS as SNIRF with its sidecars: our SNIRF (with positions and stimuli) written in
    ``work``, read by MNE and written into the stage by MNE-BIDS."""
    import mne
    import mne_bids

    from models.io.snirf_writer import write_snirf

    work.mkdir()
    snirf = work / f"sub-{conversion.subject}_ses-{conversion.session}_task-{TASK}_nirs.snirf"
    montage = conversion.montage
    write_snirf(
        snirf,
        conversion.nirs_data,
        conversion.nirs_sfreq,
        montage.pairs,
        montage.wavelengths,
        montage.sources,
        montage.detectors,
        conversion.stimuli,
        subject_id=conversion.subject,
        measurement=conversion.when,
    )
    raw_nirs = mne.io.read_raw_snirf(snirf, preload=False, verbose="error")
    mne_bids.write_raw_bids(
        raw_nirs, _bids_path(conversion, stage, "nirs"), overwrite=False, verbose="error"
    )


def _upsert(path: Path, key: str, value: str, fields: dict[str, str]) -> None:
    """Set ``fields`` on the row whose ``key`` is ``value`` of a TSV (created if missing)."""
    rows: list[dict[str, str]] = []
    if path.is_file():
        with path.open(encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle, delimiter="\t"))
    row = next((r for r in rows if r.get(key) == value), None)
    if row is None:
        row = {key: value}
        rows.append(row)
    row.update(fields)
    columns = list(dict.fromkeys(c for r in rows for c in r))
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(
            handle, fieldnames=columns, delimiter="\t", lineterminator="\n", restval="n/a"
        )
        writer.writeheader()
        writer.writerows(rows)


# --- moving the stage into place --------------------------------------------------------------


def _plan(stage: Path, root: Path, backups: Path, subject_dir: str) -> list[_Move]:
    """The renames that put the stage into ``root``, decided before any is made.

    New folders move whole (the new session, or a new subject with its sessions file) and
    come first, so that no table names a session before its files are there; then new and
    changed files; files the conversion left unchanged are not touched. A folder that exists
    in ``root`` is never merged into (but ``root`` itself and the subject's folder).
    """
    folders: list[_Move] = []
    files: list[_Move] = []
    levels = [(stage, root)]
    if (root / subject_dir).is_dir():
        levels.append((stage / subject_dir, root / subject_dir))
    for source_dir, target_dir in levels:
        for source in sorted(source_dir.iterdir()):
            target = target_dir / source.name
            if source.is_dir():
                if source_dir == stage and source.name == subject_dir and target.is_dir():
                    continue  # the subject's folder: merged at the next level
                _refuse_existing(target)
                folders.append(_Move(source, target, None))
            elif not target.exists():
                files.append(_Move(source, target, None))
            elif target.is_dir():
                _refuse_existing(target)
            elif not filecmp.cmp(source, target, shallow=False):
                files.append(_Move(source, target, _backup(target, root, backups)))
    return folders + files


def _refuse_existing(target: Path) -> None:
    """Refuse to move a staged folder or file onto a folder of the dataset (a session that
    appeared since the check, say): a converted session is never overwritten."""
    if target.exists():
        raise OutputError(
            f"{target} exists; a converted session is never overwritten.",
            fix="choose another session label, or remove that folder first.",
            path=target,
        )


def _backup(target: Path, root: Path, backups: Path) -> Path:
    """A copy (with its dates) of a dataset file about to be replaced, to put back if the
    commit fails halfway."""
    backup = backups / target.relative_to(root)
    backup.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(target, backup)
    return backup


def _commit(moves: list[_Move], root: Path) -> None:
    """Make the renames; if one fails (or the process is interrupted), undo those made."""
    done: list[_Move] = []
    try:
        for move in moves:
            os.replace(move.source, move.target)
            done.append(move)
    except BaseException as exc:
        _undo(done, root)
        if isinstance(exc, OSError):
            raise OutputError(
                f"could not move the converted session into {root}: {exc}.",
                fix="check that the dataset folder is writable and has free space, then "
                "convert again.",
                path=root,
            ) from exc
        raise


def _undo(done: list[_Move], root: Path) -> None:
    """Put back what the renames in ``done`` replaced, last first: new files and folders go
    back to the stage, replaced files are restored from their backups."""
    failed = []
    for move in reversed(done):
        try:
            if move.backup is None:
                os.replace(move.target, move.source)
            else:
                os.replace(move.backup, move.target)
        except OSError as exc:
            failed.append(f"{move.target} ({exc})")
    if failed:
        raise _UndoFailedError(
            f"moving the converted session into {root} failed halfway, and these could not "
            f"be put back as they were: {'; '.join(failed)}.",
            fix="restore those files from a backup (or remove the new session folder and its "
            "rows in participants.tsv and the sessions file), then convert again.",
            path=root,
        )
