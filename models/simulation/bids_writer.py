"""Write a simulated cohort as a BIDS dataset (EEG as BrainVision, NIRS as SNIRF) via MNE-BIDS.

Layout (DESIGN.md's dataset contract): ``participants.tsv`` with ``group``; per subject
``sub-XX_sessions.tsv`` with ``session_id``, ``craving`` and ``rtms``; task ``cue``; events
carry the marker names. MA subjects have sessions ``pre`` and ``post`` (an rTMS course in
between), controls one session ``base`` with ``rtms = none``. The ground truth (severity,
response, individual parameters) goes to ``derivatives/simulation/`` so that no model can
read it by accident. With short-separation channels on, the SNIRF probe holds one more
detector per source (``D9``... at ``short_channels.distance_mm``), so every reader derives
their distances from the optode positions.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np

from models.io.output import require_new_folder, write_participant_groups, write_tsv
from models.simulation.config import SimulationConfig
from models.simulation.montage import (
    EEG_CHANNELS,
    NIRS_SOURCES,
    NIRS_WAVELENGTHS,
    detector_positions,
    positions,
)
from models.simulation.session import SessionSimulator, SimulatedChunk
from models.simulation.subject import SubjectParams, draw_cohort

logger = logging.getLogger(__name__)

TASK = "cue"


def sessions_of(subject: SubjectParams) -> list[str]:
    """Session labels, which are also the ``rtms`` state except ``base`` (``none``)."""
    return ["pre", "post"] if subject.group == "MA" else ["base"]


def write_cohort(
    out: str | Path, cfg: SimulationConfig, progress: Callable[[str], None] | None = None
) -> Path:
    """Simulate the cohort of ``cfg`` and write it as a BIDS dataset into ``out``.

    ``out`` must not exist or be empty: an existing dataset is never overwritten.
    """
    root = require_new_folder(out, "Output folder")
    root.mkdir(parents=True, exist_ok=True)
    subjects = draw_cohort(cfg)
    truth_rows = []
    sessions_rng = np.random.default_rng([cfg.cohort.seed, 1])
    for subject in subjects:
        session_rows = []
        for index, session in enumerate(sessions_of(subject)):
            rtms = "none" if session == "base" else session
            if progress:
                progress(f"sub-{subject.subject} ses-{session}")
            sim = SessionSimulator(
                subject,
                rtms,
                cfg.cohort.minutes * 60.0,
                cfg,
                with_rtms_block=cfg.cohort.rtms_in_sessions,
                session_index=index,
            )
            chunk = sim.generate_all()
            _write_session(root, subject.subject, session, sim, chunk, cfg)
            craving = subject.craving_at(rtms, sessions_rng)
            session_rows.append(
                {"session_id": f"ses-{session}", "craving": f"{craving:.1f}", "rtms": rtms}
            )
            truth_rows.append(
                {
                    "participant_id": f"sub-{subject.subject}",
                    "session_id": f"ses-{session}",
                    "group": subject.group,
                    "severity": f"{sim.severity:.4f}",
                    "craving": f"{craving:.1f}",
                }
            )
        write_tsv(
            root / f"sub-{subject.subject}" / f"sub-{subject.subject}_sessions.tsv", session_rows
        )
    _write_participants(root, subjects)
    _write_ground_truth(root, subjects, truth_rows, cfg)
    return root


def _write_session(
    root: Path,
    subject: str,
    session: str,
    sim: SessionSimulator,
    chunk: SimulatedChunk,
    cfg: SimulationConfig,
) -> None:
    import mne
    import mne_bids

    from models.io.snirf_writer import write_snirf

    n_eeg = chunk.eeg.shape[0]
    info = mne.create_info(list(EEG_CHANNELS), cfg.eeg_sfreq, "eeg")
    raw = mne.io.RawArray(chunk.eeg.T * 1e-6, info, verbose="error")
    pos = positions()
    raw.set_montage(
        mne.channels.make_dig_montage({ch: pos[ch] for ch in EEG_CHANNELS}, coord_frame="head"),
        verbose="error",
    )
    raw.set_meas_date(_measurement_date(session))
    raw.info["line_freq"] = cfg.nuisance.line_freq
    events = [e for e in chunk.events if e.onset < n_eeg / cfg.eeg_sfreq]
    raw.set_annotations(
        mne.Annotations(
            [e.onset for e in events],
            [e.duration for e in events],
            [e.label for e in events],
            orig_time=raw.info["meas_date"],
        )
    )
    bids_eeg = mne_bids.BIDSPath(
        subject=subject, session=session, task=TASK, root=root, datatype="eeg"
    )
    mne_bids.write_raw_bids(
        raw, bids_eeg, format="BrainVision", allow_preload=True, overwrite=False, verbose="error"
    )

    labels = sorted({e.label for e in events})
    stimuli = {
        lab: np.array([[e.onset, e.duration, 1.0] for e in events if e.label == lab])
        for lab in labels
    }
    with tempfile.TemporaryDirectory() as tmp:
        snirf = Path(tmp) / f"sub-{subject}_ses-{session}_task-{TASK}_nirs.snirf"
        short = cfg.short_channels
        write_snirf(
            snirf,
            chunk.nirs,
            cfg.nirs_sfreq,
            [(p.source, p.detector) for p in sim.nirs_pairs],
            NIRS_WAVELENGTHS,
            np.array([pos[s] for s in NIRS_SOURCES]),
            # short detectors (when on) follow the long ones, distance_mm from their source
            detector_positions(short.enabled, short.distance_mm / 1000.0),
            stimuli,
            subject_id=subject,
            measurement=_measurement_date(session),
        )
        # the configured rate, not MNE's estimate from the time vector (10 Hz read back
        # as 9.999999999999998 from some lengths), so the sidecar states the device's rate
        raw_nirs = mne.io.read_raw_snirf(
            snirf, sfreq=cfg.nirs_sfreq, preload=False, verbose="error"
        )
        bids_nirs = mne_bids.BIDSPath(
            subject=subject, session=session, task=TASK, root=root, datatype="nirs"
        )
        mne_bids.write_raw_bids(raw_nirs, bids_nirs, overwrite=False, verbose="error")


def _measurement_date(session: str):
    from datetime import UTC, datetime

    day = {"pre": 1, "base": 1, "post": 29}[session]
    return datetime(2025, 1, day, 9, 0, 0, tzinfo=UTC)


def _write_participants(root: Path, subjects: list[SubjectParams]) -> None:
    write_participant_groups(
        root,
        {f"sub-{s.subject}": s.group for s in subjects},
        {"MA": "methamphetamine dependence (simulated)", "HC": "healthy control (simulated)"},
    )


def _write_ground_truth(
    root: Path, subjects: list[SubjectParams], rows: list[dict[str, str]], cfg: SimulationConfig
) -> None:
    from contract.settings import as_dict

    folder = root / "derivatives" / "simulation"
    folder.mkdir(parents=True, exist_ok=True)
    write_tsv(folder / "ground_truth.tsv", rows)
    (folder / "subjects.json").write_text(json.dumps([asdict(s) for s in subjects], indent=1))
    (folder / "simulation_config.json").write_text(json.dumps(as_dict(cfg), indent=1))
    (folder / "dataset_description.json").write_text(
        json.dumps(
            {
                "Name": "NeuroCLIP synthetic cohort ground truth",
                "BIDSVersion": "1.9.0",
                "DatasetType": "derivative",
                "GeneratedBy": [{"Name": "neuroclip simulate"}],
            },
            indent=1,
        )
    )


def remove_partial(root: Path) -> None:
    """Remove a dataset folder this run created, after a failure part-way."""
    shutil.rmtree(root, ignore_errors=False)
