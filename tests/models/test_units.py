"""Data kinds and units: every unit a device names is read once into the signal contract, or
refused naming the stream, the channel, the unit found and the units accepted."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from contract.errors import BundleError, ChannelError
from models.bundle import load_bundle
from models.io.stream_desc import stream_layout
from models.montage import fit_nirs, match_eeg, pick_eeg
from models.pipeline.compat import check_stream
from models.pipeline.recording import describe_block
from models.pipeline.streams import StreamDescription
from models.preprocessing.nirs import BeerLambert, OpticalDensity
from models.preprocessing.resample import rational_ratio
from models.signals import NirsLayout, Recording, SignalBlock
from models.windows import SignalParams
from tests.models.test_pipeline import assert_same, live, offline, synthetic

SOURCE = "LSL NIRS stream 'dev'"


def nirs_channels(unit: str, labels=("S1_D1 760", "S1_D1 850"), **extra) -> list[dict]:
    return [
        {"label": lab, "unit": unit, "type": "", "wavelength": "", "distance": "0.03", **extra}
        for lab in labels
    ]


HB_LABELS = ("S1_D1 hbo", "S1_D1 hbr")


@pytest.mark.parametrize(
    ("unit", "labels", "signal", "scale"),
    [
        ("a.u.", None, "intensity", 1.0),
        ("V", None, "intensity", 1.0),
        ("OD", None, "od", 1.0),
        ("dOD", None, "od", 1.0),
        ("M", HB_LABELS, "hb", 1e6),
        ("mM", HB_LABELS, "hb", 1e3),
        ("uM", HB_LABELS, "hb", 1.0),
        ("µM", HB_LABELS, "hb", 1.0),
        ("umol/L", HB_LABELS, "hb", 1.0),
        ("mol/L", HB_LABELS, "hb", 1e6),
        ("micromolar", HB_LABELS, "hb", 1.0),
        ("nM", HB_LABELS, "hb", 1e-3),
    ],
)
def test_each_nirs_unit_is_read_as_its_kind_and_scaled(unit, labels, signal, scale):
    channels = nirs_channels(unit, labels) if labels else nirs_channels(unit)
    layout = stream_layout("nirs", channels, SOURCE)
    assert layout.nirs.signal == signal
    np.testing.assert_allclose(layout.scales, scale)
    assert layout.nirs.found_unit == unit
    assert set(layout.units) == {{"intensity": "a.u.", "od": "OD", "hb": "uM"}[signal]}


def test_a_channel_type_says_optical_density_when_the_unit_is_arbitrary():
    channels = nirs_channels("a.u.", type="fnirs_od")
    assert stream_layout("nirs", channels, SOURCE).nirs.signal == "od"


@pytest.mark.parametrize(
    ("channels", "words"),
    [
        (nirs_channels(""), ["'S1_D1 760'", "no unit", "accepted"]),
        (nirs_channels("furlongs"), ["'S1_D1 760'", "'furlongs'", "accepted"]),
        (nirs_channels("", HB_LABELS), ["'S1_D1 hbo'", "haemoglobin", "no unit"]),
        (nirs_channels("a.u.", HB_LABELS), ["'S1_D1 hbo'", "'a.u.'"]),
        (nirs_channels("uM"), ["wavelength label", "'uM'"]),
        (nirs_channels("a.u.", ("S1_D1 760", "S1_D1 760")), ["'S1_D1 760'", "listed twice"]),
        (nirs_channels("a.u.", ("S1_D1", "S1_D2")), ["'S1_D1'", "no wavelength"]),
        (nirs_channels("a.u.", ("S1_D1 760", "S1_D1 850", "S2_D1 760")), ["S2_D1", "expected 2"]),
        (
            [{**c, "distance": ""} for c in nirs_channels("a.u.")],
            ["'S1_D1 760'", "no source-detector distance"],
        ),
        ([{**c, "distance": "30"} for c in nirs_channels("a.u.")], ["30", "metres"]),
        (
            nirs_channels("a.u.") + nirs_channels("OD", ("S2_D1 760", "S2_D1 850")),
            ["mix kinds", "intensity", "od"],
        ),
    ],
    ids=[
        "no-unit",
        "unknown-unit",
        "hb-no-unit",
        "hb-arbitrary",
        "concentration-on-wavelength",
        "listed-twice",
        "no-wavelength",
        "odd-channel-count",
        "no-distance",
        "distance-in-mm",
        "kinds-mixed",
    ],
)
def test_bad_nirs_metadata_is_refused_naming_the_stream_and_channel(channels, words):
    with pytest.raises(ChannelError) as info:
        stream_layout("nirs", channels, SOURCE)
    text = str(info.value)
    assert SOURCE in text
    for word in words:
        assert word in text, (word, text)
    assert info.value.fix


def test_a_bare_pair_label_takes_its_wavelength_from_the_desc():
    channels = [
        {"label": "S1_D1", "unit": "a.u.", "type": "", "wavelength": w, "distance": "0.03"}
        for w in ("760", "850")
    ]
    layout = stream_layout("nirs", channels, SOURCE)
    assert layout.nirs.wavelengths == (760.0, 850.0)


def test_haemoglobin_streams_may_omit_distances_and_then_have_no_short_pairs():
    channels = [{**c, "distance": ""} for c in nirs_channels("uM", HB_LABELS)]
    layout = stream_layout("nirs", channels, SOURCE)
    assert not layout.nirs.short_mask().any()


def test_eeg_units_are_scaled_to_microvolts_or_left_unknown():
    channels = [
        {"label": "Fp1", "unit": "mV", "type": "EEG", "wavelength": "", "distance": ""},
        {"label": "Fp2", "unit": "volts", "type": "EEG", "wavelength": "", "distance": ""},
        {"label": "Cz", "unit": "", "type": "EEG", "wavelength": "", "distance": ""},
    ]
    layout = stream_layout("eeg", channels, "LSL EEG stream 'amp'")
    np.testing.assert_allclose(layout.scales, [1e3, 1e6, 1.0])
    assert layout.units == ("uV", "uV", "")
    assert layout.found_units == ("mV", "volts", "")


def test_the_monitor_refuses_eeg_without_a_known_unit_for_a_channel_the_model_needs():
    bundle = load_bundle("models/default_bundle")
    names = bundle.eeg_channels
    channels = [
        {
            "label": n,
            "unit": "" if n == "Cz" else "uV",
            "type": "EEG",
            "wavelength": "",
            "distance": "",
        }
        for n in names
    ]
    layout = stream_layout("eeg", channels, "x")
    description = StreamDescription("amp", "EEG", "", "", 500.0, len(names), False, layout)
    with pytest.raises(ChannelError) as info:
        check_stream(bundle, "eeg", description)
    assert "'Cz'" in str(info.value) and "no unit" in str(info.value)


# ---------------------------------------------------------------- the same data, other units


def _as_kind(recording: Recording, kind: str, params: SignalParams) -> Recording:
    """The fNIRS block of ``recording`` converted to optical density or haemoglobin in
    ``kind``'s unit, as a device computing them itself would stream it."""
    block = recording.nirs
    od = OpticalDensity(round(params.nirs.baseline_s * block.sfreq))(block.data)
    if kind == "od":
        data, labels, unit = od, block.ch_names, "OD"
    else:
        mbll = BeerLambert(block.nirs, params.nirs.ppf)
        data, labels, unit = mbll(od), tuple(mbll.ch_names), kind
    channels = [
        {"label": lab, "unit": unit, "type": "", "wavelength": "", "distance": "0.03"}
        for lab in labels
    ]
    layout = stream_layout("nirs", channels, "device")
    nirs = SignalBlock(
        "nirs",
        "nirs",
        labels,
        layout.units,
        block.sfreq,
        data / layout.scales,
        block.times,
        layout.nirs,
    )
    return replace(recording, blocks=(recording.eeg, nirs))


