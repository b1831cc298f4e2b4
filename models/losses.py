"""Losses of progressive training: contrastive alignment and masked reconstruction."""

from __future__ import annotations

import torch
from torch.nn import functional as F  # noqa: N812


def info_nce(
    eeg: torch.Tensor, nirs: torch.Tensor, log_tau: torch.Tensor, soft_alpha: float = 0.0
) -> torch.Tensor:
    """Symmetric InfoNCE between matching EEG and fNIRS windows (other rows are negatives).

    With ``soft_alpha > 0`` the one-hot targets are softened toward the fNIRS-fNIRS
    similarity of the batch (the refined contrastive loss of the EEG-image NeuroCLIP): two
    windows whose haemodynamics look alike are not pushed apart as hard negatives, which
    tolerates noisy EEG pairs. Inputs are L2-normalised ``(B, D)``; the temperature is
    ``exp(log_tau)``, clamped to [0.01, 1].
    """
    tau = log_tau.exp().clamp(0.01, 1.0)
    logits = eeg @ nirs.T / tau
    n = logits.shape[0]
    targets = torch.eye(n, device=logits.device)
    if soft_alpha > 0:
        with torch.no_grad():
            intra = torch.softmax(nirs @ nirs.T / tau, dim=1)
        targets = (1 - soft_alpha) * targets + soft_alpha * intra
    loss_e = -(targets * F.log_softmax(logits, dim=1)).sum(dim=1).mean()
    loss_n = -(targets.T * F.log_softmax(logits.T, dim=1)).sum(dim=1).mean()
    return (loss_e + loss_n) / 2


def mask_tokens(
    x: torch.Tensor, pool: int, ratio: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero a random ``ratio`` of the token-sized time segments of ``x`` ``(B, C, S)``.

    Returns the masked input and the ``(B, S // pool)`` boolean token mask.
    """
    b, _, s = x.shape
    n_tok = s // pool
    mask = torch.rand(b, n_tok, generator=generator, device="cpu").to(x.device) < ratio
    sample_mask = mask.repeat_interleave(pool, dim=1)
    if sample_mask.shape[1] < s:
        sample_mask = F.pad(sample_mask, (0, s - sample_mask.shape[1]))
    return x.masked_fill(sample_mask.unsqueeze(1), 0.0), mask


def masked_reconstruction(
    tokens: torch.Tensor,
    decoder: torch.nn.Module,
    target: torch.Tensor,
    pool: int,
    mask: torch.Tensor,
) -> torch.Tensor:
    """MSE between decoded tokens and the input averaged per token, on masked tokens only.

    ``tokens`` ``(B, T, D)``; ``target`` the unmasked input ``(B, C, S)``.
    """
    pooled = F.avg_pool1d(target, pool) if pool > 1 else target  # (B, C, T)
    predicted = decoder(tokens).transpose(1, 2)  # (B, C, T)
    t = min(pooled.shape[2], predicted.shape[2])
    err = (predicted[:, :, :t] - pooled[:, :, :t]).pow(2).mean(dim=1)  # (B, T)
    m = mask[:, :t].float()
    return (err * m).sum() / m.sum().clamp(min=1.0)
