"""A recording through the window pipeline: the offline way in, for scoring and training.

The recording's streams are fed in time order, in chunks of :data:`CHUNK_S`, as float32 (what
an LSL float32 stream carries, so live and offline see the same numbers); its markers are
all known before the first sample, so no window waits for one. The grid, the gate and the
edge rules are the pipeline's: nothing here cuts a window.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from contract.errors import ChannelError, TooShortError
from models.io.stream_desc import StreamLayout
from models.pipeline.pipeline import SIGNAL_ROLES, GatedWindow, WindowPipeline
from models.pipeline.streams import Chunk, StreamDescription
from models.signals import Markers, Recording, SignalBlock
from models.windows import SignalParams

CHUNK_S = 10.0
"""Seconds of every stream fed at once (any chunking gives the same windows)."""


@dataclass
class SessionWindows:
    """Every window of one session, as model input plus gate results."""

    eeg: np.ndarray
    """``(n, n_eeg_channels, eeg_samples)`` float32, scaled model input."""
    nirs: np.ndarray
    """``(n, 2 * n_pairs, nirs_samples)`` float32, scaled model input (bad pairs zeroed)."""
    t_end: np.ndarray
    usable: np.ndarray
    reasons: list[tuple[str, ...]]
    sci: np.ndarray
    """``(n, n_pairs)`` scalp coupling index per window."""
    context: np.ndarray
    """``(n, 2, nirs_samples)`` drug and neutral cue regressors (:mod:`models.context`)."""
    features: np.ndarray
    """``(n, F)`` hand-crafted features (:mod:`models.features`)."""
    meta: dict[str, object] = field(default_factory=dict)


def session_windows(
    recording: Recording,
    params: SignalParams,
    eeg_channels: tuple[str, ...],
    hop_s: float | None = None,
) -> SessionWindows:
    """Every window of one session with data, as arrays for training and evaluation.

    Raises
    ------
    ChannelError
        When the recording lacks the EEG channels the model expects, or has no fNIRS.
    TooShortError
        When the session holds no complete window after the warm-up.
    """
    eeg, nirs = recording.eeg, recording.nirs
    if eeg is None or nirs is None:
        raise ChannelError(
            f"{recording.source}: a session needs both EEG and NIRS, found "
            f"{', '.join(b.kind for b in recording.blocks) or 'nothing'}.",
            fix="record EEG and fNIRS simultaneously, or train a unimodal model.",
            path=recording.source,
        )
    missing = [c for c in eeg_channels if c not in eeg.ch_names]
    if missing:
        raise ChannelError(
            f"{recording.source}: EEG lacks channel(s) {', '.join(missing[:6])} that the "
            f"model expects (it has {', '.join(eeg.ch_names[:6])}...).",
            fix="use recordings with the same montage for every subject, or rename channels.",
            path=recording.source,
        )
    pipeline = WindowPipeline(params, eeg_channels, hop_s=hop_s)
    cut = [w for w in recording_windows(pipeline, recording) if w.window is not None]
    if not cut:
        start = min(eeg.times[0], nirs.times[0])
        stop = max(eeg.times[-1], nirs.times[-1])
        wp = params.windows
        raise TooShortError(
            f"{recording.source}: the session lasts {stop - start:.1f} s, too short for one "
            f"{wp.window_s:g} s window after the {wp.warmup_s:g} s warm-up.",
            fix="use a longer recording.",
            path=recording.source,
        )
    return SessionWindows(
        eeg=np.stack([w.window.eeg for w in cut]),
        nirs=np.stack([w.window.nirs for w in cut]),
        t_end=np.array([w.t_end for w in cut]),
        usable=np.array([w.usable for w in cut]),
        reasons=[w.reasons for w in cut],
        sci=np.stack([w.window.sci for w in cut]),
        context=np.stack([w.window.context for w in cut]),
        features=np.stack([w.window.features for w in cut]),
        meta={**recording.meta, "cues": len(pipeline.phases.cues.spans())},
    )


def describe_block(block: SignalBlock, role: str) -> StreamDescription:
    """The stream description a live reader would give for ``block`` (no counter column)."""
    n = len(block.ch_names)
    layout = StreamLayout(
        labels=tuple(block.ch_names),
        units=tuple(block.units),
        data_columns=tuple(range(n)),
        counter_column=None,
        scales=np.ones(n),
        nirs=block.nirs,
    )
    return StreamDescription(block.name, role.upper(), "", "", block.sfreq, n, False, layout)


def recording_windows(
    pipeline: WindowPipeline,
    recording: Recording,
    descriptions: dict[str, StreamDescription] | None = None,
    chunk_s: float = CHUNK_S,
) -> list[GatedWindow]:
    """Every window of ``recording`` (which has EEG and fNIRS), in order."""
    blocks = {"eeg": recording.eeg, "nirs": recording.nirs}
    for role in SIGNAL_ROLES:
        description = (descriptions or {}).get(role) or describe_block(blocks[role], role)
        pipeline.start(role, 1, description)
    if len(recording.markers):
        pipeline.start("markers", 1, None)
        pipeline.feed(marker_chunk(recording.markers))
    pipeline.markers_seen(np.inf)  # every marker of a recording is known before its data
    out: list[GatedWindow] = []
    for chunks in _steps(blocks, chunk_s):
        for chunk in chunks:  # every stream up to the same time before asking for windows
            pipeline.feed(chunk)
        out.extend(pipeline.ready())
    out.extend(pipeline.finish())
    return out


def marker_chunk(markers: Markers) -> Chunk:
    """A recording's markers as one marker-stream chunk, in time order (ties keep the file's
    order), as a live marker stream would have delivered them."""
    order = np.argsort(np.asarray(markers.times, float), kind="stable")
    return Chunk(
        "markers", 1, [markers.labels[i] for i in order], np.asarray(markers.times)[order], 0.0
    )


def _steps(blocks: dict[str, SignalBlock], chunk_s: float) -> Iterator[list[Chunk]]:
    """The next ``chunk_s`` of every stream, in time order."""
    pos = dict.fromkeys(blocks, 0)
    t = min(float(b.times[0]) for b in blocks.values())
    end = max(float(b.times[-1]) for b in blocks.values())
    while t <= end:
        t += chunk_s
        chunks = []
        for role, block in blocks.items():
            stop = int(np.searchsorted(block.times, t, side="right"))
            if stop > pos[role]:
                data = block.data[pos[role] : stop].astype(np.float32).astype(np.float64)
                stamps = np.asarray(block.times[pos[role] : stop], np.float64)
                chunks.append(Chunk(role, 1, data, stamps, t))
                pos[role] = stop
        yield chunks
