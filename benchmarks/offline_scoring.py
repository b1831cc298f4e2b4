"""Offline scoring speed: a 30-minute session through the monitor's path, as fast as it goes.

Reads one BIDS session (time reported apart), then scores it with
:class:`streamer.offline.OfflineScorer` and the default model ``--repeats`` times, and
prints the median scoring time and the factor over real time.

Run: ``neuroclip simulate --out /tmp/sim30 --ma 1 --hc 1 --minutes 30 --seed 3`` once, then
``.venv/bin/python benchmarks/offline_scoring.py /tmp/sim30/sub-01/ses-pre``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.bundle import DEFAULT_BUNDLE, load_bundle
from models.io.sessions import read_session
from streamer.offline import OfflineScorer, WindowOptions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("session", type=Path, help="BIDS session folder, XDF or file")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads (0: all)")
    args = parser.parse_args()
    started = time.perf_counter()
    recording = read_session(args.session)
    read_s = time.perf_counter() - started
    blocks = [recording.eeg, recording.nirs]
    duration = max(b.times[-1] for b in blocks) - min(b.times[0] for b in blocks)
    scorer = OfflineScorer(load_bundle(DEFAULT_BUNDLE), WindowOptions(), threads=args.threads)
    took = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        records = scorer.score(recording, "bench", "S1")
        took.append(time.perf_counter() - started)
    median = float(np.median(took))
    print(
        f"{duration / 60:.1f} min session, {len(records)} windows "
        f"({sum(r['usable'] for r in records)} usable); read {read_s:.1f} s; scoring "
        f"{', '.join(f'{t:.2f}' for t in took)} s: median {median:.2f} s = "
        f"{duration / median:.0f}x real time ({duration / (median + read_s):.0f}x with reading)"
    )


if __name__ == "__main__":
    main()
