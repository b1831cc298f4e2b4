"""Readers: every shared real recording is read; bad input gets one clear error."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from contract.errors import (
    ChannelError,
    DatasetError,
    RecordingFormatError,
    RecordingNotFoundError,
    SignalValueError,
    TooShortError,
)
from models.io import (
    BidsDataset,
    read_recording,
    require_channels,
    require_duration,
    require_finite,
)
from models.signals import SignalBlock

# (relative path, expected kinds with channel count and rate)
SHARED = [
    ("eeglab/test_raw.set", {"eeg": (32, 128.0)}),
    ("snirf/homer_neuro_run01.snirf", {"nirs": (18, 20.03)}),
    ("snirf/nirsport2_2021-10-01_002.snirf", {"nirs": (44, 10.17)}),
    # Kernel Flow 50: already haemoglobin (HbO/HbR per pair), 1.6 s long
    ("snirf/kernel_flow50_hb.snirf", {"nirs": (360, 8.26)}),
    # NIRx raw folders: NIRScout with 5 short-separation pairs, NIRSport1 with saturation
    ("nirx/nirscout_15_2_short_channels", {"nirs": (26, 12.5)}),
    ("nirx/nirsport1_15_3_saturation", {"nirs": (26, 10.42)}),
    ("xdf/muselsl2/sub-P001_ses-S001_task-Default_run-001_eeg.xdf", {"eeg": (5, 256.0)}),
    ("xdf/muselsl2/sub-P002_ses-S001_task-Default_run-001_eeg.xdf", {"eeg": (5, 256.0)}),
    ("xdf/muselsl2/sub-P003_ses-S001_task-Default_run-001_eeg.xdf", {"eeg": (5, 256.0)}),
    ("xdf/muselsl2/sub-P023_ses-S001_task-Default_run-001_eeg.xdf", {"eeg": (5, 256.0)}),
    ("xdf/muselsl2/sub-P031_ses-S001_task-Default_run-001_eeg.xdf", {"eeg": (5, 256.0)}),
    ("xdf/muselsl2/sub-P032_ses-S001_task-Default_run-001_eeg.xdf", {"eeg": (5, 256.0)}),
    ("xdf/muselsl2/sub-P050_ses-S001_task-Default_run-001_eeg.xdf", {"eeg": (5, 256.0)}),
    ("xdf/xdf-examples/minimal.xdf", {"eeg": (3, 10.0)}),
    ("xdf/xdf-examples/clock_resets.xdf", {"eeg": (8, 100.0)}),
    ("xdf/xdf-examples/empty_streams.xdf", {"other": (1, 1.0)}),
]

READ_OPTIONS = {"snirf/kernel_flow50_hb.snirf": "uM"}
"""The Kernel file declares no unit for its HbO/HbR (it is refused without one: see
tests/models/test_real_devices.py); its values are micromolar."""


def test_the_list_covers_every_shared_recording(recordings):
    nirx_folders = {p.parent for p in recordings.rglob("*.hdr")}
    files = {
        p
        for p in recordings.rglob("*")
        if p.suffix in (".set", ".snirf", ".xdf") and p.parent not in nirx_folders
    }
    on_disk = {str(p.relative_to(recordings)) for p in files | nirx_folders}
    assert on_disk == {rel for rel, _ in SHARED}


@pytest.mark.parametrize(("rel", "expected"), SHARED, ids=[r for r, _ in SHARED])
def test_every_shared_recording_is_read(recordings, rel, expected):
    rec = read_recording(recordings / rel, nirs_unit=READ_OPTIONS.get(rel))
    for kind, (n_ch, sfreq) in expected.items():
        block = rec.of_kind(kind)[0]
        assert len(block.ch_names) == n_ch
        assert block.sfreq == pytest.approx(sfreq, abs=0.01)
        assert block.n_samples > 0
        assert np.all(np.diff(block.times) > 0), "timestamps must increase"
        assert block.data.dtype == np.float64


def test_eeg_is_converted_to_microvolts(recordings):
    block = read_recording(recordings / "eeglab/test_raw.set").eeg
    assert block.units[0] == "uV"
    assert 1.0 < np.median(np.abs(block.data)) < 500.0


def test_xdf_clock_resets_are_handled_and_markers_sorted(recordings):
    rec = read_recording(recordings / "xdf/xdf-examples/clock_resets.xdf")
    assert len(rec.markers) == 175
    assert np.all(np.diff(rec.markers.times) >= 0)
    eeg = rec.eeg
    # the recording has a long pause between clock segments; within segments the
    # de-jittered timestamps step at the nominal rate, and never go backwards
    steps = np.diff(eeg.times)
    assert steps.min() > 0
    assert np.median(steps) == pytest.approx(1 / eeg.sfreq, rel=0.1)  # device runs ~8 % slow


def test_xdf_empty_streams_are_listed(recordings):
    rec = read_recording(recordings / "xdf/xdf-examples/empty_streams.xdf")
    assert len(rec.meta["empty_streams"]) == 2


def test_snirf_layout_has_wavelengths_and_distances(recordings):
    block = read_recording(recordings / "snirf/nirsport2_2021-10-01_002.snirf").nirs
    assert block.nirs.wavelengths == (760.0, 850.0)
    assert len(block.nirs.pairs()) == 22
    assert np.all((block.nirs.distances_m > 0.01) & (block.nirs.distances_m < 0.06))


def test_missing_and_unsupported_files(tmp_path):
    with pytest.raises(RecordingNotFoundError, match="does not exist"):
        read_recording(tmp_path / "nothing.xdf")
    odd = tmp_path / "notes.txt"
    odd.write_text("hello")
    with pytest.raises(RecordingFormatError, match=r"unsupported recording format.*Supported"):
        read_recording(odd)


def test_truncated_and_garbage_xdf_give_a_clear_error(recordings, tmp_path):
    garbage = tmp_path / "garbage.xdf"
    garbage.write_bytes(b"not an xdf file at all" * 10)
    with pytest.raises(RecordingFormatError, match=r"garbage\.xdf"):
        read_recording(garbage)
    source = (recordings / "xdf/xdf-examples/minimal.xdf").read_bytes()
    cut = tmp_path / "cut.xdf"
    cut.write_bytes(source[:40])
    try:
        rec = read_recording(cut)
    except RecordingFormatError as exc:
        assert "cut.xdf" in str(exc)
    else:  # pyxdf recovered what it could: then it must be consistent
        for block in rec.blocks:
            assert block.data.shape[0] == block.times.shape[0]


def test_fnirs_file_without_wavelengths(recordings, tmp_path):
    import mne

    raw = mne.io.read_raw_snirf(recordings / "snirf/homer_neuro_run01.snirf", verbose="error")
    raw.load_data()
    for ch in raw.info["chs"]:
        ch["loc"][9] = np.nan
    target = tmp_path / "nowl_raw.fif"
    raw.save(target, verbose="error")
    with pytest.raises(ChannelError, match="no wavelengths"):
        read_recording(target)


def test_corrupt_companion_file_is_named(recordings, tmp_path):
    shutil.copy(recordings / "eeglab/test_raw.set", tmp_path / "test_raw.set")
    (tmp_path / "test_raw.fdt").write_bytes(b"\x00" * 100)  # truncated data file
    with pytest.raises(RecordingFormatError, match=r"test_raw\.set"):
        read_recording(tmp_path / "test_raw.set")


def _block(data: np.ndarray, names=("Fz", "Cz")) -> SignalBlock:
    return SignalBlock(
        "test", "eeg", tuple(names), ("uV",) * len(names), 100.0, data, np.arange(len(data)) / 100.0
    )


def test_nan_short_and_unknown_channel_checks():
    data = np.zeros((50, 2))
    data[10, 1] = np.nan
    with pytest.raises(SignalValueError, match=r"1 NaN or infinite sample.*Cz.*t=0.100"):
        require_finite(_block(data), "rec.xdf")
    with pytest.raises(TooShortError, match=r"lasts 0.50 s, shorter than one window of 10 s"):
        require_duration(_block(np.zeros((50, 2))), 10.0, "rec.xdf")
    with pytest.raises(ChannelError, match=r"lacks channel\(s\) Pz.*unknown channel\(s\) Xx"):
        require_channels(_block(np.zeros((5, 2)), ("Fz", "Xx")), ["Fz", "Pz"], "rec.xdf")


def test_bids_folder_without_group(tmp_path):
    (tmp_path / "participants.tsv").write_text("participant_id\tage\nsub-01\t30\n")
    with pytest.raises(DatasetError, match="no 'group' column"):
        BidsDataset(tmp_path)
    (tmp_path / "participants.tsv").write_text("participant_id\tgroup\nsub-01\tXY\n")
    with pytest.raises(DatasetError, match="group 'XY'; expected one of MA, HC"):
        BidsDataset(tmp_path)
    with pytest.raises(RecordingNotFoundError):
        BidsDataset(tmp_path / "absent")
