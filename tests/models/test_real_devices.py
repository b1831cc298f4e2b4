"""Real devices' recordings: kinds, units, rates, short channels, saturation and the coupling
index for haemoglobin, on the shared files (../shared/data/recordings, see its README)."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from contract.errors import ChannelError
from models.io import read_recording
from models.preprocessing.filters import StatefulSos, bandpass_sos
from models.preprocessing.nirs import BeerLambert, NirsChain, NirsParams, OpticalDensity
from models.preprocessing.quality import cardiac_peak_power, qt_nirs_peak_power
from models.signals import Markers, Recording, SignalBlock
from models.windows import SignalParams, nirs_out_names
from neuroclip.inspect import inspect_file
from tests.models.test_pipeline import CHANNELS, assert_same, live, offline

KERNEL = "snirf/kernel_flow50_hb.snirf"
SCOUT = "nirx/nirscout_15_2_short_channels"
SPORT1 = "nirx/nirsport1_15_3_saturation"
SPORT2 = "snirf/nirsport2_2021-10-01_002.snirf"
HOMER = "snirf/homer_neuro_run01.snirf"


# ---------------------------------------------------------------- haemoglobin without a unit


def test_haemoglobin_without_a_declared_unit_is_refused_with_the_fix(recordings):
    with pytest.raises(ChannelError) as info:
        read_recording(recordings / KERNEL)
    text = str(info.value)
    assert "'S2_D8 hbo'" in text and "no unit" in text and "uM" in text
    assert "--nirs-unit" in info.value.fix


@pytest.mark.parametrize(("unit", "factor"), [("uM", 1.0), ("M", 1e6), ("mM", 1e3)])
def test_the_unit_given_for_a_file_without_one_scales_its_values(recordings, unit, factor):
    block = read_recording(recordings / KERNEL, nirs_unit=unit).nirs
    reference = read_recording(recordings / KERNEL, nirs_unit="uM").nirs
    assert block.nirs.signal == "hb" and block.nirs.found_unit == unit
    np.testing.assert_allclose(block.data, reference.data * factor, equal_nan=True)
    assert 0.01 < np.nanstd(reference.data) < 10.0, "Kernel's values are micromolar"


def test_a_unit_given_against_the_files_own_is_refused(recordings, tmp_path):
    h5py = pytest.importorskip("h5py")
    copy = tmp_path / "declared.snirf"
    shutil.copy(recordings / KERNEL, copy)
    copy.chmod(0o644)
    with h5py.File(copy, "r+") as f:
        f["nirs/data1/measurementList1"].create_dataset("dataUnit", data=b"umol/L")
    assert read_recording(copy).nirs.nirs.found_unit == "umol/L"
    with pytest.raises(ChannelError, match="declares"):
        read_recording(copy, nirs_unit="M")


# ---------------------------------------------------------------- short channels


def test_short_channels_are_found_from_distances_and_kept_out_of_the_model(recordings):
    block = read_recording(recordings / SCOUT).nirs
    layout = block.nirs
    shorts = [name for (name, _), s in zip(layout.pairs(), layout.short_mask(), strict=True) if s]
    assert shorts == ["S1_D9", "S2_D10", "S3_D11", "S4_D12", "S5_D13"]
    names = nirs_out_names(layout)
    assert len(names) == 16 and not any(s in n.split()[0] for s in shorts for n in names)
    for regression in (True, False):
        params = NirsParams(short_channel_regression=regression)
        out = NirsChain(params, block.sfreq, layout)(block.data)
        assert out.hb.shape[1] == 16 and np.isfinite(out.hb).all()
    # (what the regression removes is measured on synthetic data with a known scalp signal,
    # tests/models/test_nirs_quality.py: 11.6 s is too short for the running fit)


# ---------------------------------------------------------------- saturation


def _without_device_flags(recordings: Path, tmp_path: Path) -> Path:
    """The NIRSport1 folder with the raw values where the device's flagged files were."""
    folder = tmp_path / "nosatflags"
    shutil.copytree(recordings / SPORT1, folder)
    for wl in ("wl1", "wl2"):
        stem = folder / "NIRS-2021-04-28_009"
        (folder / f"{stem.name}.{wl}").chmod(0o644)
        (folder / f"{stem.name}.{wl}").unlink()
        (folder / f"{stem.name}.nosatflags_{wl}").rename(folder / f"{stem.name}.{wl}")
    return folder


def _window_flags(lost: np.ndarray, sfreq: float) -> np.ndarray:
    """Per 10 s window (1 s hop) and channel: any sample lost."""
    n = round(10 * sfreq)
    starts = range(0, lost.shape[0] - n + 1, round(sfreq))
    return np.array([lost[s : s + n].any(axis=0) for s in starts])


def test_saturation_is_flagged_on_the_saturated_pair_only_with_and_without_device_flags(
    recordings, tmp_path
):
    flagged = read_recording(recordings / SPORT1).nirs
    raw = read_recording(_without_device_flags(recordings, tmp_path)).nirs
    assert (~np.isfinite(flagged.data)).any() and np.isfinite(raw.data).all()
    bad = [i for i, n in enumerate(flagged.ch_names) if n.startswith("S5_D2 ")]
    verdicts = []
    for block in (flagged, raw):
        out = NirsChain(NirsParams(), block.sfreq, block.nirs)(block.data)
        assert np.isfinite(out.hb).all(), "never NaN out"
        lost = out.lost_in
        assert sorted(np.flatnonzero(lost.any(axis=0))) == bad, block.name
        verdicts.append(_window_flags(lost, block.sfreq))
    # the value rule flags the same windows the device's own flags do
    np.testing.assert_array_equal(verdicts[0], verdicts[1])


