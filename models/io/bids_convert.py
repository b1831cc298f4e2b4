"""Turn one recorded session (an XDF from ``neuroclip record`` or LabRecorder) into a session
of a BIDS dataset that ``neuroclip train`` and ``evaluate`` read (docs/datasets.md).

EEG goes to BrainVision and fNIRS (raw intensity) to SNIRF through MNE-BIDS, both cropped
to the span both streams cover, so that sample 0 of each file is the same instant (the
dataset contract: simultaneous EEG and NIRS). Markers become the annotations and stimuli of
both files. ``participants.tsv`` gets the subject's ``group``, ``sub-XX_sessions.tsv`` the
session's ``craving`` and ``rtms``. SNIRF needs optode positions, which an LSL stream does
not carry: they come from an optode table, or from the simulator's montage when the pairs
and distances are that montage's.
"""

from __future__ import annotations

import csv
import re
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from contract.errors import ChannelError, DatasetError, OutputError
from models.io.bids import GROUPS, RTMS_STATES
from models.signals import Recording

TASK = "cue"
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
    """Write ``recording`` as ``root/sub-<subject>/ses-<session>``; returns that folder."""
    import mne
    import mne_bids

    from models.io.snirf_writer import write_snirf

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
    eeg, nirs = recording.eeg, recording.nirs
    if eeg is None or nirs is None:
        raise DatasetError(
            f"{recording.source}: a NeuroCLIP session needs an EEG and an NIRS stream.",
            fix="record both streams (neuroclip record) and convert that file.",
            path=recording.source,
        )
    if nirs.nirs is None or nirs.nirs.signal != "intensity":
        raise ChannelError(
            f"{recording.source}: the NIRS stream holds {getattr(nirs.nirs, 'signal', 'unknown')} "
            "data; only raw intensity is converted to SNIRF here.",
            fix="record the device's raw intensity stream.",
            path=recording.source,
        )
    folder = root / f"sub-{subject}" / f"ses-{session}"
    if folder.exists():
        raise OutputError(
            f"{folder} exists; a converted session is never overwritten.",
            fix="choose another session label, or remove that folder first.",
            path=folder,
        )
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
    start = float(eeg.times[e0])
    marks = recording.markers
    keep = (marks.times >= start) & (marks.times < start + n_eeg / eeg.sfreq)
    onsets = marks.times[keep] - start
    labels = [str(x) for x in np.asarray(marks.labels, dtype=object)[keep]]
    when = datetime.now(UTC).replace(microsecond=0)

    info = mne.create_info(list(eeg.ch_names), eeg.sfreq, "eeg")
    raw = mne.io.RawArray(eeg.data[e0 : e0 + n_eeg].T * 1e-6, info, verbose="error")
    montage = mne.channels.make_standard_montage("standard_1005")
    raw.set_montage(montage, on_missing="ignore", verbose="error")
    raw.set_meas_date(when)
    raw.info["line_freq"] = line_freq
    raw.set_annotations(mne.Annotations(onsets, np.zeros(len(onsets)), labels, orig_time=when))
    mne_bids.write_raw_bids(
        raw,
        mne_bids.BIDSPath(subject=subject, session=session, task=TASK, root=root, datatype="eeg"),
        format="BrainVision",
        allow_preload=True,
        overwrite=False,
        verbose="error",
    )

    layout = nirs.nirs
    names = [name for name, _ in layout.pairs()]
    pairs = []
    for name in names:
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
    n_src = max(s for s, _ in pairs)
    n_det = max(d for _, d in pairs)
    missing = [
        n
        for n in [f"S{i}" for i in range(1, n_src + 1)] + [f"D{i}" for i in range(1, n_det + 1)]
        if n not in table
    ]
    if missing:
        raise DatasetError(
            f"the optode table has no position for {', '.join(missing)}.",
            fix="add a row per source and detector to the optode table.",
        )
    wavelengths = sorted({c.wavelength for c in layout.channels})
    order = [
        c
        for _, cols in layout.pairs()
        for c in sorted(cols, key=lambda c: layout.channels[c].wavelength)
    ]
    stimuli = {
        lab: np.array([[o, 0.0, 1.0] for o, x in zip(onsets, labels, strict=True) if x == lab])
        for lab in sorted(set(labels))
    }
    with tempfile.TemporaryDirectory() as tmp:
        snirf = Path(tmp) / f"sub-{subject}_ses-{session}_task-{TASK}_nirs.snirf"
        write_snirf(
            snirf,
            nirs.data[n0 : n0 + n_nirs][:, order],
            nirs.sfreq,
            pairs,
            wavelengths,
            np.array([table[f"S{i}"] for i in range(1, n_src + 1)]),
            np.array([table[f"D{i}"] for i in range(1, n_det + 1)]),
            stimuli,
            subject_id=subject,
            measurement=when,
        )
        raw_nirs = mne.io.read_raw_snirf(snirf, preload=False, verbose="error")
        mne_bids.write_raw_bids(
            raw_nirs,
            mne_bids.BIDSPath(
                subject=subject, session=session, task=TASK, root=root, datatype="nirs"
            ),
            overwrite=False,
            verbose="error",
        )
    _upsert(root / "participants.tsv", "participant_id", f"sub-{subject}", {"group": group})
    _upsert(
        root / f"sub-{subject}" / f"sub-{subject}_sessions.tsv",
        "session_id",
        f"ses-{session}",
        {"craving": "n/a" if craving is None else f"{craving:g}", "rtms": rtms},
    )
    return folder


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
