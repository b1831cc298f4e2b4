"""fNIRS quality and cleaning on synthetic signals with a known truth: short-channel
regression, saturation and signal-loss flags, and the cardiac peak power."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from models.preprocessing.loss import FLAT_SAMPLES, SignalLossDetector
from models.preprocessing.quality import cardiac_peak_power
from models.preprocessing.short_channels import ShortChannelRegression
from models.signals import NirsLayout
from models.windows import SignalParams, WindowSignals, assemble_window

FS = 10.0


def _layout() -> NirsLayout:
    """Two long pairs on sources 1 and 2, a short channel on each source."""
    labels = [f"{p} {w}" for p in ("S1_D1", "S2_D2", "S1_D9", "S2_D10") for w in (760, 850)]
    distances = np.repeat([0.03, 0.03, 0.008, 0.008], 2)
    return NirsLayout.from_labels(labels, distances_m=distances)


def _scalp_and_cortex(seconds: float = 600.0, seed: int = 0):
    """HbO/HbR per pair (columns pair0 hbo, pair0 hbr, ...): each source has its own scalp
    signal (Mayer waves, respiration, drift); long pairs add a cortical signal."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * FS)) / FS
    scalp = [
        0.4 * np.sin(2 * np.pi * 0.1 * t + rng.uniform(0, 6))
        + 0.2 * np.sin(2 * np.pi * 0.25 * t + rng.uniform(0, 6))
        + 0.1 * rng.standard_normal(len(t)).cumsum() / np.sqrt(len(t))
        for _ in range(2)
    ]
    cortex = [0.3 * np.sin(2 * np.pi * 0.033 * t + rng.uniform(0, 6)) for _ in range(2)]
    hb = np.zeros((len(t), 8))
    for source in range(2):
        hb[:, 2 * source] = cortex[source] + 1.5 * scalp[source]  # long, HbO
        hb[:, 2 * source + 1] = -0.3 * cortex[source] + 0.5 * scalp[source]  # long, HbR
        hb[:, 4 + 2 * source] = scalp[source]  # short, HbO
        hb[:, 4 + 2 * source + 1] = 0.33 * scalp[source]  # short, HbR
    hb += 0.01 * rng.standard_normal(hb.shape)
    return hb, cortex, scalp


