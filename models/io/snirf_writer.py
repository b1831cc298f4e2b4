"""A small SNIRF writer for continuous-wave intensity (what the simulator produces).

Writes the subset of SNIRF 1.1 that ``mne.io.read_raw_snirf`` reads: one data block of CW
amplitude, the probe (wavelengths and 3-D optode positions in metres) and stimuli.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np


def _text(value: str) -> bytes:
    return value.encode("utf-8")


def write_snirf(
    path: str | Path,
    intensity: np.ndarray,
    sfreq: float,
    pairs: Sequence[tuple[int, int]],
    wavelengths: Sequence[float],
    source_pos_m: np.ndarray,
    detector_pos_m: np.ndarray,
    stimuli: dict[str, np.ndarray],
    subject_id: str,
    measurement: datetime | None = None,
) -> None:
    """Write ``intensity`` ``(n_times, n_pairs * n_wavelengths)`` with columns ordered pair by
    pair, wavelengths side by side; ``stimuli`` maps a name to ``(n, 3)`` onset/duration/value.
    """
    import h5py

    when = measurement or datetime(2025, 1, 1, 9, 0, 0, tzinfo=UTC)
    with h5py.File(path, "w") as f:
        f.create_dataset("formatVersion", data=_text("1.1"))
        nirs = f.create_group("nirs")
        meta = nirs.create_group("metaDataTags")
        for key, value in (
            ("SubjectID", subject_id),
            ("MeasurementDate", when.strftime("%Y-%m-%d")),
            ("MeasurementTime", when.strftime("%H:%M:%SZ")),
            ("LengthUnit", "m"),
            ("TimeUnit", "s"),
            ("FrequencyUnit", "Hz"),
        ):
            meta.create_dataset(key, data=_text(value))
        data = nirs.create_group("data1")
        data.create_dataset("dataTimeSeries", data=np.asarray(intensity, float))
        data.create_dataset("time", data=np.arange(intensity.shape[0]) / sfreq)
        k = 0
        for source, detector in pairs:
            for w in range(len(wavelengths)):
                k += 1
                ml = data.create_group(f"measurementList{k}")
                ml.create_dataset("sourceIndex", data=np.int32(source))
                ml.create_dataset("detectorIndex", data=np.int32(detector))
                ml.create_dataset("wavelengthIndex", data=np.int32(w + 1))
                ml.create_dataset("dataType", data=np.int32(1))
                ml.create_dataset("dataTypeIndex", data=np.int32(1))
        probe = nirs.create_group("probe")
        probe.create_dataset("wavelengths", data=np.asarray(wavelengths, float))
        probe.create_dataset("sourcePos3D", data=np.asarray(source_pos_m, float))
        probe.create_dataset("detectorPos3D", data=np.asarray(detector_pos_m, float))
        probe.create_dataset(
            "sourceLabels", data=[_text(f"S{i + 1}") for i in range(len(source_pos_m))]
        )
        probe.create_dataset(
            "detectorLabels", data=[_text(f"D{i + 1}") for i in range(len(detector_pos_m))]
        )
        for i, (name, rows) in enumerate(sorted(stimuli.items()), start=1):
            stim = nirs.create_group(f"stim{i}")
            stim.create_dataset("name", data=_text(name))
            stim.create_dataset("data", data=np.asarray(rows, float).reshape(-1, 3))
