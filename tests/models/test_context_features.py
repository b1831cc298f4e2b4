"""Cue context, window features, the session estimate and the hand-crafted reference."""

from __future__ import annotations

import numpy as np
import pytest

from models.context import CueLog, cue_occupancy, cue_regressors, typical_cue_s
from models.features import feature_names, window_features
from models.handcrafted import HandcraftedModel, LabelledWindows
from models.pipeline.recording import marker_chunk
from models.session_estimate import (
    SessionCalibration,
    estimate,
    expected_calibration_error,
    fit_session_calibration,
)
from models.signals import Markers


def test_cue_log_closes_cues_on_the_next_marker_and_caps_open_ones():
    log = CueLog(max_cue_s=20.0)
    for label, t in [("rest", 0.0), ("cue/drug", 10.0), ("rest", 30.0), ("cue/neutral", 45.0)]:
        log.add(label, t)
    log.add("cue/drug", 50.0)  # event-related: the next cue closes the previous one
    assert log.spans() == [(10.0, 30.0, "drug"), (45.0, 50.0, "neutral"), (50.0, 70.0, "drug")]
    assert log.kind_at(20.0, 25.0) == "drug" and log.kind_at(32.0, 44.0) is None


def test_cue_log_is_the_same_from_a_file_and_live():
    times = np.array([5.0, 0.0, 30.0])
    labels = ("cue/drug", "rest", "rest")
    live, from_file = CueLog(), CueLog()
    for t, lab in sorted(zip(times, labels, strict=True)):
        live.add(lab, t)
    chunk = marker_chunk(Markers(times, labels))  # a file's markers, as the pipeline gets them
    for lab, t in zip(chunk.data, chunk.stamps, strict=True):
        from_file.add(lab, float(t))
    assert from_file.spans() == live.spans() == [(5.0, 25.0, "drug")]


def test_regressors_follow_the_haemodynamic_response():
    spans = [(0.0, 20.0, "drug")]
    r = cue_regressors(spans, -5.0, 5.0, 250)  # 50 s at 5 Hz, from 5 s before the cue
    drug, neutral = r
    assert np.all(neutral == 0)
    assert drug[:25].max() < 1e-9, "nothing before the cue"
    peak = np.argmax(drug) / 5.0 - 5.0
    assert 8.0 < peak < 26.0 and 1.0 < drug.max() < 1.2  # the undershoot lags the rise
    assert drug[120] == pytest.approx(1.0, abs=0.05), "a long block plateaus at 1"
    assert abs(drug[-1]) < 0.05, "back near baseline 25 s after the block"
    # a window sees the same values whatever it was cut from
    part = cue_regressors(spans, 10.0, 5.0, 50)
    assert np.allclose(part, r[:, 75:125])


def test_occupancy_is_the_fraction_of_the_window_in_each_cue():
    occ = cue_occupancy([(0.0, 5.0, "drug"), (8.0, 20.0, "neutral")], 0.0, 10.0)
    assert occ == pytest.approx([0.5, 0.2])


def _windows(n: int, rng: np.random.Generator, alpha: float, drug_hbo: float):
    t = np.arange(1250) / 125.0
    eeg = rng.normal(0, 1, (n, 4, 1250)) + alpha * np.sin(2 * np.pi * 10 * t)
    context = np.zeros((n, 2, 50))
    context[:, 0] = np.linspace(0, 1, 50)
    nirs = rng.normal(0, 0.05, (n, 6, 50))
    nirs[:, 0::2] += drug_hbo * context[:, 0:1]
    occupancy = np.tile([1.0, 0.0], (n, 1))
    return eeg, nirs, context, occupancy


def test_features_see_band_power_and_cue_locked_haemoglobin():
    rng = np.random.default_rng(0)
    names = feature_names(("A", "B", "C", "D"), tuple(f"P{i} {k}" for i in range(3) for k in "xy"))
    low = window_features(*_windows(4, rng, 0.0, 0.0), 125.0)
    high = window_features(*_windows(4, rng, 3.0, 1.0), 125.0)
    assert low.shape == (4, len(names)) and low.dtype == np.float32
    alpha = names.index("eeg:mean:rel_alpha")
    drug = names.index("nirs:mean_hbo:drug")
    assert high[:, alpha].min() > low[:, alpha].max()
    assert high[:, drug].mean() == pytest.approx(1.0, abs=0.15)
    assert abs(low[:, drug].mean()) < 0.1