def test_a_saturated_pair_is_named_in_the_window_quality_and_the_window_still_scored(
    recordings,
):
    """The NIRSport1 recording (16 s) looped to 60 s beside synthetic EEG, through the
    window pipeline: windows holding a saturated segment flag S5_D2 only."""
    block = read_recording(recordings / SPORT1).nirs
    recording = _with_synthetic_eeg(block, 500.0, repeats=4)
    params = SignalParams()
    windows = offline(recording, params)
    pairs = [name for name, _ in block.nirs.long_pairs()]
    hit = [w for w in windows if w.window is not None and w.window.saturated.any()]
    assert hit
    for w in hit:
        assert [p for p, s in zip(pairs, w.window.saturated, strict=True) if s] == ["S5_D2"]
        assert "nirs_saturated" not in w.reasons
    assert_same(live(recording, params, seed=5), windows)


# ---------------------------------------------------------------- real rates, live = offline


def _with_synthetic_eeg(nirs: SignalBlock, eeg_rate: float, repeats: int = 1) -> Recording:
    """A real fNIRS block beside synthetic EEG on the same clock (the shared files hold no
    simultaneous EEG), with a few cue markers."""
    data = np.vstack([nirs.data] * repeats)
    times = nirs.times[0] + np.arange(len(data)) / nirs.sfreq
    nirs = replace(nirs, data=data, times=times)
    rng = np.random.default_rng(3)
    n = round((times[-1] - times[0] + 1.0) * eeg_rate)
    t = times[0] + np.arange(n) / eeg_rate
    eeg = 10 * rng.standard_normal((n, len(CHANNELS))) + 8 * np.sin(2 * np.pi * 10 * t)[:, None]
    eeg_block = SignalBlock("eeg", "eeg", CHANNELS, ("uV",) * len(CHANNELS), eeg_rate, eeg, t)
    cues = times[0] + np.array([6.0, 14.0, 22.0, 30.0])
    markers = Markers(cues, ("cue/drug", "rest", "cue/neutral", "rest"))
    return Recording(source=Path("real"), blocks=(eeg_block, nirs), markers=markers)


def test_a_nirsport2_at_10_17_hz_beside_2048_hz_eeg_gives_the_same_windows_live_and_offline(
    recordings,
):
    block = read_recording(recordings / SPORT2).nirs
    assert block.sfreq == pytest.approx(10.172526, abs=1e-6)
    nirs = replace(
        block,
        data=block.data[: round(90 * block.sfreq)],
        times=block.times[: round(90 * block.sfreq)],
    )
    recording = _with_synthetic_eeg(nirs, 2048.0)
    params = SignalParams()
    windows = offline(recording, params)
    usable = [w for w in windows if w.usable]
    assert len(usable) >= 20
    assert_same(live(recording, params, seed=9), windows)


# ---------------------------------------------------------------- coupling index for Hb


@pytest.mark.parametrize("rel", [HOMER, SPORT2])
def test_the_haemoglobin_coupling_index_agrees_with_qt_nirs_on_the_wavelengths(recordings, rel):
    """The cardiac peak power of HbO alone (what an HbO/HbR stream allows) against QT-NIRS's
    index from both wavelengths of the same recording: same verdict at 0.1 in >= 85 % of
    10 s windows, medians within 0.05."""
    block = read_recording(recordings / rel).nirs
    fs, layout = block.sfreq, block.nirs
    od = OpticalDensity(1, reference=np.abs(block.data).mean(axis=0))(block.data)
    hb = BeerLambert(layout, 6.0)(od)
    band = (0.7, min(1.5, 0.45 * fs))
    cardiac_od = StatefulSos(bandpass_sos(0.7, band[1], fs, 2))(od)
    cardiac_hb = StatefulSos(bandpass_sos(0.7, band[1], fs, 2))(hb)
    n = round(10 * fs)
    ours, theirs = [], []
    for s in range(round(5 * fs), len(od) - n, round(5 * fs)):
        ours.extend(cardiac_peak_power(cardiac_hb[s : s + n, 0::2], fs, band))
        for _, cols in layout.pairs():
            theirs.append(
                qt_nirs_peak_power(
                    cardiac_od[s : s + n, cols[0]], cardiac_od[s : s + n, cols[1]], fs, band
                )
            )
    ours, theirs = np.array(ours), np.array(theirs)
    assert np.mean((ours >= 0.1) == (theirs >= 0.1)) >= 0.85
    assert abs(np.median(ours) - np.median(theirs)) < 0.05


# ---------------------------------------------------------------- inspect


def test_inspect_names_the_kind_unit_short_channels_and_saturation(recordings):
    text = "\n".join(inspect_file(recordings / SCOUT, None, False))
    assert "raw intensity" in text and "short-separation" in text and "S1_D9" in text
    text = "\n".join(inspect_file(recordings / KERNEL, None, False, nirs_unit="uM"))
    assert "haemoglobin" in text and "uM" in text
    text = "\n".join(inspect_file(recordings / SPORT1, None, False))
    assert "S5_D2" in text and "saturat" in text
    text = "\n".join(inspect_file(recordings / SPORT2, None, False))
    assert "below 0.5" in text
