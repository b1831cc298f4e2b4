"""The monitor's per-chunk path: one synthetic session through the window pipeline at live
chunk sizes (EEG every 10 ms, fNIRS per sample), fed chunk by chunk and through
:class:`~models.pipeline.holding.HeldFeed`, as the monitor feeds it.

Prints, for each way, the preprocessing calls, their total time and the windows cut (which
must be equal). No LSL, no threads: the pipeline's own cost per minute of data.

Run: ``.venv/bin/python benchmarks/chunk_path.py --seconds 60``
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from contract.settings import load_config
from models.bundle import DEFAULT_BUNDLE, load_bundle
from models.pipeline.holding import HeldFeed
from models.pipeline.pipeline import WindowPipeline
from models.pipeline.streams import Chunk
from models.simulation.config import SimulationConfig
from models.simulation.session import SessionSimulator
from models.simulation.subject import draw_subject
from streamer.lsl.reader import _describe
from streamer.lsl.simulator import _eeg_info, _nirs_info

PUSH_S = 0.01


def run(seconds: int, held: bool) -> tuple[int, float, int]:
    """(pipeline feeds, seconds spent feeding and cutting, windows) for one way."""
    import pylsl

    cfg = load_config(SimulationConfig, None, name="simulate", environ={})
    subject = draw_subject("bench", "MA", np.random.default_rng(3), cfg, severity=0.7)
    sim = SessionSimulator(subject, "pre", seconds, cfg, with_rtms_block=False)
    blocks = [sim.next_seconds(1) for _ in range(seconds)]
    data = {
        "eeg": np.vstack([b.eeg for b in blocks]).astype(np.float32),
        "nirs": np.vstack([b.nirs for b in blocks]).astype(np.float32),
    }
    rates = {"eeg": cfg.eeg_sfreq, "nirs": cfg.nirs_sfreq}
    desc = {
        "eeg": _describe(_eeg_info(pylsl, cfg, sim.eeg_channels), "eeg"),
        "nirs": _describe(_nirs_info(pylsl, cfg, sim.nirs_channels, sim.nirs_distances), "nirs"),
    }
    bundle = load_bundle(DEFAULT_BUNDLE)
    pipe = WindowPipeline(
        bundle.signal_params,
        bundle.eeg_channels,
        hop_s=1.0,
        warmup_s=2.0,
        nirs_pairs=(bundle.nirs_pairs, bundle.nirs_midpoints),
    )
    for role in ("eeg", "nirs"):
        pipe.start(role, 1, desc[role])
    feed = HeldFeed(pipe) if held else None
    sent = {"eeg": 0, "nirs": 0}
    t0, spent, feeds, windows = 100.0, 0.0, 0, 0
    for k in range(1, int(seconds / PUSH_S)):
        now = t0 + k * PUSH_S
        for role, rate in rates.items():
            due = min(len(data[role]), int(k * PUSH_S * rate))
            if due <= sent[role]:
                continue
            idx = np.arange(sent[role], due)
            layout = desc[role].layout
            block = data[role][idx][:, list(layout.data_columns)].astype(np.float64)
            chunk = Chunk(role, 1, block * layout.scales, t0 + idx / rate, now)
            sent[role] = due
            started = time.perf_counter()
            if feed is None:
                pipe.feed(chunk)
                feeds += 1
                fed = True
            else:
                fed = feed.add(chunk)
            if fed:
                windows += len(pipe.ready(now))
            spent += time.perf_counter() - started
    return (feeds if feed is None else feed.fed_calls), spent, windows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=60)
    args = parser.parse_args()
    for held in (False, True):
        feeds, spent, windows = run(args.seconds, held)
        way = "held back (HeldFeed)" if held else "chunk by chunk"
        print(f"{way}: {feeds} feeds, {1000 * spent:.0f} ms, {windows} windows")


if __name__ == "__main__":
    main()
