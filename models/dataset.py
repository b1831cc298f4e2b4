"""The windows of a whole BIDS dataset, with labels, for training and evaluation.

Every session is preprocessed once by
:func:`models.pipeline.recording.session_windows`; the result can be cached as ``.npz``
so that evaluation folds and ablations do not redo it. A fingerprint (sha256 over the data
files' sizes and names plus the signal parameters) names the cache and goes into every
bundle and report.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from contract.errors import ChannelError, DatasetError
from contract.settings import as_dict
from models.context import MAX_CUE_S, typical_cue_s
from models.features import FEATURES_VERSION, feature_names
from models.io import BidsDataset
from models.pipeline.grid import GRID_VERSION
from models.pipeline.recording import session_windows
from models.windows import SignalParams, nirs_out_names

logger = logging.getLogger(__name__)

LABELED_SESSIONS = ("pre", "none")
"""Sessions that carry the group label for supervised stages (post-rTMS sessions are what
the shift analysis scores, so they never teach the classifier)."""


PER_DATASET = ("nirs_positions",)
"""Array fields of a :class:`WindowSet` that describe the dataset, not one row per window."""


@dataclass
class WindowSet:
    """Windows of many sessions, aligned row by row with their labels."""

    eeg: np.ndarray
    nirs: np.ndarray
    subject: np.ndarray
    session: np.ndarray
    group: np.ndarray
    """1 for MA, 0 for HC."""
    rtms: np.ndarray
    craving: np.ndarray
    t_end: np.ndarray
    usable: np.ndarray
    context: np.ndarray
    """``(N, 2, nirs_samples)`` drug and neutral cue regressors."""
    features: np.ndarray
    """``(N, F)`` hand-crafted features (:mod:`models.features`)."""
    eeg_channels: tuple[str, ...]
    nirs_channels: tuple[str, ...]
    fingerprint: str
    cue_s: float = MAX_CUE_S
    """The cue rule's longest cue (``windows.cue_s``) the windows were cut with."""
    nirs_positions: np.ndarray | None = None
    """``(n_pairs, 3)`` midpoint of each fNIRS pair in metres (the first session's montage;
    ``None`` when the files give no optode positions): the bundle stores it so that a probe
    numbering its optodes differently is matched by position."""

    @property
    def feature_names(self) -> list[str]:
        """Names of the columns of :attr:`features`."""
        return feature_names(self.eeg_channels, self.nirs_channels)

    def __len__(self) -> int:
        return int(self.eeg.shape[0])

    def take(self, mask: np.ndarray) -> WindowSet:
        """The rows where ``mask`` is True (or at the given indices)."""
        fields = {
            k: v[mask] if isinstance(v, np.ndarray) and k not in PER_DATASET else v
            for k, v in vars(self).items()
        }
        return WindowSet(**fields)

    @property
    def subjects(self) -> list[str]:
        """Distinct subjects, in first-seen order."""
        return list(dict.fromkeys(self.subject.tolist()))


