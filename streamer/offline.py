"""Offline scoring: a recording through the monitor's own path, as fast as the machine allows.

The recording is cut into chunks in time order and fed to the
:class:`~models.pipeline.pipeline.WindowPipeline` the monitor runs (the same buffers, chains,
grid, gate and phase tracker); the usable windows are scored by the same ONNX model in
batches, and every window becomes the same ``neuroclip.score/2`` record the monitor writes
(latencies are ``null``: nothing was live). So a session scored here and the same session
replayed through LSL into the monitor give the same windows and scores.
"""

from __future__ import annotations

from dataclasses import dataclass

from contract.errors import ChannelError, TooShortError
from models.bundle import Bundle, BundleScorer, Scores
from models.features import window_feature_names
from models.io.sessions import contents
from models.pipeline.compat import check_stream
from models.pipeline.pipeline import GatedWindow, WindowPipeline
from models.pipeline.recording import describe_block, recording_windows
from models.signals import Recording, SignalBlock
from streamer.messages import Identity, SessionScoring, score_message

_BATCH = 64


@dataclass(frozen=True)
class WindowOptions:
    """The monitor's ``windows`` settings (None: the bundle's values)."""

    hop_s: float | None = None
    warmup_s: float | None = None
    smoothing_windows: int = 5
    phase_s: float = 0.0
    """Grid phase (s): the monitor's ``windows.phase_s``, to cut a live session's windows."""


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
        self.params = bundle.signal_params
        self.eeg_channels = bundle.eeg_channels
        self.scorer = BundleScorer(bundle, providers=providers, threads=threads)

    def pipeline(self) -> WindowPipeline:
        """A window pipeline as the monitor runs it, with these options."""
        return WindowPipeline(
            self.params,
            self.bundle.eeg_channels,
            hop_s=self.options.hop_s,
            warmup_s=self.options.warmup_s,
            nirs_pairs=(self.bundle.nirs_pairs, self.bundle.nirs_midpoints),
            phase_s=self.options.phase_s,
        )

    def windows(
        self, recording: Recording, pipeline: WindowPipeline | None = None
    ) -> tuple[list[GatedWindow], list[str]]:
        """Every window of ``recording`` as the monitor cuts it (through ``pipeline``, a new
        one by default), and the fNIRS pair names."""
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
        pair_names: list[str] = []
        descriptions = {}
        for role, block in blocks.items():
            descriptions[role] = describe_block(block, role)
            pairs = check_stream(self.bundle, role, descriptions[role])
            pair_names = pairs if pairs is not None else pair_names
        pipeline = pipeline or self.pipeline()
        out = recording_windows(pipeline, recording, descriptions)
        if not any(w.window is not None for w in out):
            duration = _end(blocks) - min(b.times[0] for b in blocks.values())
            raise TooShortError(
                f"{recording.source}: the session lasts {duration:.1f} s, too short for one "
                f"{pipeline.window_s:g} s window after the {pipeline.grid.warmup_s:g} s warm-up.",
                fix="use a longer recording.",
                path=recording.source,
            )
        return out, pair_names

    def score(self, recording: Recording, site: str, session: str) -> list[dict]:
        """The ``neuroclip.score/2`` record of every window of ``recording``, in order."""
        pipeline = self.pipeline()
        windows, pair_names = self.windows(recording, pipeline)
        usable = [w for w in windows if w.usable]
        names = window_feature_names(self.eeg_channels, list(self.bundle.nirs_pairs))
        scores: dict[int, Scores] = {}
        for start in range(0, len(usable), _BATCH):
            batch = usable[start : start + _BATCH]
            feeds = self.scorer.window_feeds([w.window for w in batch], names)
            result = self.scorer.score(**feeds)
            for i, w in enumerate(batch):
                scores[w.seq] = result.row(i)
        ident = Identity(site, session, self.bundle.meta["name"], self.bundle.sha256)
        scoring = SessionScoring(self.bundle.meta, self.options.smoothing_windows, pipeline.grid)
        records = []
        for w in windows:
            s = scores.get(w.seq)
            smoothed = scoring.add(w, s)
            message = score_message(
                ident,
                w,
                s,
                smoothed,
                {},
                eeg_channels=self.eeg_channels,
                pair_names=pair_names,
                estimate=scoring.estimate(),
            )
            records.append(message)
        return records


def _end(blocks: dict[str, SignalBlock]) -> float:
    return max(float(b.times[-1]) for b in blocks.values())