def test_haemoglobin_labelled_in_m_and_in_um_gives_the_same_windows():
    params = SignalParams()
    recording = synthetic(500.0, 10.0)
    in_um, in_m = _as_kind(recording, "uM", params), _as_kind(recording, "M", params)
    assert np.median(np.abs(in_m.nirs.data)) < 1e-5 < np.median(np.abs(in_um.nirs.data))
    # the reader scales by the unit; the pipeline sees the same micromolar values
    np.testing.assert_allclose(in_m.nirs.data * 1e6, in_um.nirs.data, rtol=1e-12)


def test_optical_density_and_haemoglobin_streams_are_scored_like_the_intensity_they_came_from():
    params = SignalParams()
    recording = synthetic(500.0, 10.0)
    reference = offline(recording, params)
    for kind in ("od", "uM"):
        converted = _as_kind(recording, kind, params)
        windows = offline(converted, params)
        assert_same(live(converted, params, seed=7), windows)
        assert [w.t_end for w in windows] == [w.t_end for w in reference]
        for a, b in zip(windows, reference, strict=True):
            if a.window is not None and b.window is not None:
                np.testing.assert_allclose(a.window.nirs, b.window.nirs, atol=1e-4)
        usable = [w for w in windows if w.window is not None]
        index = {w.window.coupling_index for w in usable}
        assert index == ({"sci"} if kind == "od" else {"psp"}), index


