"""Preprocessing cost at every device rate: the EEG and fNIRS chains over 10 minutes of signal.

For each rate, white noise (EEG, 32 channels) or intensity (fNIRS, 36 pairs at two
wavelengths, 8 short pairs when ``--short``) goes through the chain the monitor runs, in
0.1 s (EEG) or 0.5 s (fNIRS) chunks as an outlet delivers them, ``--repeats`` times. Prints
the median time and the factor over real time, and the resampler's ``up/down``.

Run: ``.venv/bin/python benchmarks/device_rates.py``
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.preprocessing import EegChain, EegParams, NirsChain, NirsParams
from models.preprocessing.resample import rational_ratio
from models.signals import NirsLayout

EEG_RATES = (250.0, 256.0, 500.0, 512.0, 1000.0, 1024.0, 2000.0, 2048.0)
NIRS_RATES = (7.8125, 10.0, 10.1725, 10.172526041666666, 12.5, 25.0, 50.0)
SECONDS = 600.0


def _layout(short: bool) -> NirsLayout:
    pairs = [(s, d, 0.03) for s in range(1, 10) for d in range(1, 5)]
    if short:
        pairs += [(s, 20 + s, 0.008) for s in range(1, 9)]
    labels = [f"S{s}_D{d} {w}" for s, d, _ in pairs for w in (760, 850)]
    distances = np.repeat([dist for _, _, dist in pairs], 2)
    return NirsLayout.from_labels(labels, distances_m=distances)


def _run(make, data: np.ndarray, chunk: int) -> float:
    chain = make()
    started = time.perf_counter()
    for i in range(0, len(data), chunk):
        chain(data[i : i + chunk])
    return time.perf_counter() - started


def _row(stream: str, rate: float, up: int, down: int, median: float) -> None:
    ratio = f"{up}/{down}"
    print(f"{stream:6s} {rate:12.6g} {ratio:>12s} {median:9.2f} {SECONDS / median:12.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--short", action="store_true", help="add 8 short-separation pairs")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"{'stream':6s} {'rate Hz':>12s} {'up/down':>12s} {'median s':>9s} {'x real time':>12s}")
    for rate in EEG_RATES:
        data = 20 * rng.standard_normal((round(SECONDS * rate), 32))
        up, down = rational_ratio(rate, EegParams().target_sfreq)
        took = [
            _run(lambda r=rate: EegChain(EegParams(), r, 32), data, round(0.1 * rate))
            for _ in range(args.repeats)
        ]
        median = float(np.median(took))
        print(
            f"{'EEG':6s} {rate:12.6g} {f'{up}/{down}':>12s} {median:9.2f} {SECONDS / median:12.0f}"
        )
    layout = _layout(args.short)
    for rate in NIRS_RATES:
        n = round(SECONDS * rate)
        data = 1.0 + 0.01 * rng.standard_normal((n, len(layout.channels)))
        up, down = rational_ratio(rate, NirsParams().target_sfreq)
        took = [
            _run(lambda r=rate: NirsChain(NirsParams(), r, layout), data, max(1, round(0.5 * rate)))
            for _ in range(args.repeats)
        ]
        _row("fNIRS", rate, up, down, float(np.median(took)))


if __name__ == "__main__":
    main()
