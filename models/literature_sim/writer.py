"""Write a literature-based cohort as a BIDS dataset (BrainVision EEG, SNIRF fNIRS).

Follows DESIGN.md's dataset contract: ``participants.tsv`` with ``group``; per subject
``sub-XX_sessions.tsv`` with ``session_id``, ``craving`` and ``rtms``; task ``cue``; the
markers ``rest``, ``cue/drug`` and ``cue/neutral`` with durations in ``events.tsv``. The
ground truth goes to ``derivatives/literature_sim/`` only, where no reader looks for data.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from models.io.output import require_new_folder, write_participant_groups, write_tsv
from models.io.snirf_writer import write_snirf
from models.literature_sim.config import LiteratureCohortConfig
from models.literature_sim.design import Marker, cue_timeline
from models.literature_sim.eeg import simulate_eeg
from models.literature_sim.montage import OptodePair, optode_pairs, positions_of
from models.literature_sim.nirs import simulate_nirs
from models.literature_sim.physiology import draw_body
from models.literature_sim.subjects import (
    SessionState,
    SubjectTraits,
    craving_vas,
    draw_subjects,
    session_state,
    sessions_of,
)

logger = logging.getLogger(__name__)

TASK = "cue"
DERIVATIVE = "literature_sim"
_DAYS = {"pre": 3, "base": 3, "post": 24}


def write_literature_cohort(
    out: str | Path,
    cfg: LiteratureCohortConfig,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Generate the cohort of ``cfg`` and write it as a BIDS dataset into ``out``.

    ``out`` must not exist or be empty; a folder this call created is removed again if
    generation fails part-way, so no half-written dataset is left to be read.

    Raises
    ------
    OutputError
        When ``out`` exists and is not empty (nothing is written).
    ConfigError
        For a setting the generator cannot honour.
    """
    cfg.check()
    root = require_new_folder(out, "Output folder")
    created = not root.exists()
    root.mkdir(parents=True, exist_ok=True)
    try:
        _write(root, cfg, progress)
    except BaseException:
        if created:
            shutil.rmtree(root, ignore_errors=True)
        raise
    return root


def _write(root: Path, cfg: LiteratureCohortConfig, progress: Callable[[str], None] | None) -> None:
    started = time.perf_counter()
    pairs = optode_pairs(cfg)
    positions_of(cfg.eeg_channels)  # refuse unknown labels before any work
    subjects = draw_subjects(cfg)
    truth: list[dict[str, str]] = []
    for subject in subjects:
        rows = []
        for index, session in enumerate(sessions_of(subject.group)):
            if progress:
                progress(f"sub-{subject.label} ses-{session}")
            seeds = np.random.SeedSequence([cfg.seed, 4, subject.number, index]).spawn(6)
            rng = [np.random.default_rng(s) for s in seeds]
            state = session_state(subject, session, cfg, rng[0])
            markers = cue_timeline(cfg, rng[1])
            body = draw_body(state, cfg.duration_s, rng[2])
            eeg = simulate_eeg(state, markers, body, cfg, rng[3])
            nirs = simulate_nirs(state, markers, body, pairs, cfg, rng[4])
            _write_session(root, subject.label, session, eeg, nirs, markers, pairs, cfg)
            craving = craving_vas(state.severity, rng[5])
            rtms = "none" if session == "base" else session
            rows.append({"session_id": f"ses-{session}", "craving": f"{craving:.1f}", "rtms": rtms})
            truth.append(_truth_row(subject, state, craving, markers))
        write_tsv(root / f"sub-{subject.label}" / f"sub-{subject.label}_sessions.tsv", rows)
    _write_participants(root, subjects)
    _write_derivatives(root, subjects, truth, pairs, cfg)
    logger.info(
        "wrote %d subjects (%d sessions) to %s in %.1f s",
        len(subjects),
        len(truth),
        root,
        time.perf_counter() - started,
    )


def _truth_row(
    subject: SubjectTraits, state: SessionState, craving: float, markers: list[Marker]
) -> dict[str, str]:
    return {
        "participant_id": f"sub-{subject.label}",
        "session_id": f"ses-{state.session}",
        "group": subject.group,
        "severity": f"{state.severity:.4f}",
        "craving": f"{craving:.1f}",
        "eeg_drive": f"{state.eeg_drive:.4f}",
        "nirs_drive": f"{state.nirs_drive:.4f}",
        "leans": str(subject.leans).lower(),
        "lean_weight": "n/a" if np.isnan(subject.lean_weight) else f"{subject.lean_weight:.4f}",
        "rtms_response": f"{subject.rtms_response:.4f}",
        "n_drug_cues": str(sum(m.label == "cue/drug" for m in markers)),
        "n_neutral_cues": str(sum(m.label == "cue/neutral" for m in markers)),
    }