# ---------------------------------------------------------------- rates and montages


@pytest.mark.parametrize(
    ("eeg_rate", "nirs_rate"),
    [
        (2048.0, 10.1725),
        (250.0, 25.0),
        (256.0, 50.0),
        (1024.0, 10.172526041666666),
        (2000.0, 8.256495185430984),
    ],
)
def test_every_device_rate_gives_the_same_windows_live_and_offline(eeg_rate, nirs_rate):
    params = SignalParams()
    recording = synthetic(eeg_rate, nirs_rate, seconds=40.0)
    reference = offline(recording, params)
    assert any(w.usable for w in reference)
    assert_same(live(recording, params, seed=11), reference)


def test_a_rate_read_with_rounding_is_refused_with_a_fix():
    with pytest.raises(ChannelError) as info:
        rational_ratio(10.1725263, 5.0, max_denominator=2000)
    assert info.value.fix and "nominal rate" in info.value.fix


def test_an_fnirs_rate_below_the_model_rate_is_refused_by_the_bundle():
    bundle = load_bundle("models/default_bundle")
    with pytest.raises(BundleError) as info:
        bundle.check_modality("nirs", tuple(bundle.meta["inputs"]["nirs"]["channels"]), 3.9)
    assert "inputs.nirs.sfreq" in str(info.value) and "upsamples" in str(info.value)


def test_eeg_channels_are_found_in_any_superset_ignoring_case_and_by_alias():
    cap = ("FP1", "fp2", "T3", "T4", "T5", "T6", "Cz", "Oz", "Iz", "AF7")
    assert match_eeg(("Fp1", "Fp2", "T7", "T8", "P7", "P8", "Cz"), cap) == [0, 1, 2, 3, 4, 5, 6]
    assert match_eeg(("T3",), ("T7",)) == [0]
    with pytest.raises(ChannelError) as info:
        pick_eeg(("Fp1", "Pz", "O2"), cap, "EEG stream 'cap64'")
    assert "Pz, O2" in str(info.value) and "cap64" in str(info.value)
    with pytest.raises(ChannelError, match="several"):
        match_eeg(("Fp1",), ("FP1", "fp1"))


def test_a_64_channel_cap_with_other_case_and_old_names_fits_the_default_bundle():
    bundle = load_bundle("models/default_bundle")
    old = {"T7": "T3", "T8": "T4", "P7": "T5", "P8": "T6"}
    names = [old.get(n, n).upper() for n in bundle.eeg_channels]
    names += [f"X{i}" for i in range(64 - len(names))]
    bundle.check_modality("eeg", tuple(names), 512.0)


def test_short_separation_pairs_are_not_model_inputs():
    labels = ("S1_D1 760", "S1_D1 850", "S1_D9 760", "S1_D9 850")
    layout = NirsLayout.from_labels(labels, distances_m=np.array([0.03, 0.03, 0.008, 0.008]))
    assert layout.short_mask().tolist() == [False, True]
    assert [name for name, _ in layout.long_pairs()] == ["S1_D1"]
    block = SignalBlock(
        "n", "nirs", labels, ("a.u.",) * 4, 10.0, np.ones((5, 4)), np.arange(5.0), layout
    )
    assert describe_block(block, "nirs").layout.nirs.long_pairs() == layout.long_pairs()


# ---------------------------------------------------------------- fNIRS pairs by name or position