def test_handcrafted_model_separates_groups_and_calibrates_sessions():
    rng = np.random.default_rng(1)
    rows = []
    for s in range(12):
        group = s % 2
        eeg, nirs, ctx, occ = _windows(6, rng, 1.0 + 1.5 * group, 0.5 * group)
        rows.append((window_features(eeg, nirs, ctx, occ, 125.0), s, group))
    names, data = _labelled(rows)
    model = HandcraftedModel(names, ("eeg", "nirs"), seed=0).fit(data)
    assert model.inner_auc is not None and model.inner_auc > 0.9
    assert model.c in model.c_grid and model.subset in ("all", "summary")
    assert model.calibration.a > 0
    logits = model.logits(data.features)
    assert logits[data.group == 1].mean() > logits[data.group == 0].mean()
    eeg_only = HandcraftedModel(names, ("eeg",), seed=0)
    assert all(names[i].startswith("eeg:") for i in eeg_only.columns)


def test_session_estimate_narrows_with_evidence():
    cal = SessionCalibration(a=1.0, b=0.0, window_sd=2.0)
    few = estimate(np.array([1.0, 1.2]), cal, 0.5)
    many = estimate(np.full(200, 1.1), cal, 0.5)
    assert few is not None and many is not None
    assert few.low < few.probability < few.high
    assert (many.high - many.low) < (few.high - few.low) / 5
    assert estimate(np.array([np.nan]), cal) is None


def test_session_calibration_and_ece():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 400)
    z = 3.0 * (2 * y - 1) + rng.normal(0, 3.0, 400)  # over-spread logits
    cal = fit_session_calibration(z, y, 1.0)
    p_raw = 1 / (1 + np.exp(-z))
    p_cal = 1 / (1 + np.exp(-(cal.a * z + cal.b)))
    assert 0 < cal.a < 1
    assert expected_calibration_error(p_cal, y) < expected_calibration_error(p_raw, y)


def test_an_open_cue_ends_after_the_longest_cue_and_the_data_sets_that_length():
    log = CueLog(max_cue_s=2.5)
    log.add("cue/drug", 100.0)  # no closing marker comes
    assert log.kind_at(101.0, 102.0) == "drug"
    assert log.kind_at(103.0, 110.0) is None
    durations = np.array([60.0, 2.4, 2.6, 2.5, 0.0])
    labels = ("rest", "cue/drug", "cue/neutral", "cue/drug", "rtms/pulse")
    assert typical_cue_s(durations, labels) == pytest.approx(2.5)
    assert typical_cue_s(None, labels) is None
    assert typical_cue_s(np.array([60.0]), ("rest",)) is None


def test_features_of_a_montage_without_fnirs_pairs_are_finite():
    rng = np.random.default_rng(3)
    eeg, _, ctx, occ = _windows(2, rng, 1.0, 0.0)
    out = window_features(eeg, np.zeros((2, 0, 50)), ctx, occ, 125.0)
    assert np.isfinite(out).all()


def test_late_fusion_weighs_the_modality_that_carries_the_signal():
    rng = np.random.default_rng(4)
    rows = []
    for s in range(16):
        group = s % 2
        eeg, nirs, ctx, occ = _windows(6, rng, 1.0, 0.6 * group)  # EEG: no group effect
        eeg = eeg * rng.lognormal(0, 0.3)
        rows.append((window_features(eeg, nirs, ctx, occ, 125.0), s, group))
    names, data = _labelled(rows)
    model = HandcraftedModel(names, ("eeg", "nirs"), seed=0).fit(data)
    assert set(model.part_weights) == {"eeg", "nirs"}
    assert model.part_weights["nirs"] > model.part_weights["eeg"]
    assert model.part_aucs["nirs"] > 0.9
    logits = model.logits(data.features)
    assert logits[data.group == 1].mean() > logits[data.group == 0].mean()
    # the fused model is one linear model over both modalities' columns (the ONNX branch)
    assert len(model.fit_.columns) == len(names)


def test_a_part_fitted_on_the_channel_means_still_spans_every_column_of_its_modality():
    rng = np.random.default_rng(5)
    rows = []
    for s in range(12):
        group = s % 2
        eeg, nirs, ctx, occ = _windows(4, rng, 1.0 + 1.5 * group, 0.0)
        rows.append((window_features(eeg, nirs, ctx, occ, 125.0), s, group))
    names, data = _labelled(rows)
    model = HandcraftedModel(names, ("eeg",), seed=0, c_grid=(0.01,))
    model.fit(data)
    assert np.array_equal(model.fit_.columns, model.columns)
    assert len(model.fit_.coef) == len(model.columns)


def _labelled(rows: list) -> tuple[list[str], LabelledWindows]:
    """Feature names and labelled windows of ``(features, subject, group)`` rows."""
    names = feature_names(("A", "B", "C", "D"), tuple(f"P{i} {k}" for i in range(3) for k in "xy"))
    data = LabelledWindows(
        np.concatenate([f for f, _, _ in rows]),
        np.concatenate([np.full(len(f), f"s{s}") for f, s, _ in rows]),
        np.concatenate([np.full(len(f), "pre") for f, _, _ in rows]),
        np.concatenate([np.full(len(f), g) for f, _, g in rows]),
    )
    return names, data
