"""The coupling index for haemoglobin input against QT-NIRS's, on the real SNIRF recordings.

For each recording in ``../shared/data/recordings/snirf`` that holds raw intensity, in 10 s
windows every 5 s: the cardiac peak power of HbO alone (what the quality gate computes for
an HbO/HbR stream, :func:`models.preprocessing.quality.cardiac_peak_power`) and QT-NIRS's
peak spectral power from both wavelengths' cardiac optical density (Hernandez & Pollonini,
2020). Prints the medians, the share of windows with the same verdict at 0.1, and the
windowed scalp coupling index beside them.

Run: ``.venv/bin/python benchmarks/hb_quality_index.py``
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.io import read_recording
from models.preprocessing.filters import StatefulSos, bandpass_sos
from models.preprocessing.nirs import BeerLambert, OpticalDensity
from models.preprocessing.quality import (
    cardiac_peak_power,
    qt_nirs_peak_power,
    scalp_coupling_index,
)

RECORDINGS = Path(__file__).resolve().parents[2] / "shared" / "data" / "recordings" / "snirf"
THRESHOLD = 0.1


def main() -> None:
    header = ("recording", "windows", "PSP HbO", "QT-NIRS", "same", "SCI")
    print("{:32s} {:>7s} {:>8s} {:>8s} {:>6s} {:>5s}".format(*header))
    for path in sorted(RECORDINGS.glob("*.snirf")):
        block = read_recording(path, nirs_unit="uM").nirs
        if block.nirs.signal != "intensity":
            continue
        fs, layout = block.sfreq, block.nirs
        od = OpticalDensity(1, reference=np.abs(block.data).mean(axis=0))(block.data)
        hb = BeerLambert(layout, 6.0)(od)
        band = (0.7, min(1.5, 0.45 * fs))
        cardiac_od = StatefulSos(bandpass_sos(0.7, band[1], fs, 2))(od)
        cardiac_hb = StatefulSos(bandpass_sos(0.7, band[1], fs, 2))(hb)
        n, ours, theirs, sci = round(10 * fs), [], [], []
        starts = range(round(5 * fs), len(od) - n, round(5 * fs))
        for s in starts:
            ours.extend(cardiac_peak_power(cardiac_hb[s : s + n, 0::2], fs, band))
            sci.extend(scalp_coupling_index(cardiac_od[s : s + n], layout))
            for _, cols in layout.pairs():
                a, b = cardiac_od[s : s + n, cols[0]], cardiac_od[s : s + n, cols[1]]
                theirs.append(qt_nirs_peak_power(a, b, fs, band))
        ours, theirs = np.array(ours), np.array(theirs)
        same = np.mean((ours >= THRESHOLD) == (theirs >= THRESHOLD))
        print(
            f"{path.name:32s} {len(starts):7d} {np.median(ours):8.3f} {np.median(theirs):8.3f} "
            f"{same:6.2f} {np.median(sci):5.2f}"
        )


if __name__ == "__main__":
    main()