def _measurement(session: str) -> datetime:
    return datetime(2024, 6, _DAYS[session], 10, 30, 0, tzinfo=UTC)


def _write_session(
    root: Path,
    subject: str,
    session: str,
    eeg_uv: np.ndarray,
    intensity: np.ndarray,
    markers: list[Marker],
    pairs: list[OptodePair],
    cfg: LiteratureCohortConfig,
) -> None:
    import mne
    import mne_bids

    when = _measurement(session)
    channels = list(cfg.eeg_channels)
    raw = mne.io.RawArray(
        eeg_uv * 1e-6, mne.create_info(channels, cfg.eeg_sfreq, "eeg"), verbose="error"
    )
    montage = mne.channels.make_dig_montage(
        dict(zip(channels, positions_of(channels), strict=True)), coord_frame="head"
    )
    raw.set_montage(montage, verbose="error")
    raw.set_meas_date(when)
    raw.info["line_freq"] = cfg.line_freq
    raw.set_annotations(
        mne.Annotations(
            [m.onset for m in markers],
            [m.duration for m in markers],
            [m.label for m in markers],
            orig_time=when,
        )
    )
    eeg_path = mne_bids.BIDSPath(
        subject=subject, session=session, task=TASK, root=root, datatype="eeg"
    )
    mne_bids.write_raw_bids(
        raw, eeg_path, format="BrainVision", allow_preload=True, overwrite=False, verbose="error"
    )

    stimuli = {
        label: np.array([[m.onset, m.duration, 1.0] for m in markers if m.label == label])
        for label in sorted({m.label for m in markers})
    }
    with tempfile.TemporaryDirectory() as tmp:
        snirf = Path(tmp) / f"sub-{subject}_ses-{session}_task-{TASK}_nirs.snirf"
        write_snirf(
            snirf,
            intensity,
            cfg.nirs_sfreq,
            [(p.source, p.detector) for p in pairs],
            list(cfg.nirs_wavelengths),
            positions_of(cfg.nirs_sources),
            positions_of(cfg.nirs_detectors),
            stimuli,
            subject_id=subject,
            measurement=when,
        )
        raw_nirs = mne.io.read_raw_snirf(snirf, preload=False, verbose="error")
        nirs_path = mne_bids.BIDSPath(
            subject=subject, session=session, task=TASK, root=root, datatype="nirs"
        )
        mne_bids.write_raw_bids(raw_nirs, nirs_path, overwrite=False, verbose="error")


def _write_participants(root: Path, subjects: list[SubjectTraits]) -> None:
    """Add ``group`` to the participants.tsv MNE-BIDS wrote (keeping its columns)."""
    write_participant_groups(
        root,
        {f"sub-{s.label}": s.group for s in subjects},
        {
            "MA": "methamphetamine dependence (synthetic, literature-based generator)",
            "HC": "healthy control (synthetic, literature-based generator)",
        },
    )


def _write_derivatives(
    root: Path,
    subjects: list[SubjectTraits],
    truth: list[dict[str, str]],
    pairs: list[OptodePair],
    cfg: LiteratureCohortConfig,
) -> None:
    folder = root / "derivatives" / DERIVATIVE
    folder.mkdir(parents=True, exist_ok=True)
    write_tsv(folder / "ground_truth.tsv", truth)

    def clean(value: object) -> object:
        return None if isinstance(value, float) and np.isnan(value) else value

    traits = [{k: clean(v) for k, v in asdict(s).items()} for s in subjects]
    (folder / "subjects.json").write_text(json.dumps(traits, indent=1))
    (folder / "config.json").write_text(json.dumps(asdict(cfg), indent=1))
    (folder / "nirs_pairs.json").write_text(json.dumps([asdict(p) for p in pairs], indent=1))
    (folder / "dataset_description.json").write_text(
        json.dumps(
            {
                "Name": "NeuroCLIP literature-based synthetic cohort: ground truth",
                "BIDSVersion": "1.9.0",
                "DatasetType": "derivative",
                "GeneratedBy": [{"Name": "models.literature_sim"}],
            },
            indent=1,
        )
    )
