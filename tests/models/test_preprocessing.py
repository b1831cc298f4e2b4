"""Causal preprocessing: chunking invariance, resampling, TMS blanking, NaN handling."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import signal

from models.preprocessing import EegChain, EegParams, NirsChain, NirsParams, PolyphaseResampler
from models.preprocessing.guard import FiniteGuard
from models.signals import NirsLayout


def _random_chunks(n: int, rng: np.random.Generator) -> list[slice]:
    """Cut ``n`` samples into chunks of 0 to 700 samples, some of length 0 and 1."""
    bounds = [0]
    while bounds[-1] < n:
        bounds.append(min(n, bounds[-1] + int(rng.choice([0, 1, 3, 17, 250, 700]))))
    return [slice(a, b) for a, b in itertools.pairwise(bounds)]


def _eeg(n: int = 20_000, n_ch: int = 8, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = (
        rng.standard_normal((n, n_ch)) * 20
        + np.sin(np.arange(n) / 500 * 2 * np.pi * 50)[:, None] * 10
    )
    for onset in range(3000, n - 200, 1700):  # TMS-like pulses: 3 mV jumps decaying in 5 ms
        x[onset : onset + 60] += np.outer(
            np.exp(-np.arange(60) / 2.5), np.linspace(300, 3000, n_ch)
        )
    x[9000:9005, 2] = np.nan
    x[12000, 5] = np.inf
    return x


def test_eeg_chain_is_chunking_invariant_with_pulses_and_nans():
    x = _eeg()
    params = EegParams()
    whole = EegChain(params, 500.0, x.shape[1])(x)
    chain = EegChain(params, 500.0, x.shape[1])
    parts = [chain(x[s]) for s in _random_chunks(len(x), np.random.default_rng(1))]
    chunked = np.vstack([p.data for p in parts])
    assert chunked.shape == whole.data.shape == (5000, 8)
    np.testing.assert_allclose(chunked, whole.data, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(np.concatenate([p.blanked_in for p in parts]), whole.blanked_in)
    assert np.isfinite(whole.data).all()
    assert np.concatenate([p.bad_in for p in parts]).sum() == 6


def test_tms_blanking_finds_every_pulse_and_removes_the_artifact():
    x = _eeg()
    chain = EegChain(EegParams(), 500.0, x.shape[1])
    out = chain(x)
    n_pulses = len(range(3000, len(x) - 200, 1700))
    assert chain.n_pulses == n_pulses
    # 20 ms at 500 Hz = 10 samples per pulse; the artifact's first steep decay steps are
    # jumps too and restart the blank, so a little more is held, never less
    assert 10 * n_pulses <= out.blanked_in.sum() <= 15 * n_pulses
    # the artifact (3 mV) is gone: output stays in the range of the background EEG
    assert np.abs(out.data[200:]).max() < 300


def test_blanking_can_be_switched_off_and_then_the_artifact_stays():
    x = _eeg()
    out = EegChain(EegParams(tms_blank_ms=0.0), 500.0, x.shape[1])(x)
    assert not out.blanked_in.any()
    assert np.abs(out.data[200:]).max() > 300


def test_nirs_chain_is_chunking_invariant():
    rng = np.random.default_rng(3)
    labels = [f"S{s}_D{d} {w}" for s, d in ((1, 1), (1, 2), (2, 2)) for w in (760, 850)]
    layout = NirsLayout.from_labels(labels, distances_m=np.full(6, 0.03))
    n = 6000
    t = np.arange(n) / 10
    x = np.exp(-0.01 * np.sin(2 * np.pi * 1.1 * t)[:, None] - 0.02 * rng.standard_normal((n, 6)))
    x[2000:2003, 1] = np.nan
    whole = NirsChain(NirsParams(), 10.0, layout)(x)
    chain = NirsChain(NirsParams(), 10.0, layout)
    parts = [chain(x[s]) for s in _random_chunks(n, np.random.default_rng(4))]
    np.testing.assert_allclose(np.vstack([p.hb for p in parts]), whole.hb, rtol=0, atol=1e-9)
    np.testing.assert_allclose(
        np.vstack([p.cardiac for p in parts]), whole.cardiac, rtol=0, atol=1e-12
    )
    assert whole.hb.shape == (3000, 6)
    assert np.isfinite(whole.hb).all()


@pytest.mark.parametrize(("up", "down"), [(1, 4), (1, 2), (2, 3), (125, 128)])
def test_resampler_equals_resample_poly_delayed(up, down):
    """Causal output equals scipy's zero-phase resample_poly shifted by the FIR group delay."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4000, 3))
    resampler = PolyphaseResampler(up, down)
    y = np.vstack([resampler(x[s]) for s in _random_chunks(len(x), np.random.default_rng(2))])
    ref = signal.resample_poly(x, up, down, axis=0)
    delay_out = 10 * max(up, down) / down  # half the FIR length, in output samples
    shift = round(delay_out)
    assert abs(delay_out - shift) < 1e-9 or up != 1
    if up == 1:
        np.testing.assert_allclose(y[shift + 50 : -50], ref[50 : len(y) - shift - 50], atol=1e-10)
    assert abs(len(y) - len(ref)) <= 1


def test_finite_guard_holds_last_value():
    guard = FiniteGuard()
    clean, bad = guard(np.array([[1.0, 2.0], [np.nan, 3.0]]))
    np.testing.assert_array_equal(clean, [[1.0, 2.0], [1.0, 3.0]])
    clean, bad = guard(np.array([[np.inf, np.nan], [5.0, 6.0]]))
    np.testing.assert_array_equal(clean, [[1.0, 3.0], [5.0, 6.0]])
    assert bad.sum() == 2


def test_params_cross_checks_refuse_impossible_bands():
    from contract.errors import ConfigError
    from contract.settings import load_config

    with pytest.raises(ConfigError, match="h_freq"):
        load_config(EegParams, None, name="eeg", environ={}, overrides={"h_freq": 80.0})
