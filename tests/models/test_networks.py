"""Encoders, losses and the input contract."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from models.losses import info_nce, mask_tokens, masked_reconstruction  # noqa: E402
from models.networks import InputSpec, build_model  # noqa: E402

EEG = InputSpec("eeg", tuple(f"E{i}" for i in range(32)), 1250, 125.0)
N_FEATURES = 7
NIRS = InputSpec(
    "nirs", tuple(f"S{i}_D{i} {k}" for i in range(18) for k in ("hbo", "hbr")), 50, 5.0
)


@pytest.mark.parametrize("specs", [{"eeg": EEG, "nirs": NIRS}, {"eeg": EEG}, {"nirs": NIRS}])
def test_models_give_logits_per_head_and_unit_embeddings(specs):
    model = build_model(specs, N_FEATURES, n_heads=4).eval()
    logits, embedding = model(*_inputs(model, specs, 3))
    assert logits.shape == (3, 4)
    assert torch.allclose(embedding.norm(dim=1), torch.ones(3), atol=1e-5)


def test_a_closed_gate_leaves_the_feature_branch_alone():
    specs = {"eeg": EEG, "nirs": NIRS}
    model = build_model(specs, N_FEATURES, n_heads=4).eval()
    coef = np.linspace(-1, 1, N_FEATURES)
    model.set_feature_branch(np.zeros(N_FEATURES), np.full(N_FEATURES, 2.0), coef, 0.5)
    inputs = _inputs(model, specs, 5)
    with torch.no_grad():
        model.gate.fill_(0.0)
        logits, _ = model(*inputs)
    expected = (inputs[-1].numpy() / 2.0) @ coef + 0.5
    assert np.allclose(logits.numpy(), expected[:, None], atol=1e-4)
    assert not model.feature_head.weight.requires_grad, "the fitted branch stays frozen"


def _inputs(model, specs, batch: int) -> list:
    shapes = {
        "eeg": (len(EEG.channels), EEG.samples),
        "nirs": (len(NIRS.channels), NIRS.samples),
        "context": (2, NIRS.samples),
        "features": (N_FEATURES,),
    }
    return [torch.randn(batch, *shapes[name]) for name in model.input_names]


def test_encoders_refuse_inputs_that_break_their_contract():
    model = build_model({"eeg": EEG}, N_FEATURES)
    with pytest.raises(ValueError, match=r"expects \(batch, 32 channels, 1250 samples at 125 Hz\)"):
        model.encoders["eeg"].check_input(torch.zeros(2, 30, 1250))


def test_eeg_encoder_ignores_overall_amplitude():
    model = build_model({"eeg": EEG}, N_FEATURES).eval()
    x = torch.randn(2, 32, 1250)
    f = torch.zeros(2, N_FEATURES)
    with torch.no_grad():
        a, _ = model(x, f)
        b, _ = model(x * 3.0, f)
    # exact up to the 1e-3 floor added to the RMS (it keeps flat windows finite): with unit
    # RMS input that floor moves logits by about 1e-3 relative
    assert torch.allclose(a, b, atol=2e-3)
    assert not torch.allclose(a, model(x * 0.0, f)[0], atol=2e-3)


def test_info_nce_prefers_matching_pairs_and_soft_targets_at_zero_are_hard():
    g = torch.Generator().manual_seed(0)
    e = torch.nn.functional.normalize(torch.randn(16, 8, generator=g), dim=1)
    shuffled = e[torch.randperm(16, generator=g)]
    log_tau = torch.tensor(-2.0)
    assert info_nce(e, e, log_tau) < info_nce(e, shuffled, log_tau)
    assert torch.isclose(info_nce(e, shuffled, log_tau, 0.0), info_nce(e, shuffled, log_tau))
    assert not torch.isclose(info_nce(e, shuffled, log_tau, 0.3), info_nce(e, shuffled, log_tau))


def test_masking_and_reconstruction_loss():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, 3, 100)
    masked, mask = mask_tokens(x, 25, 0.5, g)
    assert mask.shape == (4, 4)
    assert torch.all(masked.reshape(4, 3, 4, 25)[mask.unsqueeze(1).expand(4, 3, 4)] == 0)
    decoder = torch.nn.Linear(5, 3)
    tokens = torch.randn(4, 4, 5)
    assert masked_reconstruction(tokens, decoder, x, 25, mask) > 0