def dataset_fingerprint(root: Path, params: SignalParams) -> str:
    """sha256 over data file names and sizes, the tsv files' contents and the parameters."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if "derivatives" in path.parts or not path.is_file():
            continue
        rel = path.relative_to(root).as_posix()
        digest.update(rel.encode())
        if path.suffix in (".tsv", ".json"):
            digest.update(path.read_bytes())
        else:
            digest.update(str(path.stat().st_size).encode())
    # the cue length is left out: 0 means "learnt from this data", so a bundle that stores the
    # learnt value and its training run name the same windows (the cache name carries it)
    stored = as_dict(params)
    stored["windows"].pop("cue_s", None)
    digest.update(json.dumps(stored, sort_keys=True).encode())
    digest.update(f"features/{FEATURES_VERSION}".encode())
    digest.update(f"grid/{GRID_VERSION}".encode())
    return digest.hexdigest()


def load_windows(
    root: str | Path,
    params: SignalParams,
    *,
    hop_s: float,
    cache_dir: Path | None = None,
    progress: Callable[[str], None] | None = None,
    require_both_groups: bool = True,
) -> WindowSet:
    """Every window of every session of a BIDS dataset (see DESIGN.md's dataset contract)."""
    root = Path(root)
    ds = BidsDataset(root)
    fingerprint = dataset_fingerprint(root, params)
    cache = None
    if cache_dir is not None:
        cue = params.windows.cue_s
        cache = Path(cache_dir) / f"windows-{fingerprint[:16]}-hop{hop_s:g}-cue{cue:g}.npz"
        if cache.is_file():
            logger.info("windows from cache %s", cache)
            return _from_npz(cache, fingerprint)
    groups = {ds.group(s) for s in ds.subjects}
    if require_both_groups and groups != {"MA", "HC"}:
        raise DatasetError(
            f"{root}: participants.tsv has only group(s) {', '.join(sorted(groups))}; "
            "telling MA from HC needs both.",
            fix="add subjects of the missing group, or use 'neuroclip calibrate' which can "
            "update one group's prototype.",
            path=root,
        )
    parts: dict[str, list] = {
        k: []
        for k in (
            "eeg",
            "nirs",
            "subject",
            "session",
            "group",
            "rtms",
            "craving",
            "t_end",
            "usable",
            "context",
            "features",
        )
    }
    eeg_channels: tuple[str, ...] | None = None
    nirs_channels: tuple[str, ...] | None = None
    nirs_positions: np.ndarray | None = None
    for subject in ds.subjects:
        for info in ds.sessions(subject):
            if progress:
                progress(f"sub-{subject} ses-{info.session}")
            recording = ds.read(subject, info.session)
            if recording.eeg is None or recording.nirs is None:
                raise DatasetError(
                    f"{root}: sub-{subject} ses-{info.session} lacks EEG or NIRS.",
                    fix="every session needs simultaneous EEG and NIRS.",
                    path=root,
                )
            if eeg_channels is None:
                eeg_channels = recording.eeg.ch_names
                nirs_channels = tuple(nirs_out_names(recording.nirs.nirs))
                nirs_positions = _long_pair_midpoints(recording.nirs.nirs)
            elif tuple(nirs_out_names(recording.nirs.nirs)) != nirs_channels:
                raise ChannelError(
                    f"{root}: sub-{subject} ses-{info.session} has fNIRS pairs that differ "
                    "from the first session's.",
                    fix="use one montage for the whole dataset (or drop the differing "
                    "pairs everywhere).",
                    path=root,
                )
            if params.windows.cue_s == 0:
                found = typical_cue_s(recording.markers.durations, recording.markers.labels)
                if found is not None:
                    params = _with_cue_s(params, found)
                    logger.info(
                        "cues last %.2f s (median of sub-%s ses-%s)", found, subject, info.session
                    )
            w = session_windows(recording, params, eeg_channels, hop_s=hop_s)
            n = len(w.t_end)
            if not w.meta.get("cues"):
                logger.warning(
                    "sub-%s ses-%s has no cue markers (cue/drug, cue/neutral): its cue features "
                    "are 0 and its windows carry resting-state evidence only",
                    subject,
                    info.session,
                )
            if info.craving is None:
                logger.warning(
                    "sub-%s ses-%s has no craving score; it is left out of the craving correlation",
                    subject,
                    info.session,
                )
            parts["eeg"].append(w.eeg)
            parts["nirs"].append(w.nirs)
            parts["subject"].append(np.full(n, subject))
            parts["session"].append(np.full(n, info.session))
            parts["group"].append(np.full(n, 1 if info.group == "MA" else 0))
            parts["rtms"].append(np.full(n, info.rtms))
            parts["craving"].append(np.full(n, np.nan if info.craving is None else info.craving))
            parts["t_end"].append(w.t_end)
            parts["usable"].append(w.usable)
            parts["context"].append(w.context)
            parts["features"].append(w.features)
    ws = WindowSet(
        eeg=np.concatenate(parts["eeg"]),
        nirs=np.concatenate(parts["nirs"]),
        subject=np.concatenate(parts["subject"]),
        session=np.concatenate(parts["session"]),
        group=np.concatenate(parts["group"]),
        rtms=np.concatenate(parts["rtms"]),
        craving=np.concatenate(parts["craving"]),
        t_end=np.concatenate(parts["t_end"]),
        usable=np.concatenate(parts["usable"]),
        context=np.concatenate(parts["context"]),
        features=np.concatenate(parts["features"]),
        eeg_channels=tuple(eeg_channels or ()),
        nirs_channels=tuple(nirs_channels or ()),
        fingerprint=fingerprint,
        cue_s=params.windows.cue_s or MAX_CUE_S,
        nirs_positions=nirs_positions,
    )
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(
            cache,
            **{
                k: v
                for k, v in vars(ws).items()
                if isinstance(v, np.ndarray) and k not in PER_DATASET
            },
            eeg_channels=np.array(ws.eeg_channels),
            nirs_channels=np.array(ws.nirs_channels),
            cue_s=np.array(ws.cue_s),
            **({} if ws.nirs_positions is None else {"nirs_positions": ws.nirs_positions}),
        )
    return ws


def _long_pair_midpoints(layout) -> np.ndarray | None:
    midpoints = layout.pair_midpoints()
    return None if midpoints is None else midpoints[~layout.short_mask()]


def _from_npz(path: Path, fingerprint: str) -> WindowSet:
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    skip = ("eeg_channels", "nirs_channels", "cue_s", "nirs_positions")
    return WindowSet(
        **{k: v for k, v in arrays.items() if k not in skip},
        eeg_channels=tuple(arrays["eeg_channels"].tolist()),
        nirs_channels=tuple(arrays["nirs_channels"].tolist()),
        fingerprint=fingerprint,
        cue_s=float(arrays["cue_s"]) if "cue_s" in arrays else MAX_CUE_S,
        nirs_positions=arrays.get("nirs_positions"),
    )


def _with_cue_s(params: SignalParams, cue_s: float) -> SignalParams:
    from dataclasses import replace

    return replace(params, windows=replace(params.windows, cue_s=round(cue_s, 3)))


def signal_of(ws: WindowSet, params: SignalParams) -> SignalParams:
    """``params`` with the cue rule the windows of ``ws`` were cut with (for the bundle)."""
    return _with_cue_s(params, ws.cue_s)