def test_the_regression_removes_the_scalp_signal_and_keeps_the_cortical_one():
    hb, cortex, scalp = _scalp_and_cortex()
    regression = ShortChannelRegression(_layout(), FS, tau_s=120.0)
    clean = regression(hb)
    assert clean.shape == (len(hb), 4), "short channels leave the output"
    late = slice(len(hb) // 3, None)  # after the running fit has settled
    for source in range(2):
        raw_scalp = abs(np.corrcoef(hb[late, 2 * source], scalp[source][late])[0, 1])
        left = abs(np.corrcoef(clean[late, 2 * source], scalp[source][late])[0, 1])
        kept = np.corrcoef(clean[late, 2 * source], cortex[source][late])[0, 1]
        assert raw_scalp > 0.8 and left < 0.2 and kept > 0.9, (raw_scalp, left, kept)


def test_the_regression_gives_the_same_output_in_any_chunking():
    hb, _, _ = _scalp_and_cortex(120.0, seed=1)
    whole = ShortChannelRegression(_layout(), FS, tau_s=60.0)(hb)
    chunked = ShortChannelRegression(_layout(), FS, tau_s=60.0)
    rng = np.random.default_rng(2)
    parts, pos = [], 0
    while pos < len(hb):
        stop = pos + int(rng.integers(0, 9))
        parts.append(chunked(hb[pos:stop]))
        pos = stop
    np.testing.assert_array_equal(np.vstack(parts), whole)


def test_switched_off_the_short_channels_are_only_dropped():
    hb, _, _ = _scalp_and_cortex(60.0)
    out = ShortChannelRegression(_layout(), FS, tau_s=60.0, enabled=False)(hb)
    np.testing.assert_array_equal(out, hb[:, :4])


def _intensity(seconds: float = 30.0) -> np.ndarray:
    rng = np.random.default_rng(4)
    t = np.arange(round(seconds * FS)) / FS
    return (
        1.0 + 0.01 * np.sin(2 * np.pi * 1.1 * t)[:, None] + 0.002 * rng.standard_normal((len(t), 4))
    )


@pytest.mark.parametrize(
    "fault",
    ["nan", "jump", "flat", "zero"],
)
def test_saturation_and_signal_loss_flag_their_channel_for_the_hold(fault):
    x = _intensity()
    if fault == "nan":
        x[100:105, 2] = np.nan
    elif fault == "jump":
        x[100:105, 2] *= 40.0
    elif fault == "flat":
        x[100:110, 2] = 1.5
    else:
        x[100:105, 2] = 0.0
    detector = SignalLossDetector("intensity", FS, hold_s=1.0)
    held = np.where(np.isfinite(x), x, 1.0)
    lost = detector(x, held)
    assert lost[:, [0, 1, 3]].sum() == 0, "only the faulty channel"
    first = 100 + (FLAT_SAMPLES - 1 if fault == "flat" else 0)
    assert lost[first, 2] and not lost[:first, 2].any()
    # the last event: the last NaN, the step back from a jump or from zero, the end of a run
    last_event = {"nan": 104, "jump": 105, "flat": 109, "zero": 105}[fault]
    assert np.flatnonzero(lost[:, 2])[-1] == last_event + round(FS) - 1


def test_loss_flags_do_not_depend_on_chunking():
    x = _intensity()
    x[50:53, 1] *= 30
    x[200:230, 3] = 2.0
    held = x.copy()
    whole = SignalLossDetector("intensity", FS)(x, held)
    detector = SignalLossDetector("intensity", FS)
    parts = [detector(x[i : i + 7], held[i : i + 7]) for i in range(0, len(x), 7)]
    np.testing.assert_array_equal(np.vstack(parts), whole)


def test_cardiac_peak_power_is_high_for_a_pulse_and_low_for_noise_or_flat():
    rng = np.random.default_rng(5)
    t = np.arange(round(10 * FS)) / FS
    pulse = np.sin(2 * np.pi * 1.1 * t) + 0.3 * rng.standard_normal(len(t))
    noise = rng.standard_normal(len(t))
    flat = np.zeros(len(t))
    psp = cardiac_peak_power(np.column_stack([pulse, noise, flat]), FS, (0.7, 1.5))
    assert psp[0] > 0.2 and psp[1] < 0.1 and psp[2] == 0.0, psp


def test_a_lost_short_channel_holds_the_fit_and_flags_the_long_pairs_that_use_it():
    hb, _, _ = _scalp_and_cortex(600.0, seed=3)
    layout = _layout()
    spoiled = hb.copy()
    loss = slice(3000, 3200)  # 20 s of the short channel on source 1 at 4x
    spoiled[loss, 4:6] *= 4.0
    lost = np.zeros((len(hb), 4), bool)
    lost[loss, 2] = True
    clean = ShortChannelRegression(layout, FS, tau_s=120.0)(hb)
    held = ShortChannelRegression(layout, FS, tau_s=120.0)(spoiled, lost)
    blind = ShortChannelRegression(layout, FS, tau_s=120.0)(spoiled)
    after = slice(3300, 4000)  # 10-80 s after the loss
    assert (
        np.abs(held[after] - clean[after]).max() < 0.2 * np.abs(blind[after] - clean[after]).max()
    )
    assert layout.short_references == ((2,), (3,), (), ())

    params = SignalParams()
    n = 50
    signals = WindowSignals(
        eeg=np.zeros((1250, 4)),
        hb=np.zeros((n, 4)),
        raw_eeg=np.random.default_rng(0).standard_normal((1000, 4)),
        cardiac=np.random.default_rng(1).standard_normal((100, 8)),
        nonfinite=False,
        tms_blanked=False,
        in_rtms_train=False,
        context=np.zeros((2, n)),
        occupancy=np.zeros(2),
        nirs_lost=np.array([False] * 4 + [True, True] + [False] * 2),  # S1_D9 lost
        nirs_rate=FS,
    )
    window = assemble_window(signals, layout, params)
    assert window.saturated.tolist() == [True, False], "S1_D1 uses S1_D9; S2_D2 does not"
    off = SignalParams(nirs=replace(params.nirs, short_channel_regression=False))
    assert assemble_window(signals, layout, off).saturated.tolist() == [False, False]


def _chain_hbo(x: np.ndarray, layout: NirsLayout) -> np.ndarray:
    from models.preprocessing.nirs import NirsChain, NirsParams

    return NirsChain(NirsParams(), FS, layout).__call__(x).hb


def _two_pairs() -> NirsLayout:
    labels = [f"{p} {w}" for p in ("S1_D1", "S2_D2") for w in (760, 850)]
    return NirsLayout.from_labels(labels, distances_m=np.full(4, 0.03))


def test_a_saturated_segment_does_not_ring_through_the_filters_after_its_flag():
    """Without the hold, a 5 s step of x50 left 46 uM of error 1 s after the flag ended,
    against a signal sd of 0.12 uM; the plateau inside the step stays flagged too."""
    rng = np.random.default_rng(6)
    n = round(300 * FS)
    t = np.arange(n) / FS
    x = 1.0 + 0.01 * np.sin(2 * np.pi * 0.05 * t)[:, None] + 0.001 * rng.standard_normal((n, 4))
    spoiled = x.copy()
    spoiled[1000:1050, 0] *= 50.0
    clean, hit = _chain_hbo(x, _two_pairs()), _chain_hbo(spoiled, _two_pairs())
    sd = clean[:, :2].std()
    # 5 Hz output: 2 s and 45 s after the flag ends (the held 6 s differ from the truth)
    assert np.abs(hit[(107 * 5) :] - clean[(107 * 5) :]).max() < 2 * sd
    assert np.abs(hit[(150 * 5) :] - clean[(150 * 5) :]).max() < 0.1 * sd
    assert np.abs(hit[:, 2:] - clean[:, 2:]).max() == 0.0, "the other pair is untouched"


def test_a_nan_at_the_first_sample_does_not_spoil_the_channel():
    rng = np.random.default_rng(7)
    x = 1.0 + 0.001 * rng.standard_normal((round(120 * FS), 4))
    first_nan = x.copy()
    first_nan[0, 1] = np.nan
    clean, hit = _chain_hbo(x, _two_pairs()), _chain_hbo(first_nan, _two_pairs())
    assert np.abs(hit[(30 * 5) :] - clean[(30 * 5) :]).max() < 1e-3


def test_an_empty_first_chunk_changes_nothing():
    x = _intensity()
    whole = SignalLossDetector("intensity", FS)(x, x)
    detector = SignalLossDetector("intensity", FS)
    detector(x[:0], x[:0])
    np.testing.assert_array_equal(detector(x, x), whole)