def _probe(renumber: dict[int, int] | None = None, order=None, shift_m: float = 0.0):
    """Three long pairs and a short one, with midpoints; sources renumbered and pairs listed
    in another order when asked."""
    pairs = [(1, 1, [0.05, 0.06, 0.02]), (1, 2, [0.03, 0.07, 0.03]), (2, 2, [0.0, 0.08, 0.04])]
    renumber = renumber or {}
    labels, distances, mids = [], [], []
    for i in order or range(len(pairs)):
        s, d, mid = pairs[i]
        for w in (760, 850):
            labels.append(f"S{renumber.get(s, s)}_D{d} {w}")
            distances.append(0.03)
            mids.append(np.array(mid) + shift_m)
    for w in (760, 850):  # a short channel on source 1
        labels.append(f"S{renumber.get(1, 1)}_D9 {w}")
        distances.append(0.008)
        mids.append([0.05, 0.05, 0.02])
    return NirsLayout.from_labels(labels, distances_m=np.array(distances), midpoints_m=mids)


MODEL_PAIRS = ("S1_D1", "S1_D2", "S2_D2")
MODEL_MIDS = np.array([[0.05, 0.06, 0.02], [0.03, 0.07, 0.03], [0.0, 0.08, 0.04]])


def test_pairs_listed_in_another_order_are_put_in_the_models_order():
    fit = fit_nirs(MODEL_PAIRS, None, _probe(order=[2, 0, 1]), "s")
    assert fit.by == "name" and fit.pair_names == list(MODEL_PAIRS)
    assert [n for n, _ in fit.layout.long_pairs()] == list(MODEL_PAIRS)
    assert [n for n, _ in fit.layout.pairs()][-1] == "S1_D9", "short channels are kept"


def test_a_probe_numbering_its_optodes_differently_is_matched_by_position():
    layout = _probe(renumber={1: 7, 2: 3}, order=[1, 2, 0], shift_m=0.004)
    fit = fit_nirs(MODEL_PAIRS, MODEL_MIDS, layout, "s")
    assert fit.by == "position"
    assert fit.pair_names == ["S7_D1", "S7_D2", "S3_D2"]
    np.testing.assert_allclose(fit.layout.pair_midpoints()[:3], MODEL_MIDS + 0.004)


@pytest.mark.parametrize(
    ("layout", "mids", "words"),
    [
        (_probe(renumber={1: 7}), None, ["S1_D1", "the model gives no optode positions"]),
        (
            _probe(renumber={1: 7}, shift_m=0.02),
            MODEL_MIDS,
            ["no stream pair within 10 mm", "S1_D1"],
        ),
    ],
    ids=["no-positions", "too-far"],
)
def test_pairs_that_cannot_be_found_are_named(layout, mids, words):
    with pytest.raises(ChannelError) as info:
        fit_nirs(MODEL_PAIRS, mids, layout, "NIRS stream 'probe'")
    for word in words:
        assert word in str(info.value), str(info.value)
    assert "NIRS stream 'probe'" in str(info.value)


def test_the_default_bundle_stores_its_pairs_midpoints():
    bundle = load_bundle("models/default_bundle")
    assert bundle.nirs_midpoints.shape == (len(bundle.nirs_pairs), 3)
    assert np.abs(bundle.nirs_midpoints).max() < 0.15


def test_review_edge_cases_of_units_and_pairs():
    assert stream_layout(
        "eeg", [{"label": "Cz", "unit": "UV", "type": "", "wavelength": "", "distance": ""}], "s"
    ).units == ("uV",)
    with pytest.raises(ChannelError, match="typed raw intensity"):
        stream_layout("nirs", nirs_channels("OD", type="nirs_cw_amplitude"), SOURCE)
    # a stream whose pairs are all short: refused by name, never a bare ValueError
    labels = ("S1_D1 760", "S1_D1 850")
    only_short = NirsLayout.from_labels(
        labels, distances_m=np.full(2, 0.008), midpoints_m=np.zeros((2, 3)) + 0.05
    )
    with pytest.raises(ChannelError, match="short-separation"):
        fit_nirs(("S1_D1",), np.array([[0.05, 0.05, 0.05]]), only_short, "NIRS stream 'x'")


def test_the_kernel_file_unit_is_looked_up_the_same_way_for_bids(recordings):
    from models.io.files import haemoglobin_unit

    kernel = recordings / "snirf/kernel_flow50_hb.snirf"
    assert haemoglobin_unit(kernel) == ("", None)
    assert haemoglobin_unit(kernel, "uM") == ("uM", 1.0)
