"""The committed default bundle loads, fits the simulator's montage and scores windows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models.bundle import BundleScorer, load_bundle
from models.simulation.montage import EEG_CHANNELS, nirs_pairs
from neuroclip.modelling import windowset_feeds

DEFAULT = Path(__file__).resolve().parents[2] / "models" / "default_bundle"


def test_default_bundle_is_small_verified_and_fits_the_simulated_montage():
    bundle = load_bundle(DEFAULT)
    assert (DEFAULT / "model.onnx").stat().st_size < 3_000_000
    assert bundle.modalities == ("eeg", "nirs")
    nirs = tuple(f"{p.name} {k}" for p in nirs_pairs() for k in ("hbo", "hbr"))
    bundle.check_streams(
        eeg_channels=EEG_CHANNELS, eeg_sfreq=500.0, nirs_channels=nirs, nirs_sfreq=10.0
    )
    assert bundle.meta["metrics"]["onnx_parity_max_abs"] <= 1e-4
    assert bundle.meta["validation"]["passed"], "the default must pass its own validation"


@pytest.mark.slow
def test_default_bundle_separates_the_groups_of_a_new_small_cohort(train_windows):
    """Not a benchmark: a sanity check that the committed model is not a constant."""
    scorer = BundleScorer(load_bundle(DEFAULT))
    ws = train_windows.take(train_windows.usable & np.isin(train_windows.rtms, ["pre", "none"]))
    scores = scorer.score(**windowset_feeds(scorer, ws))
    assert scores.probability.std() > 0.01
    assert np.all(np.isfinite(scores.probability))
