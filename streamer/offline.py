"""Offline scoring: a recording through the monitor's own path, as fast as the machine allows.

The recording is cut into chunks in time order and fed to the same objects the monitor runs
(:class:`~streamer.stream_buffer.ModalityBuffer` with the bundle's chains, the
:class:`~streamer.scheduler.WindowScheduler` and its gate, the
:class:`~streamer.phase.PhaseTracker`), the usable windows are scored by the same ONNX
model in batches, and every window becomes the same ``neuroclip.score/1`` record the
monitor writes (latencies are ``null``: nothing was live). So a session scored here and the
same session replayed through LSL into the monitor give the same scores.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from models.bundle import Bundle, BundleScorer, Scores
from models.context import MAX_CUE_S
from models.errors import ChannelError, TooShortError
from models.features import window_feature_names
from models.io.sessions import contents
from models.io.stream_desc import StreamLayout
from models.settings import from_mapping
from models.signals import Recording, SignalBlock
from models.windows import SignalParams
from streamer.compat import check_stream
from streamer.lsl_reader import Chunk, StreamDescription
from streamer.messages import Identity, Smoother, score_message
from streamer.phase import PhaseTracker
from streamer.scheduler import LiveWindow, WindowScheduler
from streamer.stream_buffer import ModalityBuffer

_CHUNK_S = 10.0
_BATCH = 64


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


@dataclass(frozen=True)
class WindowOptions:
    """The monitor's ``windows`` settings (None: the bundle's values)."""

    hop_s: float | None = None
    warmup_s: float | None = None
    smoothing_windows: int = 5


def _slice(scores: Scores, i: int) -> Scores:
    return Scores(
        *(getattr(scores, f)[i : i + 1] for f in Scores.__dataclass_fields__)  # type: ignore[arg-type]
    )


class OfflineScorer:
    """Score whole recordings with one bundle; see the module docstring."""

    def __init__(
        self,
        bundle: Bundle,
        options: WindowOptions = WindowOptions(),
        *,
        providers: list[str] | None = None,
        threads: int = 0,
    ):
        self.bundle = bundle
        self.options = options
        self.params: SignalParams = from_mapping(
            SignalParams, bundle.meta["preprocessing"], name="bundle", source=str(bundle.path)
        )
        self.eeg_channels = tuple(bundle.meta["inputs"]["eeg"]["channels"])
        self.scorer = BundleScorer(bundle, providers=providers, threads=threads)

    def windows(self, recording: Recording) -> tuple[list[LiveWindow], list[str]]:
        """Every window of ``recording`` as the monitor cuts it, and the fNIRS pair names."""
        blocks = {"eeg": recording.eeg, "nirs": recording.nirs}
        missing = [role for role, block in blocks.items() if block is None]
        if missing:
            raise ChannelError(
                f"{recording.source}: no {' or '.join(m.upper() for m in missing)} stream "
                f"({contents(recording)}); the model needs EEG and fNIRS recorded together.",
                fix="give a recording with both streams (an XDF with EEG and NIRS, or a BIDS "
                "session with eeg/ and nirs/).",
                path=recording.source,
            )
        wp = self.params.windows
        keep = wp.window_s + 30.0
        buffers = {
            "eeg": ModalityBuffer("eeg", self.params, self.eeg_channels, keep),
            "nirs": ModalityBuffer("nirs", self.params, (), keep),
        }
        pair_names: list[str] = []
        for role, block in blocks.items():
            description = describe_block(block, role)
            pairs = check_stream(self.bundle, role, description)
            pair_names = pairs if pairs is not None else pair_names
            buffers[role].start_segment(1, description)
        phases = PhaseTracker(wp.rtms_guard_s, cue_s=wp.cue_s or MAX_CUE_S)
        phases.connected = bool(len(recording.markers))
        for t, label in zip(recording.markers.times, recording.markers.labels, strict=True):
            phases.add(label, float(t))
        scheduler = WindowScheduler(
            self.params,
            buffers["eeg"],
            buffers["nirs"],
            phases,
            hop_s=self.options.hop_s,
            warmup_s=self.options.warmup_s,
            max_wait_s=1.0,
        )
        out: list[LiveWindow] = []
        for now, chunks in _steps(blocks):
            for chunk in chunks:  # every stream up to ``now`` before asking for windows
                buffers[chunk.role].add(chunk)
            out.extend(scheduler.poll(now))
        if not any(w.window is not None for w in out):
            duration = _end(blocks) - min(b.times[0] for b in blocks.values())
            raise TooShortError(
                f"{recording.source}: the session lasts {duration:.1f} s, too short for one "
                f"{scheduler.window_s:g} s window after the {scheduler.warmup_s:g} s warm-up.",
                fix="use a longer recording.",
                path=recording.source,
            )
        return out, pair_names

    def score(self, recording: Recording, site: str, session: str) -> list[dict]:
        """The ``neuroclip.score/1`` record of every window of ``recording``, in order."""
        windows, pair_names = self.windows(recording)
        usable = [w for w in windows if w.usable]
        names = window_feature_names(self.eeg_channels, pair_names)
        scores: dict[int, Scores] = {}
        for start in range(0, len(usable), _BATCH):
            batch = usable[start : start + _BATCH]
            feeds = self.scorer.window_feeds([w.window for w in batch], names)
            result = self.scorer.score(**feeds)
            for i, w in enumerate(batch):
                scores[w.seq] = _slice(result, i)
        ident = Identity(site, session, self.bundle.meta["name"], self.bundle.sha256)
        smoother = Smoother(self.options.smoothing_windows)
        records = []
        for w in windows:
            s = scores.get(w.seq)
            if s is not None:
                smoother.add(float(s.probability[0]))
            message = score_message(
                ident,
                w,
                s,
                smoother.value,
                {},
                eeg_channels=self.eeg_channels,
                pair_names=pair_names,
                sci_threshold=self.params.windows.sci_threshold,
            )
            records.append(message)
        return records


def _end(blocks: dict[str, SignalBlock]) -> float:
    return max(float(b.times[-1]) for b in blocks.values())


def _steps(blocks: dict[str, SignalBlock]) -> Iterator[tuple[float, list[Chunk]]]:
    """``(now, chunks)``: the next ``_CHUNK_S`` of every stream, in time order."""
    pos = dict.fromkeys(blocks, 0)
    t = min(float(b.times[0]) for b in blocks.values())
    end = _end(blocks)
    while t <= end:
        t += _CHUNK_S
        chunks = []
        for role, block in blocks.items():
            stop = int(np.searchsorted(block.times, t, side="right"))
            if stop > pos[role]:
                # as an LSL float32 stream carries it, so both paths see the same numbers
                data = block.data[pos[role] : stop].astype(np.float32).astype(np.float64)
                stamps = np.asarray(block.times[pos[role] : stop], np.float64)
                chunks.append(Chunk(role, 1, data, stamps, t))
                pos[role] = stop
        yield t, chunks
