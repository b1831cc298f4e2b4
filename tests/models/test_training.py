"""Progressive training, windows, export parity, reproducibility and the bundle contract."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

pytest.importorskip("torch")

from contract.errors import BundleError, DatasetError
from models.bundle import BundleScorer, load_bundle
from models.evaluation import model_metrics
from models.export import parity
from models.folds import subject_folds
from models.training import train_model
from neuroclip.modelling import windowset_feeds

pytestmark = pytest.mark.slow


def test_windows_overlapping_rtms_trains_are_flagged_and_left_out(train_windows):
    ws = train_windows
    assert (~ws.usable).sum() > 0, "the cohort has rTMS blocks, some windows must be flagged"
    assert ws.usable.sum() > 0.5 * len(ws)
    assert ws.eeg.shape[1:] == (32, 1250) and ws.nirs.shape[1:] == (36, 50)
    assert np.isfinite(ws.eeg).all() and np.isfinite(ws.nirs).all()


def test_split_is_by_subject(quick_bundle):
    _, trained = quick_bundle
    assert set(trained.fit_subjects).isdisjoint(trained.val_subjects)
    assert trained.temperature > 0


def test_onnx_runtime_agrees_with_torch(quick_bundle, train_windows):
    out, trained = quick_bundle
    assert parity(trained, out / "model.onnx", train_windows, n=64) <= 1e-4
    meta = json.loads((out / "bundle.json").read_text())
    assert meta["metrics"]["onnx_parity_max_abs"] <= 1e-4


def test_dynamic_batch_and_scores_are_probabilities(quick_bundle, train_windows):
    out, _ = quick_bundle
    scorer = BundleScorer(load_bundle(out))
    for n in (1, 7):
        s = scorer.score(**windowset_feeds(scorer, train_windows.take(np.arange(n))))
        assert s.probability.shape == (n,)
        assert np.all(
            (s.low >= 0) & (s.low <= s.probability) & (s.probability <= s.high) & (s.high <= 1)
        )
        assert np.all((s.distance_hc >= 0) & (s.distance_hc <= 2))


def test_same_seed_same_model(train_windows, quick_config):
    a = train_model(train_windows, quick_config, progress=False)
    b = train_model(train_windows, quick_config, progress=False)
    assert a.temperature == b.temperature
    for key, value in a.model.state_dict().items():
        assert np.array_equal(value.numpy(), b.model.state_dict()[key].numpy()), key


def test_tampered_bundle_is_refused(quick_bundle, tmp_path):
    out, _ = quick_bundle
    copy = tmp_path / "tampered"
    shutil.copytree(out, copy)
    with (copy / "model.onnx").open("ab") as handle:
        handle.write(b"\0")
    with pytest.raises(BundleError, match=r"sha256 .* does not match") as info:
        load_bundle(copy)
    assert info.value.field == "model_sha256"


def test_bundle_refuses_streams_that_do_not_fit(quick_bundle):
    bundle = load_bundle(quick_bundle[0])
    channels = tuple(bundle.meta["inputs"]["eeg"]["channels"])
    nirs = tuple(bundle.meta["inputs"]["nirs"]["channels"])
    bundle.check_streams(
        eeg_channels=(*channels, "EXTRA"), eeg_sfreq=500.0, nirs_channels=nirs, nirs_sfreq=10.0
    )
    with pytest.raises(BundleError, match=r"inputs\.eeg\.channels expects Fp1") as info:
        bundle.check_streams(eeg_channels=channels[1:], nirs_channels=nirs)
    assert info.value.field == "inputs.eeg.channels"
    with pytest.raises(BundleError, match=r"needs NIRS"):
        bundle.check_streams(eeg_channels=channels)
    with pytest.raises(BundleError, match=r"inputs\.eeg\.sfreq"):
        bundle.check_streams(eeg_channels=channels, eeg_sfreq=100.0, nirs_channels=nirs)


def test_folds_and_bad_datasets(train_windows):
    ws = train_windows
    folds = subject_folds(ws.subject, ws.group, 3, seed=0)
    assert sorted(s for f in folds for s in f) == sorted(train_windows.subjects)
    with pytest.raises(DatasetError, match="for 4 folds"):
        subject_folds(ws.subject, ws.group, 4, seed=0)
    one_group = train_windows.take(train_windows.group == 1)
    with pytest.raises(DatasetError, match="HC subject"):
        train_model(one_group, _quick(), progress=False)


def _quick():
    from contract.settings import load_config
    from models.train_config import TrainConfig
    from tests.conftest import QUICK_TRAIN

    return load_config(TrainConfig, QUICK_TRAIN, name="train", environ={})


def test_sessions_without_craving_are_left_out_of_the_correlation(train_windows):
    ws = train_windows.take(train_windows.usable)
    ws.craving[ws.subject == ws.subjects[0]] = np.nan
    metrics = model_metrics(ws, np.linspace(0, 1, len(ws)))
    n_sessions = len({(s, t) for s, t in zip(ws.subject, ws.session, strict=True)})
    first = {(s, t) for s, t in zip(ws.subject, ws.session, strict=True) if s == ws.subjects[0]}
    assert metrics["craving"]["n"] == n_sessions - len(first)


def test_features_only_training_is_the_hand_crafted_model(train_windows, quick_config):
    from dataclasses import replace

    from models.training import fit_feature_model, predict, select_device

    cfg = replace(quick_config, deep_in_score="never")
    trained = train_model(train_windows, cfg, progress=False)
    assert trained.validation["gate"] is False and trained.validation["mode"] == "never"
    logits, _ = predict(trained.model, train_windows, select_device("cpu"))
    reference = fit_feature_model(train_windows, np.ones(len(train_windows), bool), cfg)
    np.testing.assert_allclose(
        logits.mean(axis=1), reference.logits(train_windows.features), atol=1e-4
    )


def test_stacking_the_aligned_embedding_exports_and_records_its_decision(
    train_windows, quick_config, tmp_path
):
    from dataclasses import replace

    from models.export import write_bundle

    cfg = replace(quick_config, deep_in_score="stack")
    trained = train_model(train_windows, cfg, progress=False)
    v = trained.validation
    assert v["mode"] == "stack" and v["gate"] is False and isinstance(v["stacked"], bool)
    out = write_bundle(trained, cfg, tmp_path / "b", ws=train_windows, name="s", metrics={})
    assert parity(trained, out / "model.onnx", train_windows, n=16) <= 1e-4


def test_a_model_that_can_only_give_a_constant_stops_with_a_clear_error(
    train_windows, quick_config
):
    from dataclasses import replace

    from contract.errors import TrainingFailedError

    blank = train_windows.take(np.arange(len(train_windows)))
    blank.features = np.zeros_like(blank.features)
    with pytest.raises(TrainingFailedError, match="constant"):
        train_model(blank, replace(quick_config, deep_in_score="never"), progress=False)


def test_the_scorer_picks_its_features_by_name(quick_bundle, train_windows):
    out, _ = quick_bundle
    scorer = BundleScorer(load_bundle(out))
    ws = train_windows.take(np.arange(4))
    names = ws.feature_names
    wanted = scorer.pick_features(ws.features, names)
    order = np.arange(len(names))[::-1]
    reordered = scorer.pick_features(ws.features[:, order], [names[i] for i in order])
    np.testing.assert_array_equal(wanted, reordered)
    with pytest.raises(BundleError, match="needs feature"):
        scorer.pick_features(ws.features[:, 1:], names[1:])
    with pytest.raises(BundleError, match="needs its name"):
        scorer.pick_features(ws.features, names[1:])


def test_a_default_bundle_that_failed_validation_is_refused(quick_bundle, tmp_path, monkeypatch):
    import models.bundle as bundle_module

    out, _ = quick_bundle
    copy = tmp_path / "default"
    shutil.copytree(out, copy)
    meta = json.loads((copy / "bundle.json").read_text())
    meta["validation"]["passed"] = False
    meta["validation"]["warnings"] = ["no usable signal"]
    (copy / "bundle.json").write_text(json.dumps(meta))
    load_bundle(copy)  # any other bundle loads (its warnings are the user's to read)
    monkeypatch.setattr(bundle_module, "DEFAULT_BUNDLE", copy.resolve())
    with pytest.raises(BundleError, match="failed its own validation") as info:
        load_bundle(copy)
    assert info.value.field == "validation.passed"


def test_deep_heads_behind_the_gate_record_the_decision(train_windows, quick_config):
    from dataclasses import replace

    trained = train_model(
        train_windows, replace(quick_config, deep_in_score="gate"), progress=False
    )
    v = trained.validation
    assert v["mode"] == "gate" and isinstance(v["gate"], bool)
    assert {"val_nll_features", "val_nll_deep", "deep_sd"} <= set(v)
    assert float(trained.model.gate) == (1.0 if v["gate"] else 0.0)
